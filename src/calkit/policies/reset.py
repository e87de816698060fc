"""Standard active learning: fresh weights every round, trained on every labeled item."""

from __future__ import annotations

from typing import Iterator

from calkit.policies.base import Policy, RoundContext, Step, minibatches


class ResetPolicy(Policy):
    """The baseline CAL is measured against; its round cost grows with the labeled set."""

    name = "reset"
    reinitialize = True

    def epoch_steps(self, ctx: RoundContext) -> Iterator[Step]:
        for batch in minibatches(ctx.rnd.labeled_ids, ctx.rng, ctx.batch_size):
            yield Step(batch, len(batch))
