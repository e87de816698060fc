"""Retraining policies. Each is one short file built on :class:`Policy`.

Standard AL: ``reset`` (fresh weights each round) and ``warm`` (keep them); both train on every
labeled item. Continual AL (CAL): ``finetune``, ``er``, ``mir``, ``der``, ``sd``, ``sds2`` keep
the weights and train over the new batch, replaying history items in every step. The presets
``cal`` and ``reset-tuned`` (calkit.policies.presets) are named settings of ``sd`` and ``reset``.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Mapping

from calkit.errors import ConfigError
from calkit.policies.base import (
    Policy,
    RoundContext,
    RoundData,
    Step,
    StepOutput,
    minibatches,
)
from calkit.policies.options import PolicyOptions
from calkit.policies.presets import PRESETS, Preset, applicable
from calkit.policies.replay import ReplayPolicy
from calkit.options import build_options
from calkit.registry import Registry, normalise


def _builtins() -> dict[str, type[Policy]]:
    from calkit.policies.der import DarkExperienceReplayPolicy
    from calkit.policies.er import ExperienceReplayPolicy
    from calkit.policies.finetune import FinetunePolicy
    from calkit.policies.mir import MaximallyInterferedRetrievalPolicy
    from calkit.policies.reset import ResetPolicy
    from calkit.policies.sd import ScaledDistillationPolicy
    from calkit.policies.sds2 import SubmodularDistillationPolicy
    from calkit.policies.warm import WarmPolicy

    classes = (ResetPolicy, WarmPolicy, FinetunePolicy, ExperienceReplayPolicy, MaximallyInterferedRetrievalPolicy,
               DarkExperienceReplayPolicy, ScaledDistillationPolicy, SubmodularDistillationPolicy)
    return {cls.name: cls for cls in classes}


#: Every policy class by name: the built-ins, `register_policy` calls, and the entry points of
#: the group ``calkit.policies``. Presets (`cal`, `reset-tuned`) are names too: see policy_names().
POLICIES: Registry[type[Policy]] = Registry("policy", "calkit.policies", Policy, _builtins)


def register_policy(cls: type[Policy], name: str | None = None, *, replace: bool = False) -> type[Policy]:
    """Make a Policy subclass available by name (``calkit run --policy NAME``, ``Run.create``)."""
    if normalise(name or getattr(cls, "name", "")) in PRESETS:
        raise ConfigError(f"{name or cls.name!r} is a preset's name; choose another")
    return POLICIES.register(cls, name, replace=replace)


def policy_names() -> list[str]:
    """Every name a run may give as its policy: presets first, then the registered policies."""
    return list(PRESETS) + [n for n in POLICIES.names() if n not in PRESETS]


def resolve_policy_name(name: str) -> str:
    """The preset or registered policy a user-facing name stands for."""
    key = normalise(name)
    if key in PRESETS:
        return key
    found = POLICIES.key(key)
    if found is None:
        raise ConfigError(POLICIES.broken(key) or f"unknown policy {name!r}; choose one of {', '.join(policy_names())}")
    return found


def policy_class(name: str) -> type[Policy]:
    """The class behind a policy or preset name."""
    key = resolve_policy_name(name)
    return POLICIES.lookup(PRESETS[key].policy if key in PRESETS else key)


def make_policy(name: str, options: PolicyOptions | None = None, settings: Mapping[str, object] | None = None) -> Policy:
    """A policy by name; a preset's settings fill the options left unset. ``settings`` are the
    policy's own (its ``Options``), as plain values."""
    key = resolve_policy_name(name)
    cls = policy_class(key)
    if key in PRESETS:
        given = options or PolicyOptions()
        options = replace(given, **applicable(PRESETS[key].settings, asdict(given)))
    policy = cls(options) if issubclass(cls, ReplayPolicy) else cls()
    if key in PRESETS:
        policy.name = policy.preset = key  # records and reports name the preset
    if cls.Options is not None:
        policy.settings = build_options(cls.Options, settings, f"policy {key!r}")
    elif settings:
        raise ConfigError(f"policy {key!r} has no settings of its own, got {', '.join(sorted(settings))}")
    return policy


__all__ = [
    "POLICIES",
    "PRESETS",
    "Preset",
    "policy_class",
    "policy_names",
    "register_policy",
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
