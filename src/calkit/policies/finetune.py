"""Fine-tuning on the new batch alone: CAL's cost floor, and the forgetting it causes."""

from __future__ import annotations

from calkit.policies.replay import ReplayPolicy


class FinetunePolicy(ReplayPolicy):
    """Keep the weights; each step is m new items and nothing replayed (m' = 0 always)."""

    name = "finetune"
    default_replay_ratio = 0.0

    def replay_size(self, new_per_step: int) -> int:
        return 0
