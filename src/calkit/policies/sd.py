"""Scaled distillation (sd), the CAL paper's own loss:

    lambda_t * CE(B_new) + (1 - lambda_t) * [alpha * KL(q' || f(x')) + (1 - alpha) * CE(B_rep)]

lambda_t = |D_t| / |L_t| makes the model plastic early and stable late; q are the stored
probabilities. The KL is a true KL (log-probabilities in, batch mean), unlike the reference
code, which fed probabilities where log-probabilities belong and so made the term nearly inert.
With alpha = 0 the loss is an unbiased estimate of the mean CE over all of L_t.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from calkit.policies.base import RoundContext, Step, StepOutput, cross_entropy
from calkit.policies.distill import DistillationPolicy

DEFAULT_ALPHA = 0.5


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(q || f), q = softmax(teacher), f = softmax(student), summed over classes, batch mean."""
    return F.kl_div(
        F.log_softmax(student_logits, dim=1), F.log_softmax(teacher_logits, dim=1),
        reduction="batchmean", log_target=True,
    )


def scaled_distillation_loss(
    logits: torch.Tensor, labels: torch.Tensor, step: Step, stored: torch.Tensor | None, lam: float, alpha: float
) -> torch.Tensor:
    """The sd loss for a step whose first ``step.n_new`` rows are new and the rest replayed."""
    n_new = step.n_new
    new_ce = cross_entropy(logits[:n_new], labels[:n_new], step, "new")
    if stored is None or not step.replays:
        return new_ce
    replayed = logits[n_new:]
    if step.shard is None:
        kl = distillation_kl(replayed, stored)
    else:
        kl = F.kl_div(F.log_softmax(replayed, dim=1), F.log_softmax(stored, dim=1), reduction="sum",
                      log_target=True) * step.shard.weight("replay")
    replay = alpha * kl + (1 - alpha) * cross_entropy(replayed, labels[n_new:], step, "replay")
    return lam * new_ce + (1 - lam) * replay


class ScaledDistillationPolicy(DistillationPolicy):
    name = "sd"

    def defaults(self, batch_size: int) -> dict[str, object]:
        return {**super().defaults(batch_size), "alpha": DEFAULT_ALPHA}

    def loss(self, step: Step, ctx: RoundContext) -> StepOutput:
        x, y = ctx.data.train_features(step.ids), ctx.data.labels(step.ids)
        logits = ctx.forward(x)
        stored = self.targets.get(step.replay_ids, logits.device) if step.replays else None
        alpha = DEFAULT_ALPHA if self.options.alpha is None else self.options.alpha
        loss = scaled_distillation_loss(logits, y, step, stored, ctx.rnd.new_fraction, alpha)
        return StepOutput(loss, logits, y)
