"""The shared part of der, sd and sds2: stored targets made at the end of every round."""

from __future__ import annotations

from calkit.models import batched_inference
from calkit.policies.base import RoundContext
from calkit.policies.options import PolicyOptions
from calkit.policies.replay import ReplayPolicy
from calkit.policies.targets import StoredTargets


class DistillationPolicy(ReplayPolicy):
    def __init__(self, options: PolicyOptions | None = None):
        super().__init__(options)
        self.targets = StoredTargets()

    def end_round(self, ctx: RoundContext) -> int:
        """Targets for this round's new items, from the trained model in eval mode."""
        new = ctx.rnd.new_ids
        self.targets.add(new, batched_inference(ctx.model, ctx.data.features(new)))
        return len(new)

    def state_dict(self) -> dict:
        return {"targets": self.targets.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.targets.load_state_dict(state["targets"])
