"""Training one round: the model the round starts from, its learning rate and schedule, the fit,
the anneal, and the state a checkpoint keeps so that resume continues exactly.

The loop decides *when* a round trains and on which labels; this decides *how*, from the run's
rules (calkit.rules) and policy. Every random choice is seeded by (seed, round, phase).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from calkit import __version__
from calkit.config import RunConfig
from calkit.distributed import current
from calkit.errors import LedgerError
from calkit.policies import Policy, RoundContext, RoundData
from calkit.rules import RoundRules
from calkit.run_storage import RunDirectory
from calkit.seeding import numpy_rng, restore_rng_states, rng_states, seed_torch
from calkit.tensors import PoolData
from calkit.train import ComputeMeter, FixedEpochs, StopRule, Trainer
from calkit.train.trainer import EpochCallback, LearningRate, set_learning_rate
from calkit.train.warm_start import shrink_perturb

ModelFactory = Callable[[], nn.Module]


@dataclass
class TrainingState:
    model: nn.Module | None  #: the continual state: what the next round trains on
    optimizer: torch.optim.Optimizer | None
    meter: ComputeMeter
    last_round: int
    annealed: nn.Module | None = None  #: the annealed copy, when the schedule makes one
    trained_steps: int = 0  #: steps the continual model has taken (positions the schedule)

    @property
    def serving(self) -> nn.Module | None:
        """The model for evaluation and acquisition: the annealed copy if there is one."""
        return self.annealed if self.annealed is not None else self.model


@dataclass(frozen=True)
class RoundFit:
    rule: StopRule  #: the rule as resolved for this round (its epoch cap)
    epochs: int
    running_accuracy: float


class RoundTrainer:
    def __init__(self, cfg: RunConfig, data: PoolData, policy: Policy, rules: RoundRules,
                 model_factory: ModelFactory, run_dir: RunDirectory):
        self.cfg, self.data, self.policy, self.rules = cfg, data, policy, rules
        self.model_factory, self.dir = model_factory, run_dir
        self.optimizer_cfg = cfg.optimizer_config()

    def train(self, t: int, rnd: RoundData, state: TrainingState, on_epoch: EpochCallback) -> RoundFit:
        rule = self.rules.rule_of(t).resolve(rnd, self.policy.steps_per_epoch(rnd, self.cfg.batch_size))
        if t == 0:
            epochs, accuracy = self._initial_round(rnd, state, rule, on_epoch)
        else:
            epochs, accuracy = self._later_round(t, rnd, state, rule, on_epoch)
        return RoundFit(rule, epochs, accuracy)

    def _initial_round(
        self, rnd: RoundData, state: TrainingState, rule: StopRule, on_epoch: EpochCallback
    ) -> tuple[int, float]:
        """Round 0, the same for every policy: fresh weights, constant rate, the initial rule.

        Nothing was learned before it, so there is nothing to continue or replay; training it
        alike (or taking it over from another run with ``start_from``) makes every policy of a
        comparison continue from the same model, and the first budget identical by construction.
        """
        rng = numpy_rng(self.cfg.seed, 0, "train")
        start = current().on_main(self.dir.read_start)  # rank 0 reads the files, the others get them
        if start is not None:
            return self._take_over_start(start, rnd, state, rng)
        state.model, state.optimizer = self._fresh_model(0)
        state.trained_steps = 0
        set_learning_rate(state.optimizer, self.cfg.lr)
        seed_torch(self.cfg.seed, 0, "train")
        fit = Trainer(self.data, state.meter, self.cfg.batch_size).fit(
            state.model, state.optimizer, self.policy, rnd, rule, rng, on_epoch)
        return fit.epochs, fit.running_accuracy

    def _take_over_start(
        self, start: dict, rnd: RoundData, state: TrainingState, rng: np.random.Generator
    ) -> tuple[int, float]:
        """The initial round from ``start.pt``: its model, optimizer and compute, then this policy's round end."""
        if not np.array_equal(np.sort(start["query_ids"]), np.sort(rnd.new_ids)):
            raise LedgerError(f"{self.dir.start}: its initial set differs from this run's; the run cannot use it")
        state.model, state.optimizer = self._fresh_model(0)
        state.model.load_state_dict(start["model"])
        state.optimizer.load_state_dict(start["optimizer"])
        state.trained_steps = 0
        state.meter = ComputeMeter.from_dict(start["meter"])  # the start's compute counts for this run too
        state.meter.seconds["evaluate"] = 0.0  # this run evaluates the model itself
        ctx = RoundContext(rnd, state.model, state.optimizer, self.data, rng, self.cfg.batch_size)
        # this policy's end of round with the start's model: e.g. stored targets for round 0's items
        Trainer(self.data, state.meter, self.cfg.batch_size).finish_round(ctx, self.policy)
        return int(start["metrics"]["epochs"]), float(start["metrics"]["train_running_accuracy"])

    def _later_round(
        self, t: int, rnd: RoundData, state: TrainingState, rule: StopRule, on_epoch: EpochCallback
    ) -> tuple[int, float]:
        """A round after the initial one: the policy's own way, rule and learning-rate schedule."""
        warm = self.rules.warm_start
        if state.model is None or self.policy.reinitialize:
            state.model, state.optimizer = self._fresh_model(t)
            state.trained_steps = 0
        elif warm.active:
            shrink_perturb(state.model, self.fresh_network(t), warm.shrink, warm.perturb)
        assert state.optimizer is not None
        base_lr = self.rules.lr_of(t)
        set_learning_rate(state.optimizer, base_lr)
        seed_torch(self.cfg.seed, t, "train")
        lr_at = self._round_schedule(rnd, rule.max_epochs, base_lr, state.trained_steps)
        trainer = Trainer(self.data, state.meter, self.cfg.batch_size)
        fit = trainer.fit(
            state.model, state.optimizer, self.policy, rnd, rule, numpy_rng(self.cfg.seed, t, "train"), on_epoch, lr_at,
        )
        state.trained_steps += fit.steps
        anneals = self.rules.schedule.anneals
        state.annealed = self._annealed_copy(t, rnd, state, trainer, base_lr) if anneals else None
        return fit.epochs, fit.running_accuracy

    def _round_schedule(self, rnd: RoundData, epochs: int, base_lr: float, trained: int) -> LearningRate | None:
        """The round's learning rate per step (over at most ``epochs`` epochs), or None to keep it constant."""
        schedule = self.rules.schedule
        if schedule.name == "constant":
            return None
        horizon = self.policy.steps_per_epoch(rnd, self.cfg.batch_size) * epochs
        return lambda step: base_lr * schedule.factor(step, horizon, trained)

    def _annealed_copy(self, t: int, rnd: RoundData, state: TrainingState, trainer: Trainer, base_lr: float) -> nn.Module:
        """Anneal a copy for use; the continual state keeps its pre-anneal weights and optimizer.

        The copy trains on the round's own steps (new items with replay), so the anneal costs
        ``anneal_epochs`` epochs of the round and is metered as training.
        """
        assert state.model is not None and state.optimizer is not None
        model = copy.deepcopy(state.model)
        optimizer = self.optimizer_cfg.build(model)
        optimizer.load_state_dict(copy.deepcopy(state.optimizer.state_dict()))
        schedule = self.rules.schedule
        epochs = schedule.anneal_epochs
        steps = self.policy.steps_per_epoch(rnd, self.cfg.batch_size) * epochs
        seed_torch(self.cfg.seed, t, "anneal")
        trainer.fit(
            model, optimizer, self.policy, rnd, FixedEpochs(epochs), numpy_rng(self.cfg.seed, t, "anneal"),
            lr_at=lambda step: base_lr * schedule.anneal_factor(step, steps), finish_round=False,
        )
        return model.eval()

    def _fresh_model(self, t: int) -> tuple[nn.Module, torch.optim.Optimizer]:
        model = self.fresh_network(t)
        return model, self.optimizer_cfg.build(model)

    def fresh_network(self, t: int) -> nn.Module:
        """Newly initialised weights, seeded by (seed, t)."""
        seed_torch(self.cfg.seed, t, "init")
        return self.model_factory().to(self.data.device)

    # -- checkpoints ------------------------------------------------------------------------
    def checkpoint(self, t: int, state: TrainingState, record: dict, test_entropy: np.ndarray | None,
                   start_key: dict | None) -> dict:
        """Everything resume needs to continue after round ``t`` exactly as if never stopped."""
        assert state.model is not None and state.optimizer is not None
        return {
            "round": t,
            "model": state.model.state_dict(),
            "annealed": state.annealed.state_dict() if state.annealed is not None else None,
            "trained_steps": state.trained_steps,
            "optimizer": state.optimizer.state_dict(),
            "policy": self.policy.state_dict(),
            "meter": state.meter.to_dict(),
            "rng": rng_states(),
            "metrics": record,
            "test_entropy": test_entropy,
            "start_key": start_key,
            "calkit_version": __version__,
        }

    def restore(self, t: int, payload: dict) -> TrainingState:
        """The training state a round's checkpoint holds (the policy's and the RNGs' included)."""
        seed_torch(self.cfg.seed, t, "init")
        model = self.model_from(payload["model"])
        optimizer = self.optimizer_cfg.build(model)
        optimizer.load_state_dict(payload["optimizer"])
        annealed = self.model_from(payload["annealed"]).eval() if payload.get("annealed") is not None else None
        self.policy.load_state_dict(payload["policy"])
        restore_rng_states(payload["rng"])
        meter = ComputeMeter.from_dict(payload["meter"])
        return TrainingState(model, optimizer, meter, t, annealed, payload.get("trained_steps", 0))

    def model_from(self, weights: dict) -> nn.Module:
        model = self.model_factory().to(self.data.device)
        model.load_state_dict(weights)
        return model
