"""Uniform random sampling: the baseline every strategy must beat, and the initial set."""

from __future__ import annotations

import numpy as np

from calkit.acquisition.base import Acquisition, ScoringContext, Selection


class RandomSampling(Acquisition):
    """Draws ``k`` candidates uniformly without replacement; never looks at the model."""

    name = "random"

    def _select(self, ctx: ScoringContext, candidates: np.ndarray, k: int) -> Selection:
        picked = ctx.rng.choice(len(candidates), size=k, replace=False)
        return Selection(candidates[picked], np.zeros(k))
