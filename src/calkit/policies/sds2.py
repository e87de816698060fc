"""sd with submodular replay (sds2): each step replays the m' history items that best cover
C random history candidates in embedding space while favouring uncertain ones,

    G(S) = sum_{i in A} max_{j in S} w_ij + lam_s * log(1 + sum_{j in S} h_j),

with w an RBF kernel on penultimate-layer embeddings (median-heuristic width unless set) and h
the predictive entropy, both from the current model in eval mode.
"""

from __future__ import annotations

import numpy as np
import torch

from calkit.models import logits_and_embeddings
from calkit.policies.base import RoundContext, Step
from calkit.policies.sd import ScaledDistillationPolicy
from calkit.submodular import greedy_maximize

DEFAULT_LAM_S = 1.0


class SubmodularDistillationPolicy(ScaledDistillationPolicy):
    name = "sds2"

    def choose_replay(self, new: np.ndarray, m_rep: int, ctx: RoundContext) -> Step:
        candidates = self.sample_candidates(ctx, self.options.candidates or max(2 * m_rep, 256))
        if len(candidates) <= m_rep:
            return Step(np.concatenate([new, candidates]), len(new))
        logits, emb = _eval_outputs(ctx, candidates)
        probs = torch.softmax(logits.float(), dim=1)
        entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(1)
        lam = DEFAULT_LAM_S if self.options.lam_s is None else self.options.lam_s
        picked = greedy_maximize(
            emb.float().cpu().numpy(), m_rep, ctx.rng, entropy.cpu().numpy(), lam, self.options.kernel_width
        ).indices
        return Step(np.concatenate([new, candidates[picked]]), len(new), extra_forward=len(candidates))


def _eval_outputs(ctx: RoundContext, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    was_training = ctx.model.training
    ctx.model.eval()
    try:
        with torch.inference_mode():
            return logits_and_embeddings(ctx.model, ctx.data.features(ids))
    finally:
        ctx.model.train(was_training)
