"""Diversity-aware uncertainty sampling with the submodular engine.

Maximises facility location over the candidates' embeddings (cover the pool) plus
``lam * log(1 + sum of entropies)`` (prefer uncertain items, with diminishing returns), greedily.
The facility-location term grows with the number of candidates n, so ``lam`` is given per
candidate: the objective uses ``lam * n``; the default 1.0 puts the two terms on one scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calkit.acquisition.base import Acquisition, ScoringContext, Selection
from calkit.acquisition.uncertainty import Entropy
from calkit.errors import ConfigError
from calkit.options import option
from calkit.submodular import DEFAULT_MAX_UNIVERSE, greedy_maximize


@dataclass(frozen=True)
class DiverseOptions:
    lam: float = option(1.0, "weight of the uncertainty term, per candidate (0: coverage only)")
    kernel_width: float | None = option(None, "RBF kernel width over the embeddings (unset: median heuristic)")
    max_universe: int = option(DEFAULT_MAX_UNIVERSE, "candidates the coverage term is measured over at most")

    def __post_init__(self) -> None:
        if not (isinstance(self.lam, (int, float)) and 0 <= self.lam < float("inf")):
            raise ConfigError(f"diverse: lam must be a number >= 0, got {self.lam!r}")
        if self.kernel_width is not None and not (isinstance(self.kernel_width, (int, float)) and self.kernel_width > 0):
            raise ConfigError(f"diverse: kernel-width must be > 0, got {self.kernel_width!r}")
        if isinstance(self.max_universe, bool) or not isinstance(self.max_universe, int) or self.max_universe < 1:
            raise ConfigError(f"diverse: max-universe must be a positive integer, got {self.max_universe!r}")


class Diverse(Acquisition):
    name = "diverse"
    Options = DiverseOptions

    def _select(self, ctx: ScoringContext, candidates: np.ndarray, k: int) -> Selection:
        embeddings = ctx.embeddings(candidates).astype(np.float32)  # first: one pass gives both
        uncertainty = Entropy().score(ctx.probabilities(candidates))
        o = self.options
        result = greedy_maximize(
            embeddings, k, ctx.rng, uncertainty, o.lam * len(candidates), o.kernel_width, o.max_universe
        )
        return Selection(candidates[result.indices], result.gains)
