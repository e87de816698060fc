"""When a round's training stops.

Standard AL in the CAL paper trains until an epoch's running training accuracy reaches 99 %
(with a cap); the paper's CAL policies train a fixed number of epochs. calkit's own `cal` ends a
round once the round's new items are learned, because a fixed count is either wasted on rounds
that need little or too short for rounds that need more. Reports must say which rule ran.
"""

from __future__ import annotations

from dataclasses import dataclass

from calkit.errors import ConfigError, is_positive_int


@dataclass(frozen=True)
class EpochStats:
    """What one finished epoch tells a stopping rule. Accuracies are running (measured while training)."""

    epochs: int  #: epochs finished so far in this round
    running_accuracy: float  #: over every item trained on in the epoch, new and replayed
    new_accuracy: float  #: over the round's new items only
    replay_accuracy: float | None = None  #: over the replayed items; None when nothing was replayed
    has_history: bool = True  #: False in a round with nothing learned before it (the initial round)


def _check_cap(max_epochs: int) -> None:
    if not is_positive_int(max_epochs):
        raise ConfigError(f"max-epochs must be a positive integer, got {max_epochs!r}")


def _check_threshold(name: str, threshold: float) -> None:
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"{name} threshold must be in (0, 1], got {threshold}")


@dataclass(frozen=True)
class FixedEpochs:
    epochs: int

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")

    @property
    def max_epochs(self) -> int:
        return self.epochs

    def should_stop(self, stats: EpochStats) -> bool:
        return stats.epochs >= self.epochs

    def epoch_cap(self, has_history: bool) -> int:
        return self.epochs

    def describe(self) -> str:
        return f"fixed {self.epochs} epochs"


@dataclass(frozen=True)
class TrainAccuracy:
    """Stop after the first epoch whose running training accuracy reaches ``threshold``."""

    threshold: float
    max_epochs: int

    def __post_init__(self) -> None:
        _check_threshold("train accuracy", self.threshold)
        _check_cap(self.max_epochs)

    def should_stop(self, stats: EpochStats) -> bool:
        return stats.running_accuracy >= self.threshold or stats.epochs >= self.max_epochs

    def epoch_cap(self, has_history: bool) -> int:
        return self.max_epochs

    def describe(self) -> str:
        return f"until running train accuracy >= {self.threshold:g} (cap {self.max_epochs} epochs)"


@dataclass(frozen=True)
class NewItemsLearned:
    """Stop after the first epoch whose running accuracy on the round's new items reaches ``threshold``.

    This is the baseline's 99 % rule applied to what a continual round is for: learning the new
    batch. Replayed items do not count towards it; distillation keeps them near the old model's
    outputs, which are not always the labels. A round without history (the initial one) is
    ordinary training from scratch and has its own, longer cap: a continual round's short cap
    would leave the starting model under-trained and handicap every later round.
    """

    threshold: float
    max_epochs: int  #: cap of a continual round
    initial_max_epochs: int = 50  #: cap of a round without history

    def __post_init__(self) -> None:
        _check_threshold("new-item accuracy", self.threshold)
        _check_cap(self.max_epochs)
        _check_cap(self.initial_max_epochs)

    def should_stop(self, stats: EpochStats) -> bool:
        return stats.new_accuracy >= self.threshold or stats.epochs >= self.epoch_cap(stats.has_history)

    def epoch_cap(self, has_history: bool) -> int:
        """The most epochs a round may take: a round without history gets the baseline's cap."""
        return self.max_epochs if has_history else self.initial_max_epochs

    def describe(self) -> str:
        return (
            f"until running accuracy on the new items >= {self.threshold:g} "
            f"(cap {self.max_epochs} epochs; initial round cap {self.initial_max_epochs})"
        )


StopRule = FixedEpochs | TrainAccuracy | NewItemsLearned
