"""Standard active learning: fresh weights every round, trained on every labeled item."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from calkit.policies.base import Policy, RoundData, Step, minibatches


class ResetPolicy(Policy):
    """The baseline CAL is measured against; its round cost grows with the labeled set."""

    name = "reset"
    reinitialize = True

    def epoch_steps(self, rnd: RoundData, rng: np.random.Generator, batch_size: int) -> Iterator[Step]:
        for batch in minibatches(rnd.labeled_ids, rng, batch_size):
            yield Step(batch, len(batch))
