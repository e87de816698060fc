"""Diversity-aware uncertainty sampling with the submodular engine.

Maximises facility location over the candidates' embeddings (cover the pool) plus
``lam * log(1 + sum of entropies)`` (prefer uncertain items, with diminishing returns), greedily.
The facility-location term grows with the number of candidates n, so ``lam`` is given per
candidate: the objective uses ``lam * n``; the default 1.0 puts the two terms on one scale.
"""

from __future__ import annotations

import numpy as np

from calkit.acquisition.base import Acquisition, ScoringContext, Selection
from calkit.acquisition.uncertainty import Entropy
from calkit.submodular import DEFAULT_MAX_UNIVERSE, greedy_maximize


class Diverse(Acquisition):
    name = "diverse"

    def __init__(self, lam: float = 1.0, kernel_width: float | None = None, max_universe: int = DEFAULT_MAX_UNIVERSE):
        self.lam = lam
        self.kernel_width = kernel_width
        self.max_universe = max_universe

    def _select(self, ctx: ScoringContext, candidates: np.ndarray, k: int) -> Selection:
        embeddings = ctx.embeddings(candidates).astype(np.float32)  # first: one pass gives both
        uncertainty = Entropy().score(ctx.probabilities(candidates))
        result = greedy_maximize(
            embeddings, k, ctx.rng, uncertainty, self.lam * len(candidates), self.kernel_width, self.max_universe
        )
        return Selection(candidates[result.indices], result.gains)
