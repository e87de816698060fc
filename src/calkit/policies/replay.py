"""The shared shape of CAL policies: keep the weights, step over the NEW batch only, and mix
m' items replayed from the labeled history into every step.

A round's cost is therefore E * ceil(b / m) * (m + m') sample-gradients whatever the round
number, where standard AL pays for the whole growing labeled set. Subclasses change how the
replayed items are chosen (:meth:`choose_replay`) or the loss.
"""

from __future__ import annotations

from typing import ClassVar, Iterator

import numpy as np

from calkit.policies.base import Policy, RoundContext, RoundData, Step, minibatches
from calkit.policies.options import PolicyOptions

DEFAULT_CAL_EPOCHS = 20


class ReplayPolicy(Policy):
    """Experience replay with uniform sampling; cross-entropy over new and replayed items."""

    #: m' = default_replay_ratio * m unless the options say otherwise.
    default_replay_ratio: ClassVar[float] = 2.0
    #: Fixed epochs per round, or the epoch cap when default_new_accuracy is set.
    default_epochs: ClassVar[int] = DEFAULT_CAL_EPOCHS
    #: Train each round until the new items' running accuracy reaches this; None: fixed epochs.
    default_new_accuracy: ClassVar[float | None] = None
    #: Each round's epoch cap from the labeled set's size (calkit.train.stopping.LabeledPasses); None: default_epochs.
    default_labeled_passes: ClassVar[float | None] = None
    #: With default_labeled_passes: the fewest optimizer steps a round takes.
    default_min_round_steps: ClassVar[int] = 0
    default_lr_scaling: ClassVar[bool] = False

    def __init__(self, options: PolicyOptions | None = None):
        self.options = options or PolicyOptions()

    def defaults(self, batch_size: int) -> dict[str, object]:
        own = {"lr_scaling": self.default_lr_scaling}
        if self.options.replay_size is None and self.options.replay_fraction is None:
            own["replay_ratio"] = self.default_replay_ratio
        return {**super().defaults(batch_size), **own}

    def replay_size(self, new_per_step: int) -> int:
        return self.options.replay_count(new_per_step, self.default_replay_ratio)

    def steps_per_epoch(self, rnd: RoundData, batch_size: int) -> int:
        return -(-len(rnd.new_ids) // batch_size)

    def epoch_steps(self, ctx: RoundContext) -> Iterator[Step]:
        history = ctx.rnd.history_ids
        for new in minibatches(ctx.rnd.new_ids, ctx.rng, ctx.batch_size):
            # m' follows the step's actual new items, so a short last batch (or a round
            # smaller than m) keeps the configured new:replay ratio.
            m_rep = min(self.replay_size(len(new)), len(history))
            if m_rep == 0:
                yield Step(new, len(new))
            else:
                yield self.choose_replay(new, m_rep, ctx)

    def choose_replay(self, new: np.ndarray, m_rep: int, ctx: RoundContext) -> Step:
        """Uniform replay: m' distinct items of the history, never of the current round."""
        history = ctx.rnd.history_ids
        replay = history[ctx.rng.choice(len(history), size=m_rep, replace=False)]
        return Step(np.concatenate([new, replay]), len(new))

    def sample_candidates(self, ctx: RoundContext, count: int) -> np.ndarray:
        history = ctx.rnd.history_ids
        return history[ctx.rng.choice(len(history), size=min(count, len(history)), replace=False)]

    def lr_multiplier(self, batch_size: int, rnd: RoundData) -> float:
        """(m + m') / m in rounds that replay; a round without history trains like the baseline."""
        scaling = self.default_lr_scaling if self.options.lr_scaling is None else self.options.lr_scaling
        if not scaling or not rnd.has_history:
            return 1.0
        return (batch_size + self.replay_size(batch_size)) / batch_size
