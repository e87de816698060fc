"""When a round's training stops.

Standard AL in the CAL paper trains until an epoch's running training accuracy reaches 99 %
(with a cap); the paper's CAL policies train a fixed number of epochs. calkit's own `cal` ends a
round once the round's new items are learned, because a fixed count is either wasted on rounds
that need little or too short for rounds that need more. Reports must say which rule ran.

The initial round is not any policy's: every policy trains it with the same rule (the loop's
``initial_rule``), so that runs compared with each other start from the same model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from calkit.errors import ConfigError, is_positive_int

if TYPE_CHECKING:
    from calkit.policies.base import RoundData


@dataclass(frozen=True)
class EpochStats:
    """What one finished epoch tells a stopping rule. Accuracies are running (measured while training)."""

    epochs: int  #: epochs finished so far in this round
    running_accuracy: float  #: over every item trained on in the epoch, new and replayed
    new_accuracy: float  #: over the round's new items only


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

    def resolve(self, rnd: RoundData, steps_per_epoch: int = 1) -> FixedEpochs:
        return self

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

    def resolve(self, rnd: RoundData, steps_per_epoch: int = 1) -> TrainAccuracy:
        return self

    def describe(self) -> str:
        return f"until running train accuracy >= {self.threshold:g} (cap {self.max_epochs} epochs)"


@dataclass(frozen=True)
class NewItemsLearned:
    """Stop after the first epoch whose running accuracy on the round's new items reaches ``threshold``.

    This is the baseline's 99 % rule applied to what a continual round is for: learning the new
    batch. Replayed items do not count towards it; distillation keeps them near the old model's
    outputs, which are not always the labels.
    """

    threshold: float
    max_epochs: int

    def __post_init__(self) -> None:
        _check_threshold("new-item accuracy", self.threshold)
        _check_cap(self.max_epochs)

    def should_stop(self, stats: EpochStats) -> bool:
        return stats.new_accuracy >= self.threshold or stats.epochs >= self.max_epochs

    def resolve(self, rnd: RoundData, steps_per_epoch: int = 1) -> NewItemsLearned:
        return self

    def describe(self) -> str:
        return f"until running accuracy on the new items >= {self.threshold:g} (cap {self.max_epochs} epochs)"


@dataclass(frozen=True)
class LabeledPasses:
    """A continual round as long as ``passes`` passes over everything labeled would be.

    A continual round steps over its new batch D_t only, replaying history in every step; with
    sd's weights (new items lambda_t = |D_t| / |L_t|) the loss is an estimate of the mean loss over
    all of L_t. ``ceil(passes * |L_t| / |D_t|)`` epochs over the new batch give that estimate
    ``passes`` passes' worth of steps, each replayed item about ``passes`` visits, and each new
    item the same gradient weight in every round. A fixed epoch count instead shrinks, round
    after round, to a smaller share of what is labeled: the continual model falls behind
    (BENCHMARKS.md, "Tuning cal"). ``min_steps`` gives every round at least that many optimizer
    steps: a handful of labeled items is a handful of steps, too few to absorb a round. With
    ``threshold``, a round also ends once its new items' running accuracy reaches it.
    """

    passes: float
    threshold: float | None = None
    min_steps: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.passes, (int, float)) and math.isfinite(self.passes) and self.passes > 0):
            raise ConfigError(f"labeled passes must be a positive number, got {self.passes!r}")
        if self.threshold is not None:
            _check_threshold("new-item accuracy", self.threshold)
        if not (self.min_steps == 0 or is_positive_int(self.min_steps)):
            raise ConfigError(f"minimum steps must be a non-negative integer, got {self.min_steps!r}")

    def resolve(self, rnd: RoundData, steps_per_epoch: int = 1) -> FixedEpochs | NewItemsLearned:
        """The rule of round ``rnd`` (``steps_per_epoch``: optimizer steps in one of its epochs)."""
        labeled = len(rnd.new_ids) + len(rnd.history_ids)
        epochs = max(1, math.ceil(self.passes * labeled / max(len(rnd.new_ids), 1) - 1e-9),
                     math.ceil(self.min_steps / max(steps_per_epoch, 1)))
        return FixedEpochs(epochs) if self.threshold is None else NewItemsLearned(self.threshold, epochs)

    def describe(self) -> str:
        head = f"{self.passes:g} passes' worth of the labeled set (ceil({self.passes:g} x labeled / new) epochs over the new items"
        head += f", at least {self.min_steps} steps)" if self.min_steps else ")"
        return head if self.threshold is None else f"{head}, or until their running accuracy >= {self.threshold:g}"


StopRule = FixedEpochs | TrainAccuracy | NewItemsLearned | LabeledPasses
