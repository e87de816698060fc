"""A run's meaning, fixed at creation: every default resolved into its config.

Defaults live in three places (a preset's settings, the policy's own defaults, calkit's global
ones) and any of them may change in a later calkit. A run must not: so at creation every unset
setting a run reads is filled in, config.yaml holds the values, and the run opens with exactly
them. A config written before this existed (``resolved`` false) is resolved when opened, with
this calkit's defaults; `calkit resume` then checks its rounds' recorded rules against them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from calkit.acquisition import Acquisition, acquisition_defaults
from calkit.config import RunConfig
from calkit.oracle import oracle_name
from calkit.policies import PRESETS, Policy, ReplayPolicy, make_policy, resolve_policy_name
from calkit.policies.presets import applicable

#: The initial round's rule, the same for every policy: train fresh weights until the epoch's
#: running accuracy reaches DEFAULT_INITIAL_ACCURACY, at most DEFAULT_INITIAL_MAX_EPOCHS epochs.
DEFAULT_INITIAL_ACCURACY = 0.99
DEFAULT_INITIAL_MAX_EPOCHS = 20


def resolve(cfg: RunConfig, policy: Policy | None = None, acquisition: Acquisition | None = None) -> RunConfig:
    """``cfg`` with every default made explicit (a resolved config comes back unchanged).

    ``policy`` and ``acquisition`` are objects a run was given instead of registered names:
    their defaults and settings count.
    """
    if cfg.resolved:
        return cfg
    raw = cfg.to_dict()
    raw["dataset"] = _absolute_if_file(cfg.dataset)
    raw["policy"] = policy.name if policy is not None else resolve_policy_name(cfg.policy)
    raw["oracle"] = oracle_name(cfg.oracle)
    preset = PRESETS[raw["policy"]].settings if raw["policy"] in PRESETS else {}
    raw.update({k: v for k, v in applicable(preset, raw).items() if k not in STOP_FIELDS})
    partial = RunConfig.from_dict(raw)
    policy = policy or make_policy(partial.policy, partial.policy_options(), cfg.policy_settings)
    raw["policy_settings"] = None if policy.settings is None else dataclasses.asdict(policy.settings)
    _fill(raw, policy.defaults(cfg.batch_size))
    raw.update(_stop_settings(RunConfig.from_dict(raw), policy, preset))
    _fill(raw, {"initial_accuracy": DEFAULT_INITIAL_ACCURACY, "initial_max_epochs": DEFAULT_INITIAL_MAX_EPOCHS,
                "later_lr_factor": 1.0, "lr_scaling": False})
    if acquisition is not None:
        options = acquisition.options
        raw["acquisition_options"] = None if options is None else dataclasses.asdict(options)
    else:
        raw["acquisition_options"] = acquisition_defaults(cfg.acquisition, cfg.acquisition_options)
    raw["resolved"] = True
    return RunConfig.from_dict(raw).validate()


def _absolute_if_file(dataset: str) -> str:
    """A dataset given as a file or folder is recorded by its absolute path, so the run opens
    from anywhere (a built-in name stays a name, whatever the current folder holds)."""
    from calkit.data.loaders import canonical_name

    path = Path(dataset).expanduser()
    return str(path.resolve()) if canonical_name(dataset) is None and path.exists() else dataset


def _fill(raw: dict, values: dict) -> None:
    for key, value in values.items():
        if raw.get(key) is None:
            raw[key] = value


#: The settings that together pick a later round's stopping rule: a preset's values for them act
#: as the policy's defaults (so a user's --max-new-epochs still wins over cal's labeled passes).
STOP_FIELDS = frozenset({"epochs", "train_accuracy", "new_accuracy", "max_epochs", "max_new_epochs",
                         "labeled_passes", "min_round_steps"})


def _stop_settings(cfg: RunConfig, policy: Policy, preset: dict) -> dict:
    """The settings that pick the rule of the rounds after the initial one, made explicit.

    Precedence (the user's first): --epochs; --train-accuracy with --max-epochs; for replay
    policies --labeled-passes with --min-round-steps and --new-accuracy, or --new-accuracy with
    --max-new-epochs, or fixed epochs; for standard AL --new-accuracy, else the 99 % rule.
    Unset values come from the preset, else the policy's ``default_*`` attributes.
    """
    def given(name: str) -> object:
        value = getattr(cfg, name)
        return value if value is not None else preset.get(name, getattr(policy, f"default_{name}", None))

    cap = given("max_epochs")
    if cfg.epochs is not None:
        return {}
    if cfg.train_accuracy is not None:
        return {"max_epochs": cap}
    if isinstance(policy, ReplayPolicy):
        threshold, passes = given("new_accuracy"), given("labeled_passes")
        if passes is not None and cfg.max_new_epochs is None:
            return {"labeled_passes": passes, "min_round_steps": given("min_round_steps"), "new_accuracy": threshold}
        if threshold is not None:
            return {"new_accuracy": threshold, "max_new_epochs": cfg.max_new_epochs or policy.default_epochs}
        return {"epochs": policy.default_epochs}
    if cfg.new_accuracy is not None:
        return {"max_new_epochs": cfg.max_new_epochs or cap}
    return {"train_accuracy": given("train_accuracy"), "max_epochs": cap}
