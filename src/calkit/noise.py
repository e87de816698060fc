"""Simulated annotators who make mistakes, so that label quality can be tested without people.

Two noise models, each flipping an answer with probability ``rate``:

- ``uniform``: a wrong answer is any other class, equally likely;
- ``pairs``: class-dependent confusion: each class is mistaken for one fixed other class (a
  cycle through a seeded permutation of the classes), as people confuse similar classes rather
  than random ones.

Whether and how an item's answer is wrong is drawn once per (run seed, item), for the whole pool:
every policy of a comparison that asks an item gets the same answer, and a resumed run too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calkit.errors import ConfigError
from calkit.seeding import numpy_rng

NOISE_MODELS = ("uniform", "pairs")


@dataclass(frozen=True)
class NoiseModel:
    kind: str = "uniform"
    rate: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in NOISE_MODELS:
            raise ConfigError(f"noise-model must be one of {', '.join(NOISE_MODELS)}, got {self.kind!r}")
        if not (isinstance(self.rate, (int, float)) and not isinstance(self.rate, bool) and 0.0 <= self.rate < 1.0):
            raise ConfigError(f"label-noise must be a probability in [0, 1), got {self.rate!r}")

    def partner(self, n_classes: int, seed: int) -> np.ndarray:
        """``pairs``: the class each class is mistaken for."""
        order = np.random.default_rng(seed).permutation(n_classes)
        partner = np.empty(n_classes, dtype=np.int64)
        partner[order] = np.roll(order, -1)
        return partner

    def answers(self, truth: np.ndarray, positions: np.ndarray, pool_size: int, n_classes: int,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
        """What is answered for the pool items at ``positions`` whose true classes are ``truth``,
        and which answers are wrong."""
        rng = numpy_rng(seed, 0, "label-noise")
        draw, offset = rng.random(pool_size)[positions], rng.integers(1, max(n_classes, 2), size=pool_size)[positions]
        flipped = (draw < self.rate) & (n_classes > 1)
        if self.kind == "uniform":
            wrong = (truth + offset) % n_classes
        else:
            wrong = self.partner(n_classes, seed)[truth]
        return np.where(flipped, wrong, truth).astype(np.int64), flipped
