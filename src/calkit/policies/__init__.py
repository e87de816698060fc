"""Retraining policies. Each is one short file built on :class:`Policy`."""

from __future__ import annotations

from calkit.errors import ConfigError
from calkit.policies.base import Policy, RoundData, Step, StepOutput, minibatches
from calkit.policies.reset import ResetPolicy
from calkit.policies.warm import WarmPolicy

POLICIES: dict[str, type[Policy]] = {cls.name: cls for cls in (ResetPolicy, WarmPolicy)}


def make_policy(name: str, **options) -> Policy:
    key = name.strip().lower()
    if key not in POLICIES:
        raise ConfigError(f"unknown policy {name!r}; choose one of {', '.join(sorted(POLICIES))}")
    return POLICIES[key](**options)


__all__ = ["POLICIES", "Policy", "RoundData", "Step", "StepOutput", "make_policy", "minibatches"]
