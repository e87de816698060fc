"""Retraining policies. Each is one short file built on :class:`Policy`.

Standard AL: ``reset`` (fresh weights each round; ``reset-tuned`` with settings tuned on
validation data) and ``warm`` (keep them); both train on every labeled item. Continual AL (CAL): ``finetune``, ``er``, ``mir``, ``der``, ``sd``, ``sds2`` keep
the weights and train over the new batch, replaying history items in every step.
"""

from __future__ import annotations

from calkit.errors import ConfigError
from calkit.policies.base import (
    Policy,
    RoundContext,
    RoundData,
    Step,
    StepOutput,
    minibatches,
)
from calkit.policies.cal import CalPolicy
from calkit.policies.der import DarkExperienceReplayPolicy
from calkit.policies.er import ExperienceReplayPolicy
from calkit.policies.finetune import FinetunePolicy
from calkit.policies.mir import MaximallyInterferedRetrievalPolicy
from calkit.policies.options import PolicyOptions
from calkit.policies.replay import ReplayPolicy
from calkit.policies.reset import ResetPolicy
from calkit.policies.reset_tuned import TunedResetPolicy
from calkit.policies.sd import ScaledDistillationPolicy
from calkit.policies.sds2 import SubmodularDistillationPolicy
from calkit.policies.warm import WarmPolicy

POLICIES: dict[str, type[Policy]] = {
    cls.name: cls
    for cls in (
        ResetPolicy,
        TunedResetPolicy,
        WarmPolicy,
        FinetunePolicy,
        ExperienceReplayPolicy,
        MaximallyInterferedRetrievalPolicy,
        DarkExperienceReplayPolicy,
        ScaledDistillationPolicy,
        SubmodularDistillationPolicy,
        CalPolicy,
    )
}



def resolve_policy_name(name: str) -> str:
    """The registered policy a user-facing name stands for."""
    key = name.strip().lower()
    if key not in POLICIES:
        raise ConfigError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}")
    return key


def make_policy(name: str, options: PolicyOptions | None = None) -> Policy:
    key = resolve_policy_name(name)
    cls = POLICIES[key]
    return cls(options) if issubclass(cls, ReplayPolicy) else cls()


__all__ = [
    "POLICIES",
    "Policy",
    "PolicyOptions",
    "ReplayPolicy",
    "RoundContext",
    "RoundData",
    "Step",
    "StepOutput",
    "make_policy",
    "minibatches",
    "resolve_policy_name",
]
