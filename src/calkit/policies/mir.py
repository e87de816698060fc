"""Maximally interfered retrieval (mir): replay the history items that a plain step on the new
batch would hurt most.

Per step: draw C candidates from the history; take a virtual SGD step
theta_v = theta - eta * grad CE(B_new) on a copy of the parameters; score each candidate by its
loss increase CE(theta_v) - CE(theta); replay the m' highest (or sample by softmax of the score).
The virtual step leaves the real parameters, their gradients, the optimizer state and BatchNorm
statistics untouched: it runs through ``torch.func.functional_call`` on detached parameter
copies and cloned buffers, and candidates are scored with BatchNorm in eval mode.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from calkit.policies.base import RoundContext, Step
from calkit.policies.replay import ReplayPolicy

DEFAULT_CANDIDATES = 256


class MaximallyInterferedRetrievalPolicy(ReplayPolicy):
    name = "mir"

    def defaults(self, batch_size: int) -> dict[str, object]:
        candidates = max(2 * self.replay_size(batch_size), DEFAULT_CANDIDATES)
        return {**super().defaults(batch_size), "candidates": candidates}

    def choose_replay(self, new: np.ndarray, m_rep: int, ctx: RoundContext) -> Step:
        candidates = self.sample_candidates(ctx, self.options.candidates or max(2 * m_rep, DEFAULT_CANDIDATES))
        if len(candidates) <= m_rep:
            return Step(np.concatenate([new, candidates]), len(new))
        scores = interference(ctx, new, candidates).cpu().numpy().astype(np.float64)
        if self.options.mir_sampling:
            p = np.exp(scores - scores.max())
            picked = ctx.rng.choice(len(candidates), size=m_rep, replace=False, p=p / p.sum())
        else:
            picked = np.argsort(-scores, kind="stable")[:m_rep]
        return Step(
            np.concatenate([new, candidates[picked]]), len(new),
            extra_gradients=len(new), extra_forward=2 * len(candidates),
        )


def interference(ctx: RoundContext, new: np.ndarray, candidates: np.ndarray) -> torch.Tensor:
    """Per-candidate loss increase after a virtual SGD step on the new items."""
    model, data = ctx.model, ctx.data
    params = {k: v.detach().requires_grad_(True) for k, v in model.named_parameters()}
    buffers = {k: v.clone() for k, v in model.named_buffers()}  # BN may update these copies only
    loss_new = F.cross_entropy(functional_call(model, (params, buffers), (data.features(new),)), data.labels(new))
    grads = torch.autograd.grad(loss_new, list(params.values()), allow_unused=True)
    lr = ctx.optimizer.param_groups[0]["lr"] if ctx.optimizer is not None else 0.1
    with torch.no_grad():
        virtual = {k: (p - lr * g if g is not None else p) for (k, p), g in zip(params.items(), grads)}
        real = {k: p.detach() for k, p in params.items()}
        x, y = data.features(candidates), data.labels(candidates)
        stats = dict(model.named_buffers())  # only read: BatchNorm is in eval mode below
        was_training = model.training
        model.eval()
        try:
            before = F.cross_entropy(functional_call(model, (real, stats), (x,)), y, reduction="none")
            after = F.cross_entropy(functional_call(model, (virtual, stats), (x,)), y, reduction="none")
        finally:
            model.train(was_training)
    return after - before
