"""Learning-rate schedules across active-learning rounds (spec/schedules.md).

A schedule maps a position to a factor of the configured learning rate. Positions are counted in
optimizer steps: ``step`` within the current round, the round's ``horizon`` (the steps its
stopping rule allows at most), and ``trained`` (steps the continual model took in earlier
rounds). Four shapes:

- ``constant``: the configured rate throughout (the paper's Adam runs).
- ``cosine``: re-warm and re-decay every round, over the round's horizon (the CAL reference).
  With an accuracy stopping rule a round may end before the decay does; pair it with --epochs
  for a full decay every round.
- ``infinite``: warm up and cool down once, over the first scheduled round, then stay at
  ``const_factor`` for as long as rounds keep coming. The model used for evaluation and
  acquisition is an annealed copy; the next round continues from the weights before the anneal.
- ``wsd`` (warmup-stable-decay): ``infinite`` without the cooldown; the anneal decays as
  1 - sqrt(p), the shape Hagele et al. found best.

A policy that starts every round from fresh weights (standard AL) sees each round as a first
round: its ``trained`` count is zero every time. Every policy trains the initial round at a
constant rate with no anneal (the loop's shared initial round), so a schedule's first round is
the one after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from calkit.errors import ConfigError, is_positive_int

SCHEDULES = ("constant", "cosine", "infinite", "wsd")
COOLDOWNS = ("cosine", "inv-sqrt")
INV_SQRT_A = 10.0  #: the curvature a of the inverse-sqrt cooldown (the authors' public configs)


@dataclass(frozen=True)
class Schedule:
    name: str = "constant"
    warmup: float = 0.01  #: warm-up share of the horizon (cosine: every round; infinite/wsd: the first)
    min_factor: float = 0.1  #: eta_min / eta_max, where decays and anneals end
    const_factor: float = 0.55  #: infinite: eta_const / eta_max, the rate between anneals
    cooldown: str = "cosine"  #: infinite: cosine or inv-sqrt
    anneal_epochs: int = 1  #: infinite/wsd: epochs of the anneal that makes the model for use

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.name!r}; choose one of {', '.join(SCHEDULES)}")
        if self.cooldown not in COOLDOWNS:
            raise ConfigError(f"unknown cooldown {self.cooldown!r}; choose one of {', '.join(COOLDOWNS)}")
        if not 0.0 <= self.warmup < 1.0:
            raise ConfigError(f"warmup must be in [0, 1), got {self.warmup}")
        if not 0.0 <= self.min_factor <= 1.0:
            raise ConfigError(f"min-lr-factor must be in [0, 1], got {self.min_factor}")
        if not self.min_factor <= self.const_factor <= 1.0:
            raise ConfigError(f"const-lr-factor must be in [min-lr-factor, 1], got {self.const_factor}")
        if not is_positive_int(self.anneal_epochs):
            raise ConfigError(f"anneal-epochs must be a positive integer, got {self.anneal_epochs!r}")

    @property
    def anneals(self) -> bool:
        """Whether each round ends with an anneal on a copy of the model."""
        return self.name in ("infinite", "wsd")

    @property
    def plateau(self) -> float:
        return self.const_factor if self.name == "infinite" else 1.0

    def factor(self, step: int, horizon: int, trained: int) -> float:
        """The LR factor for ``step`` (0-based) of a round of at most ``horizon`` steps."""
        if self.name == "constant":
            return 1.0
        if self.name == "cosine":
            return self._warm_then(step, horizon, lambda p: _cosine(1.0, self.min_factor, p))
        if trained > 0:  # infinite / wsd after the first round: the plateau
            return self.plateau
        if self.name == "wsd":
            return self._warm_then(step, horizon, lambda p: 1.0)
        return self._warm_then(step, horizon, self._cooldown)

    def anneal_factor(self, step: int, steps: int) -> float:
        """The LR factor for ``step`` of an anneal of ``steps`` steps (the last one reaches eta_min)."""
        p = (step + 1) / max(steps, 1)
        if self.name == "wsd":
            return self.min_factor + (1.0 - self.min_factor) * (1.0 - math.sqrt(p))
        return self.plateau * (self.min_factor / self.plateau) ** p if self.plateau > 0 else 0.0

    def describe(self) -> str:
        if self.name == "constant":
            return "constant"
        if self.name == "cosine":
            return f"cosine restarted each round (warm-up {self.warmup:.0%}, down to {self.min_factor:g}x)"
        head = f"infinite ({self.cooldown} cooldown to {self.const_factor:g}x)" if self.name == "infinite" else "wsd"
        return f"{head}, anneal {self.anneal_epochs} epoch(s) to {self.min_factor:g}x on a copy each round"

    def _warm_then(self, step: int, horizon: int, after) -> float:
        warm = int(round(self.warmup * horizon))
        if step < warm:
            return (step + 1) / warm
        rest = max(horizon - warm, 1)
        return after(min((step - warm) / rest, 1.0))

    def _cooldown(self, p: float) -> float:
        if self.cooldown == "cosine":
            return _cosine(1.0, self.const_factor, p)
        h = lambda x: 1.0 / math.sqrt(1.0 + INV_SQRT_A * x) - 1.0  # noqa: E731
        return 1.0 + (self.const_factor - 1.0) * h(p) / h(1.0)


def _cosine(start: float, end: float, p: float) -> float:
    return end + (start - end) * (1.0 + math.cos(math.pi * p)) / 2.0
