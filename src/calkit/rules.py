"""How each round of a run trains, read from its resolved config (calkit.resolve).

The initial round is the same for every policy; the rounds after it follow the policy's rule,
learning-rate schedule, warm start and rate. Each round records these with its metrics, and
resume checks them again, so a run never changes its rules halfway.
"""

from __future__ import annotations

import numpy as np

from calkit.config import RunConfig
from calkit.policies import Policy, RoundData, make_policy
from calkit.resolve import resolve
from calkit.train import FixedEpochs, LabeledPasses, NewItemsLearned, StopRule, TrainAccuracy
from calkit.train.schedules import Schedule
from calkit.train.warm_start import ShrinkPerturb


def initial_rule_for(cfg: RunConfig) -> TrainAccuracy:
    """The initial round's rule, shared by every policy (--initial-accuracy, --initial-max-epochs)."""
    cfg = resolve(cfg)
    return TrainAccuracy(cfg.initial_accuracy, cfg.initial_max_epochs)


def stop_rule_for(cfg: RunConfig) -> StopRule:
    """The rule of every round after the initial one (calkit.resolve documents the precedence)."""
    cfg = resolve(cfg)
    if cfg.epochs is not None:
        return FixedEpochs(cfg.epochs)
    if cfg.train_accuracy is not None:
        return TrainAccuracy(cfg.train_accuracy, cfg.max_epochs)
    if cfg.labeled_passes is not None:
        return LabeledPasses(cfg.labeled_passes, cfg.new_accuracy, cfg.min_round_steps)
    return NewItemsLearned(cfg.new_accuracy, cfg.max_new_epochs)


def later_round_lr(cfg: RunConfig, policy: Policy | None = None) -> float:
    """The learning rate a round after the initial one starts from (before its schedule): --lr
    times --later-lr-factor times the policy's multiplier (cal's replay scaling). Every such
    round has earlier rounds to replay, which is all the multipliers look at."""
    cfg = resolve(cfg)
    policy = policy or make_policy(cfg.policy, cfg.policy_options(), cfg.policy_settings)
    later = RoundData(1, new_ids=np.arange(1), history_ids=np.arange(1))
    return cfg.lr * cfg.later_lr_factor * policy.lr_multiplier(cfg.batch_size, later)


def warm_start_for(cfg: RunConfig) -> ShrinkPerturb:
    """Shrink and perturb of a kept model before each later round."""
    cfg = resolve(cfg)
    return ShrinkPerturb(cfg.shrink, cfg.perturb)


class RoundRules:
    """The rules of every round of one run."""

    def __init__(self, cfg: RunConfig, policy: Policy):
        self.cfg, self.policy = cfg, policy
        self.initial: TrainAccuracy = initial_rule_for(cfg)
        self.later: StopRule = stop_rule_for(cfg)
        self.schedule: Schedule = cfg.lr_schedule()
        self.warm_start: ShrinkPerturb = warm_start_for(cfg)

    def rule_of(self, t: int) -> StopRule:
        """The stopping rule round ``t`` trains with: the shared initial rule, then the policy's."""
        return self.initial if t == 0 else self.later

    def lr_of(self, t: int) -> float:
        """The learning rate round ``t`` starts from, before its schedule: the configured one for
        the shared initial round, the policy's (reset-tuned's 1.5x, cal's replay scaling) after."""
        return self.cfg.lr if t == 0 else later_round_lr(self.cfg, self.policy)

    def warm_start_of(self, t: int) -> str:
        """What the model went through before round ``t`` trained ("none" for fresh weights)."""
        return "none" if t == 0 or self.policy.reinitialize else self.warm_start.describe()

    def describe(self, t: int) -> dict[str, object]:
        """How round ``t`` trains, as recorded with it and checked again on resume."""
        return {
            "stop_rule": self.rule_of(t).describe(),
            "schedule": "constant" if t == 0 else self.schedule.describe(),
            "warm_start": self.warm_start_of(t),
            "lr": self.lr_of(t),
        }
