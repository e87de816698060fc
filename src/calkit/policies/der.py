"""Dark experience replay (der): replayed items are pulled toward their stored logits.

    loss = CE(B_new) + alpha * mean_batch ||g(x') - z'||^2 + beta * CE(B_rep)

with the squared error summed over classes and averaged over the replayed batch (the paper's
norm). Paper defaults: alpha = 0.1, beta = 1.
"""

from __future__ import annotations

import torch.nn.functional as F

from calkit.policies.base import RoundContext, Step, StepOutput, cross_entropy
from calkit.policies.distill import DistillationPolicy


DEFAULT_ALPHA = 0.1
DEFAULT_BETA = 1.0


class DarkExperienceReplayPolicy(DistillationPolicy):
    name = "der"

    def defaults(self, batch_size: int) -> dict[str, object]:
        return {**super().defaults(batch_size), "alpha": DEFAULT_ALPHA, "beta": DEFAULT_BETA}

    def loss(self, step: Step, ctx: RoundContext) -> StepOutput:
        x, y = ctx.data.train_features(step.ids), ctx.data.labels(step.ids)
        logits = ctx.forward(x)
        n = step.n_new
        loss = cross_entropy(logits[:n], y[:n], step, "new")
        if step.replays:
            alpha = DEFAULT_ALPHA if self.options.alpha is None else self.options.alpha
            beta = DEFAULT_BETA if self.options.beta is None else self.options.beta
            replayed = logits[n:]
            stored = self.targets.get(step.replay_ids, replayed.device)
            squared = (replayed - stored).pow(2).sum(1)
            mse = squared.mean() if step.shard is None else squared.sum() * step.shard.weight("replay")
            loss = loss + alpha * mse + beta * cross_entropy(replayed, y[n:], step, "replay")
        return StepOutput(loss, logits, y)
