"""When a round's training stops.

Standard AL in the CAL paper trains until an epoch's running training accuracy reaches 99 %
(with a cap); CAL policies train a fixed number of epochs. Reports must say which rule ran.
"""

from __future__ import annotations

from dataclasses import dataclass

from calkit.errors import ConfigError


@dataclass(frozen=True)
class FixedEpochs:
    epochs: int

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")

    @property
    def max_epochs(self) -> int:
        return self.epochs

    def should_stop(self, epochs_done: int, running_accuracy: float) -> bool:
        return epochs_done >= self.epochs

    def describe(self) -> str:
        return f"fixed {self.epochs} epochs"


@dataclass(frozen=True)
class TrainAccuracy:
    """Stop after the first epoch whose running training accuracy reaches ``threshold``."""

    threshold: float
    max_epochs: int

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"train accuracy threshold must be in (0, 1], got {self.threshold}")
        if self.max_epochs < 1:
            raise ConfigError(f"max_epochs must be at least 1, got {self.max_epochs}")

    def should_stop(self, epochs_done: int, running_accuracy: float) -> bool:
        return running_accuracy >= self.threshold or epochs_done >= self.max_epochs

    def describe(self) -> str:
        return f"until running train accuracy >= {self.threshold:g} (cap {self.max_epochs} epochs)"


StopRule = FixedEpochs | TrainAccuracy
