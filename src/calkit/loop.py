"""The active-learning loop: rounds of acquire -> label -> train -> evaluate -> checkpoint.

Durable state lives in the run directory: the ledger (queries and labels) and one checkpoint per
trained round. Everything else is derived from them, so ``resume`` after a crash at any point
(kill -9 included) continues from the last durable state; because every random choice of round t
is seeded by (seed, t, phase), the resumed run ends with the same labeled set and numbers as an
uninterrupted one.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from calkit import __version__
from calkit.acquisition import ModelScoringContext, RandomSampling, make_acquisition
from calkit.checkpoint import atomic_write_text, checkpoint_path, latest_checkpoint, load_checkpoint, prune_checkpoints, save_checkpoint
from calkit.config import RunConfig, plan_rounds
from calkit.data import Dataset, load_dataset
from calkit.data.subsample import subsample_pool
from calkit.errors import ConfigError, LedgerError
from calkit.evaluate import evaluate
from calkit.ledger import Ledger, Query, utc_now
from calkit.models import ModelSpec, batched_inference, build_model
from calkit.oracle import Oracle, make_oracle
from calkit.policies import Policy, ReplayPolicy, RoundData, make_policy
from calkit.progress import Progress
from calkit.seeding import numpy_rng, restore_rng_states, rng_states, seed_torch
from calkit.tensors import DeviceData
from calkit.train import ComputeMeter, FixedEpochs, NewItemsLearned, OptimizerConfig, StopRule, TrainAccuracy, Trainer
from calkit.train.trainer import LearningRate, set_learning_rate

ModelFactory = Callable[[], nn.Module]
DEFAULT_TRAIN_ACCURACY = 0.99
DEFAULT_MAX_EPOCHS = 50  #: the accuracy rules' epoch cap for standard AL


@dataclass(frozen=True)
class RunStatus:
    """Where a run stopped: ``complete``, or ``awaiting_labels`` for round ``round``."""

    state: str
    round: int
    labeled: int
    pending: int = 0

    @property
    def complete(self) -> bool:
        return self.state == "complete"


@dataclass
class _TrainingState:
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


class RunDirectory:
    """Names of the files in a run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.ledger = self.path / "ledger.sqlite"
        self.metrics = self.path / "metrics.jsonl"
        self.checkpoints = self.path / "checkpoints"
        self.queries = self.path / "queries"

    def exists(self) -> bool:
        return self.ledger.exists()


class ActiveLoop:
    """One run. Build it with :meth:`create` (new run) or :meth:`open` (resume)."""

    def __init__(
        self,
        run_dir: RunDirectory,
        cfg: RunConfig,
        dataset: Dataset,
        ledger: Ledger,
        model_factory: ModelFactory | None = None,
        progress: Progress | None = None,
    ):
        self.dir = run_dir
        self.cfg = cfg
        self.dataset = dataset
        self.ledger = ledger
        self.progress = progress or Progress()
        self.plan = plan_rounds(cfg, dataset.pool_size)
        self.policy: Policy = make_policy(cfg.policy, cfg.policy_options())
        self.acquisition = make_acquisition(cfg.acquisition)
        self.oracle: Oracle = make_oracle(cfg.oracle, dataset)
        self.stop_rule = stop_rule_for(cfg, self.policy)
        self.schedule = cfg.lr_schedule(self.policy.default_schedule)
        self.optimizer_cfg = OptimizerConfig(cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay)
        self.model_factory = model_factory or self._spec_factory()
        self.data = DeviceData(dataset, _device(cfg.device))

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        cfg: RunConfig,
        dataset: Dataset | None = None,
        model_factory: ModelFactory | None = None,
        progress: Progress | None = None,
    ) -> "ActiveLoop":
        """Validate everything, then lay out a new run directory."""
        cfg.validate()
        run_dir = RunDirectory(path)
        if run_dir.exists():
            raise LedgerError(f"{run_dir.path} already holds a run; continue it with `calkit resume {run_dir.path}`")
        if run_dir.path.exists() and any(run_dir.path.iterdir()):
            raise LedgerError(f"{run_dir.path} exists and is not empty; choose another --out")
        dataset = dataset or dataset_for(cfg)
        plan_rounds(cfg, dataset.pool_size)  # fail on impossible budgets before touching disk
        make_policy(cfg.policy, cfg.policy_options()), make_acquisition(cfg.acquisition), make_oracle(cfg.oracle, dataset)
        _device(cfg.device)
        if model_factory is None:
            ModelSpec.parse(cfg.model, cfg.dropout)
            _check_model_fits(cfg, dataset)
        run_dir.path.mkdir(parents=True, exist_ok=True)
        cfg.to_yaml(run_dir.config)
        meta = {
            "calkit_version": __version__,
            "created_at": utc_now(),
            "dataset": dataset.name,
            "dataset_fingerprint": dataset.fingerprint(),
            "class_names": list(dataset.class_names),
            "config": cfg.to_dict(),
        }
        ledger = Ledger.create(run_dir.ledger, dataset.ids.tolist(), meta)
        return cls(run_dir, cfg, dataset, ledger, model_factory, progress)

    @classmethod
    def open(
        cls,
        path: str | Path,
        dataset: Dataset | None = None,
        model_factory: ModelFactory | None = None,
        progress: Progress | None = None,
    ) -> "ActiveLoop":
        """Reopen a run directory, refusing data that differs from the run's."""
        run_dir = RunDirectory(path)
        if not run_dir.exists():
            raise LedgerError(f"{run_dir.path} is not a calkit run directory (no ledger.sqlite)")
        cfg = RunConfig.from_yaml(run_dir.config).validate()
        ledger = Ledger.open(run_dir.ledger)
        dataset = dataset or dataset_for(cfg)
        if dataset.fingerprint() != ledger.meta("dataset_fingerprint"):
            raise LedgerError(f"the data of {cfg.dataset!r} differs from the data this run started with")
        return cls(run_dir, cfg, dataset, ledger, model_factory, progress)

    def close(self) -> None:
        self.ledger.close()

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> RunStatus:
        """Run (or continue) until the plan is done or a query awaits people's labels."""
        state = self._restore()
        for t in range(state.last_round + 1, len(self.plan)):
            query = self.ledger.query(t) or self._acquire(t, state)
            state.meter.add(ComputeMeter.from_dict(query.cost))
            self.oracle.answer(query, self.ledger)
            _fault_point(f"labels:{t}")
            pending = len(self.ledger.unanswered(t))
            if pending:
                return RunStatus("awaiting_labels", t, self._labeled_count(t), pending)
            self._train_round(t, query, state)
        last = len(self.plan) - 1
        return RunStatus("complete", last, self._labeled_count(last + 1))

    def _labeled_count(self, upto_round: int) -> int:
        return int(sum(self.plan[:upto_round]))

    def _acquire(self, t: int, state: _TrainingState) -> Query:
        """Choose round t's items and store the query atomically, with the compute it took."""
        start = time.perf_counter()
        asked = self.ledger.queried_ids()
        candidates = np.setdiff1d(self.dataset.ids, asked)
        if t == 0:
            ctx = _RandomOnly(numpy_rng(self.cfg.seed, 0, "initial"))
            selection = RandomSampling().select(ctx, candidates, self.plan[0])
            name, infer_seconds, forward = "random", 0.0, 0
        else:
            assert state.serving is not None
            candidates = score_subset(candidates, self.plan[t], self.cfg.score_multiple, numpy_rng(self.cfg.seed, t, "subset"))
            ctx = ModelScoringContext(
                state.serving, self.data, numpy_rng(self.cfg.seed, t, "select"), self.cfg.score_batch_size
            )
            selection = self.acquisition.select(ctx, candidates, self.plan[t])
            name, infer_seconds, forward = self.acquisition.name, ctx.seconds, ctx.forward_samples
        cost = ComputeMeter(forward_samples=forward)
        cost.seconds["score"] = infer_seconds
        cost.seconds["select"] = time.perf_counter() - start - infer_seconds
        query = Query(t, name, selection.ids, selection.scores, cost.to_dict())
        self.ledger.add_query(query)
        _fault_point(f"query:{t}")
        return query

    def _train_round(self, t: int, query: Query, state: _TrainingState) -> None:
        labeled = self.ledger.queried_ids(before_round=t + 1)
        labels = self.ledger.current_labels(labeled)
        self.data.set_labels(labeled, np.array([labels[int(i)] for i in labeled]))
        rnd = RoundData(t, new_ids=query.ids, history_ids=self.ledger.queried_ids(before_round=t))
        self.progress.round_started(t, len(self.plan), len(labeled))
        if state.model is None or self.policy.reinitialize:
            state.model, state.optimizer = self._fresh_model(t)
            state.trained_steps = 0
        assert state.optimizer is not None
        base_lr = self.cfg.lr * self.policy.lr_multiplier(self.cfg.batch_size, rnd)
        set_learning_rate(state.optimizer, base_lr)
        seed_torch(self.cfg.seed, t, "train")
        trainer = Trainer(self.data, state.meter, self.cfg.batch_size)

        def on_epoch(epoch: int, max_epochs: int, acc: float) -> None:
            self.progress.epoch_done(t, epoch, max_epochs, acc)
            _fault_point(f"train:{t}")

        # A kept model's first round has nothing to continue from: it is the baseline's training
        # (constant rate, no anneal), so continual runs and standard AL share their round-0 model.
        scheduled = self.policy.reinitialize or rnd.has_history
        lr_at = self._round_schedule(rnd, base_lr, state.trained_steps) if scheduled else None
        fit = trainer.fit(
            state.model, state.optimizer, self.policy, rnd, self.stop_rule, numpy_rng(self.cfg.seed, t, "train"),
            on_epoch, lr_at,
        )
        if scheduled:
            state.trained_steps += fit.steps
        anneal = scheduled and self.schedule.anneals
        state.annealed = self._annealed_copy(t, rnd, state, trainer, base_lr) if anneal else None
        with state.meter.phase("evaluate"):
            evaluation = evaluate(state.serving, self.data, self.cfg.score_batch_size)
            scores = {**evaluation.scores, "round_item_accuracy": self._accuracy_by_round(state.serving, t)}
        record = self._record(t, len(labeled), fit.epochs, fit.running_accuracy, scores, state.meter)
        save_checkpoint(self.dir.checkpoints, t, self._payload(t, state, record, evaluation.entropy))
        _fault_point(f"checkpoint:{t}")
        self._publish_metrics(t, record)
        if self.cfg.keep_checkpoints == "last":
            prune_checkpoints(self.dir.checkpoints, t)
        state.last_round = t
        self.progress.round_done(record)

    def _round_schedule(self, rnd: RoundData, base_lr: float, trained: int) -> LearningRate | None:
        """The round's learning rate per step, or None to keep the rate constant."""
        if self.schedule.name == "constant":
            return None
        epochs = self.stop_rule.epoch_cap(has_history=rnd.has_history)
        horizon = self.policy.steps_per_epoch(rnd, self.cfg.batch_size) * epochs
        return lambda step: base_lr * self.schedule.factor(step, horizon, trained)

    def _annealed_copy(self, t: int, rnd: RoundData, state: _TrainingState, trainer: Trainer, base_lr: float) -> nn.Module:
        """Anneal a copy for use; the continual state keeps its pre-anneal weights and optimizer.

        The copy trains on the round's own steps (new items with replay), so the anneal costs
        ``anneal_epochs`` epochs of the round and is metered as training.
        """
        assert state.model is not None and state.optimizer is not None
        model = copy.deepcopy(state.model)
        optimizer = self.optimizer_cfg.build(model)
        optimizer.load_state_dict(copy.deepcopy(state.optimizer.state_dict()))
        epochs = self.schedule.anneal_epochs
        steps = self.policy.steps_per_epoch(rnd, self.cfg.batch_size) * epochs
        seed_torch(self.cfg.seed, t, "anneal")
        trainer.fit(
            model, optimizer, self.policy, rnd, FixedEpochs(epochs), numpy_rng(self.cfg.seed, t, "anneal"),
            lr_at=lambda step: base_lr * self.schedule.anneal_factor(step, steps), finish_round=False,
        )
        return model.eval()

    def _accuracy_by_round(self, model: nn.Module, t: int) -> list[float]:
        """Training accuracy on each round's items so far: forgetting shows as a falling curve."""
        per_round = [self.ledger.query(r).ids for r in range(t + 1)]
        ids = np.concatenate(per_round)
        pred = batched_inference(model, self.data.features(ids), self.cfg.score_batch_size).argmax(1)
        hits = (pred == self.data.labels(ids)).cpu().numpy()
        bounds = np.cumsum([0] + [len(p) for p in per_round])
        return [float(hits[a:b].mean()) for a, b in zip(bounds[:-1], bounds[1:])]

    def test_entropy_at(self, t: int) -> np.ndarray | None:
        """Round ``t``'s test-set entropies as stored by the run (None for runs from before they were)."""
        return load_checkpoint(checkpoint_path(self.dir.checkpoints, t)).get("test_entropy")

    def model_at(self, t: int) -> nn.Module:
        """The model as checkpointed after round ``t`` (eval mode), for analyses after a run."""
        payload = load_checkpoint(checkpoint_path(self.dir.checkpoints, t))
        model = self.model_factory().to(self.data.device)
        model.load_state_dict(payload.get("annealed") or payload["model"])
        return model.eval()

    def _record(self, t: int, labeled: int, epochs: int, train_acc: float, scores: dict, meter: ComputeMeter) -> dict:
        s = meter.seconds
        return {
            "round": t,
            "labeled": labeled,
            "new": int(self.plan[t]),
            **scores,
            "epochs": epochs,
            "train_running_accuracy": train_acc,
            "train_seconds": s["train"],
            "select_seconds": s["score"] + s["select"],
            "score_seconds": s["score"],
            "evaluate_seconds": s["evaluate"],
            "sample_gradients": meter.sample_gradients,
            "optimizer_steps": meter.optimizer_steps,
            "forward_samples": meter.forward_samples,
            "policy": self.policy.name,
            "acquisition": self.acquisition.name,
            "stop_rule": self.stop_rule.describe(),
            "schedule": self.schedule.describe(),
        }

    def _payload(self, t: int, state: _TrainingState, record: dict, test_entropy: np.ndarray | None) -> dict:
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
            "calkit_version": __version__,
        }

    def _publish_metrics(self, t: int, record: dict) -> None:
        """Record in the ledger, then rewrite metrics.jsonl whole, so a crash never duplicates a line."""
        self.ledger.record_metrics(t, record)
        lines = "".join(json.dumps(r) + "\n" for r in self.ledger.metrics())
        atomic_write_text(self.dir.metrics, lines)

    def _fresh_model(self, t: int) -> tuple[nn.Module, torch.optim.Optimizer]:
        seed_torch(self.cfg.seed, t, "init")
        model = self.model_factory().to(self.data.device)
        return model, self.optimizer_cfg.build(model)

    def _restore(self) -> _TrainingState:
        found = latest_checkpoint(self.dir.checkpoints)
        if found is None:
            return _TrainingState(None, None, ComputeMeter(), -1)
        t, path = found
        payload = load_checkpoint(path)
        seed_torch(self.cfg.seed, t, "init")
        model = self.model_factory().to(self.data.device)
        model.load_state_dict(payload["model"])
        optimizer = self.optimizer_cfg.build(model)
        optimizer.load_state_dict(payload["optimizer"])
        annealed = None
        if payload.get("annealed") is not None:
            annealed = self.model_factory().to(self.data.device)
            annealed.load_state_dict(payload["annealed"])
            annealed.eval()
        self.policy.load_state_dict(payload["policy"])
        restore_rng_states(payload["rng"])
        if t < len(self.plan) - 1:
            self._check_rules_unchanged(payload["metrics"])
        self._publish_metrics(t, payload["metrics"])
        meter = ComputeMeter.from_dict(payload["meter"])
        return _TrainingState(model, optimizer, meter, t, annealed, payload.get("trained_steps", 0))

    def _check_rules_unchanged(self, record: dict) -> None:
        """Refuse to train the remaining rounds under other rules than the rounds before them.

        A run's config leaves policy defaults unset, so they are resolved again on every resume:
        after an upgrade that changed one (cal's epoch cap went from 12 to 10), the rest of the
        run would silently train differently. Setting the value in config.yaml pins it.
        """
        now = {"stop_rule": self.stop_rule.describe(), "schedule": self.schedule.describe()}
        changed = [f"{key}: trained with '{record[key]}', now '{value}'"
                   for key, value in now.items() if key in record and record[key] != value]
        if changed:
            raise ConfigError(
                f"{self.dir.path}: its settings no longer resolve to the rules its rounds trained with "
                f"({'; '.join(changed)}), because a default changed in this calkit ({__version__}) or config.yaml "
                f"was edited. A run keeps one set of rules: set the values in {self.dir.config} (for example "
                "max_new_epochs, new_accuracy, max_epochs, schedule) so that they resolve as before, or start a new run"
            )

    def _spec_factory(self) -> ModelFactory:
        spec = ModelSpec.parse(self.cfg.model, self.cfg.dropout)
        shape, n_classes = self.dataset.input_shape, self.dataset.n_classes
        return lambda: build_model(spec, shape, n_classes)


def dataset_for(cfg: RunConfig) -> Dataset:
    """The dataset a configuration names, cut to ``pool_size`` items when that is set."""
    dataset = load_dataset(cfg.dataset, cfg.data_dir, cfg.test_fraction, label_column=cfg.label_column)
    return subsample_pool(dataset, cfg.pool_size) if cfg.pool_size else dataset


def score_subset(
    candidates: np.ndarray, round_size: int, multiple: int | None, rng: np.random.Generator
) -> np.ndarray:
    """A seeded random subset of ``multiple * round_size`` candidates, or all of them.

    Once continual training is cheap, scoring the whole unlabeled pool dominates a round; the
    top-b of a large random subset is nearly as informative (BENCHMARKS.md measures the cost).
    """
    if multiple is None or len(candidates) <= multiple * round_size:
        return candidates
    return np.sort(rng.choice(candidates, size=multiple * round_size, replace=False))


def stop_rule_for(cfg: RunConfig, policy: Policy) -> StopRule:
    """--epochs, else --train-accuracy, else --new-accuracy, else the policy's default.

    Standard AL defaults to the CAL paper's baseline rule (99 % running training accuracy,
    capped); the paper's CAL policies to a fixed number of epochs over the new batch; `cal` to
    training until the new batch is learned. --max-epochs caps standard AL's rounds and every
    initial round; --max-new-epochs caps the continual rounds of the new-items rule.
    """
    initial_cap = cfg.max_epochs or DEFAULT_MAX_EPOCHS
    if cfg.epochs is not None:
        return FixedEpochs(cfg.epochs)
    if cfg.train_accuracy is not None:
        return TrainAccuracy(cfg.train_accuracy, initial_cap)
    if isinstance(policy, ReplayPolicy):
        threshold = cfg.new_accuracy if cfg.new_accuracy is not None else policy.default_new_accuracy
        if threshold is not None:
            first = cfg.max_epochs or policy.default_initial_epochs or DEFAULT_MAX_EPOCHS
            return NewItemsLearned(threshold, cfg.max_new_epochs or policy.default_epochs, first)
        return FixedEpochs(policy.default_epochs)
    if cfg.new_accuracy is not None:  # without replay every trained item is new
        return NewItemsLearned(cfg.new_accuracy, cfg.max_new_epochs or initial_cap, initial_cap)
    return TrainAccuracy(DEFAULT_TRAIN_ACCURACY, initial_cap)


class _RandomOnly:
    """The scoring context of the initial round: a generator and no model."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def probabilities(self, ids: np.ndarray) -> np.ndarray:
        raise RuntimeError("the initial round has no model to score with")

    embeddings = probabilities


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    return device


def _check_model_fits(cfg: RunConfig, dataset: Dataset) -> None:
    spec = ModelSpec.parse(cfg.model, cfg.dropout)
    build_model(spec, dataset.input_shape, dataset.n_classes)


def _fault_point(name: str) -> None:
    """Crash-test hook: ``CALKIT_FAULT_AT=train:2`` kills the process there with SIGKILL.

    Lets the tests prove that resume survives a kill -9 at each step of a round.
    """
    if os.environ.get("CALKIT_FAULT_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
