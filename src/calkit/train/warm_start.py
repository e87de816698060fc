"""Shrink and perturb (Ash and Adams, NeurIPS 2020): before a warm-started model trains on a
larger set, multiply its weights by ``shrink`` and add ``perturb`` times a fresh initialisation.

A warm-started network can reach the same training loss as a fresh one and still generalise
worse; shrinking the weights and adding a little of a new initialisation closes much of that gap
while keeping most of what the model learned. Buffers (batch-norm statistics) are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from calkit.errors import ConfigError


def check_shrink_perturb(shrink: float, perturb: float) -> None:
    if not 0.0 < shrink <= 1.0:
        raise ConfigError(f"shrink must be in (0, 1], got {shrink}")
    if not 0.0 <= perturb <= 1.0:
        raise ConfigError(f"perturb must be in [0, 1], got {perturb}")


@dataclass(frozen=True)
class ShrinkPerturb:
    """What a kept model goes through before each round after the initial one."""

    shrink: float = 1.0
    perturb: float = 0.0

    def __post_init__(self) -> None:
        check_shrink_perturb(self.shrink, self.perturb)

    @property
    def active(self) -> bool:
        return self.shrink < 1.0 or self.perturb > 0.0

    def describe(self) -> str:
        return f"shrink {self.shrink:g}, perturb {self.perturb:g}" if self.active else "none"


@torch.no_grad()
def shrink_perturb(model: nn.Module, fresh: nn.Module, shrink: float, perturb: float) -> None:
    """``theta <- shrink * theta + perturb * theta_fresh`` for every parameter, in place."""
    check_shrink_perturb(shrink, perturb)
    for p, q in zip(model.parameters(), fresh.parameters(), strict=True):
        p.mul_(shrink).add_(q, alpha=perturb)
