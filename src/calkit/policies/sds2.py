"""sd with submodular replay (sds2): each step replays the m' history items that best cover
C random history candidates in embedding space while favouring uncertain ones,

    G(S) = sum_{i in A} max_{j in S} w_ij + lam_s * log(1 + sum_{j in S} h_j),

with w an RBF kernel on the model's embeddings (its own ``embed`` when it has one, else the
penultimate features: :func:`calkit.models.embedding_source`; median-heuristic width unless set)
and h the predictive entropy, both from the current model in eval mode.
"""

from __future__ import annotations

import numpy as np

from calkit.entropy import predictive_entropy
from calkit.models import batched_logits_and_embeddings, forward_passes
from calkit.policies.base import RoundContext, Step
from calkit.policies.sd import ScaledDistillationPolicy
from calkit.submodular import greedy_maximize

DEFAULT_LAM_S = 1.0


class SubmodularDistillationPolicy(ScaledDistillationPolicy):
    name = "sds2"

    def defaults(self, batch_size: int) -> dict[str, object]:
        candidates = max(2 * self.replay_size(batch_size), 256)
        return {**super().defaults(batch_size), "lam_s": DEFAULT_LAM_S, "candidates": candidates}

    def choose_replay(self, new: np.ndarray, m_rep: int, ctx: RoundContext) -> Step:
        candidates = self.sample_candidates(ctx, self.options.candidates or max(2 * m_rep, 256))
        if len(candidates) <= m_rep:
            return Step(np.concatenate([new, candidates]), len(new))
        x = ctx.data.features(candidates)  # one batch, so the numbers do not depend on a batch size
        logits, emb = batched_logits_and_embeddings(ctx.model, x, batch_size=len(candidates))
        lam = DEFAULT_LAM_S if self.options.lam_s is None else self.options.lam_s
        picked = greedy_maximize(
            emb.float().cpu().numpy(), m_rep, ctx.rng, predictive_entropy(logits), lam, self.options.kernel_width
        ).indices
        extra = len(candidates) * forward_passes(ctx.model, with_embeddings=True)
        return Step(np.concatenate([new, candidates[picked]]), len(new), extra_forward=extra)
