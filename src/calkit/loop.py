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
from calkit.acquisition import Acquisition, ModelScoringContext, RandomSampling, make_acquisition
from calkit.checkpoint import (
    atomic_write_text,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    save_payload,
)
from calkit.config import RunConfig, plan_rounds
from calkit.resolve import resolve
from calkit.data import Dataset, load_dataset
from calkit.data.subsample import subsample_pool
from calkit.errors import ConfigError, LedgerError
from calkit.evaluate import evaluate
from calkit.ledger import Ledger, Query, utc_now
from calkit.models import ModelSpec, batched_inference, build_model
from calkit.oracle import Oracle, make_oracle
from calkit.policies import Policy, RoundContext, RoundData, make_policy
from calkit.progress import Progress
from calkit.seeding import numpy_rng, restore_rng_states, rng_states, seed_torch
from calkit.tensors import DeviceData
from calkit.train import (
    ComputeMeter,
    FixedEpochs,
    LabeledPasses,
    NewItemsLearned,
    StopRule,
    TrainAccuracy,
    Trainer,
)
from calkit.train.trainer import EpochCallback, LearningRate, set_learning_rate
from calkit.train.warm_start import ShrinkPerturb, shrink_perturb

ModelFactory = Callable[[], nn.Module]


@dataclass(frozen=True)
class RunStatus:
    """Where a run stands.

    ``state`` is ``awaiting_labels`` (round ``round``'s query has ``pending`` items without an
    agreed label, ``disputed`` of them with tied answers), ``ready`` (its labels are complete and
    the next advance trains it), ``training`` (another process is training it) or ``complete``.
    ``labeled`` counts the items of the rounds before ``round``.
    """

    state: str
    round: int
    labeled: int
    pending: int = 0
    disputed: int = 0

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
        self.start = self.path / "start.pt"  #: a trained initial round taken over from another run

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
        policy: Policy | None = None,
        acquisition: Acquisition | None = None,
    ):
        self.dir = run_dir
        self.cfg = cfg = resolve(cfg)
        self.dataset = dataset
        self.ledger = ledger
        self.progress = progress or Progress()
        self.plan = plan_rounds(cfg, dataset.pool_size)
        self.policy: Policy = policy or make_policy(cfg.policy, cfg.policy_options())
        self.acquisition: Acquisition = acquisition or make_acquisition(cfg.acquisition, cfg.acquisition_options)
        self.oracle: Oracle = make_oracle(cfg.oracle, dataset)
        self.initial_rule = initial_rule_for(cfg)
        self.stop_rule = stop_rule_for(cfg)
        self.schedule = cfg.lr_schedule()
        self.warm_start = warm_start_for(cfg)
        self.optimizer_cfg = cfg.optimizer_config()
        self.model_factory = model_factory or self._spec_factory()
        self.data = DeviceData(dataset, _device(cfg.device))
        #: config.yaml predates resolution (calkit 0.2): its defaults come from this calkit, so
        #: resume checks them against the rules its rounds recorded
        self.legacy_config = False

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        cfg: RunConfig,
        dataset: Dataset | None = None,
        model_factory: ModelFactory | None = None,
        progress: Progress | None = None,
        start_from: str | Path | None = None,
        policy: Policy | None = None,
        acquisition: Acquisition | None = None,
    ) -> "ActiveLoop":
        """Validate everything, then lay out a new run directory.

        ``start_from`` names a run whose trained initial round this run takes over instead of
        training its own (same data, seed, model, optimizer and initial rule, checked here):
        `calkit compare` starts every policy of a seed from one model this way.
        """
        cfg = resolve(cfg.validate(), policy, acquisition)
        run_dir = RunDirectory(path)
        if run_dir.exists():
            raise LedgerError(f"{run_dir.path} already holds a run; continue it with `calkit resume {run_dir.path}`")
        if run_dir.path.exists() and any(run_dir.path.iterdir()):
            raise LedgerError(f"{run_dir.path} exists and is not empty; choose another --out")
        dataset = dataset or dataset_for(cfg)
        plan_rounds(cfg, dataset.pool_size)  # fail on impossible budgets before touching disk
        policy = policy or make_policy(cfg.policy, cfg.policy_options())
        acquisition = acquisition or make_acquisition(cfg.acquisition, cfg.acquisition_options)
        make_oracle(cfg.oracle, dataset)
        _device(cfg.device)
        if model_factory is None:
            ModelSpec.parse(cfg.model, cfg.dropout)
            _check_model_fits(cfg, dataset)
        start = None if start_from is None else _read_start(Path(start_from), start_key(cfg, dataset))
        run_dir.path.mkdir(parents=True, exist_ok=True)
        if start is not None:
            save_payload(run_dir.start, start)
        cfg.to_yaml(run_dir.config)
        meta = {
            "calkit_version": __version__,
            "created_at": utc_now(),
            "dataset": dataset.name,
            "dataset_fingerprint": dataset.fingerprint(),
            "class_names": list(dataset.class_names),
            "config": cfg.to_dict(),
            "start_from": None if start is None else start["source"],
        }
        ledger = Ledger.create(run_dir.ledger, dataset.ids.tolist(), meta)
        return cls(run_dir, cfg, dataset, ledger, model_factory, progress, policy, acquisition)

    @classmethod
    def open(
        cls,
        path: str | Path,
        dataset: Dataset | None = None,
        model_factory: ModelFactory | None = None,
        progress: Progress | None = None,
        policy: Policy | None = None,
        acquisition: Acquisition | None = None,
    ) -> "ActiveLoop":
        """Reopen a run directory, refusing data that differs from the run's."""
        run_dir = RunDirectory(path)
        if not run_dir.exists():
            raise LedgerError(f"{run_dir.path} is not a calkit run directory (no ledger.sqlite)")
        written = RunConfig.from_yaml(run_dir.config).validate()
        cfg = resolve(written)
        ledger = Ledger.open(run_dir.ledger)
        dataset = dataset or dataset_for(cfg)
        if dataset.fingerprint() != ledger.meta("dataset_fingerprint"):
            raise LedgerError(f"the data of {cfg.dataset!r} differs from the data this run started with")
        loop = cls(run_dir, cfg, dataset, ledger, model_factory, progress, policy, acquisition)
        loop.legacy_config = not written.resolved
        return loop

    def close(self) -> None:
        self.ledger.close()

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> RunStatus:
        """Run (or continue) until the plan is done or a query awaits people's labels.

        A round trains only once the ledger closed it, and trains on the labels read in the
        transaction that closed it.
        """
        state = self._restore()
        for t in range(state.last_round + 1, len(self.plan)):
            query = self.ledger.query(t) or self._acquire(t, state)
            state.meter.add(ComputeMeter.from_dict(query.cost))
            self.oracle.answer(query, self.ledger)
            _fault_point(f"labels:{t}")
            labels = self.ledger.close_round(t)
            if labels is None:
                return self.status()
            self._train_round(t, query, labels, state)
        return self.status()

    def open_initial_query(self) -> Query:
        """Ask round 0's random items now (it needs no model), so people can start labeling."""
        return self.ledger.query(0) or self._acquire(0, None)

    def status(self) -> RunStatus:
        """Where the run stands, from the ledger alone."""
        trained = self.ledger.trained_rounds()
        if len(trained) >= len(self.plan):
            last = len(self.plan) - 1
            return RunStatus("complete", last, self._labeled_count(last + 1))
        t = len(trained)
        unsettled = len(self.ledger.unanswered(t)) if self.ledger.round_state(t) == "open" else 0
        disputed = len(self.ledger.disputed(t)) if unsettled else 0
        state = "awaiting_labels" if unsettled else "ready"
        return RunStatus(state, t, self._labeled_count(t), unsettled, disputed)

    def _labeled_count(self, upto_round: int) -> int:
        return int(sum(self.plan[:upto_round]))

    def _acquire(self, t: int, state: _TrainingState | None) -> Query:
        """Choose round t's items and store the query atomically, with the compute it took."""
        start = time.perf_counter()
        asked = self.ledger.queried_ids()
        candidates = np.setdiff1d(self.dataset.ids, asked)
        if t == 0:
            ctx = _RandomOnly(numpy_rng(self.cfg.seed, 0, "initial"))
            selection = RandomSampling().select(ctx, candidates, self.plan[0])
            name, infer_seconds, forward = "random", 0.0, 0
        else:
            assert state is not None and state.serving is not None
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

    def _train_round(self, t: int, query: Query, labels: dict[int, int], state: _TrainingState) -> None:
        labeled = self.ledger.queried_ids(before_round=t + 1)
        self.data.set_labels(labeled, np.array([labels[int(i)] for i in labeled]))
        rnd = RoundData(t, new_ids=query.ids, history_ids=self.ledger.queried_ids(before_round=t))
        self.progress.round_started(t, len(self.plan), len(labeled))

        def on_epoch(epoch: int, max_epochs: int, acc: float) -> None:
            self.progress.epoch_done(t, epoch, max_epochs, acc)
            _fault_point(f"train:{t}")

        rule = self.rule_of(t).resolve(rnd, self.policy.steps_per_epoch(rnd, self.cfg.batch_size))
        if t == 0:
            epochs, train_acc = self._initial_round(rnd, state, rule, on_epoch)
        else:
            epochs, train_acc = self._later_round(t, rnd, state, rule, on_epoch)
        with state.meter.phase("evaluate"):
            evaluation = evaluate(state.serving, self.data, self.cfg.score_batch_size)
            scores = {**evaluation.scores, "round_item_accuracy": self._accuracy_by_round(state.serving, t)}
        record = self._record(t, len(labeled), epochs, rule.max_epochs, train_acc, scores, state.meter)
        save_checkpoint(self.dir.checkpoints, t, self._payload(t, state, record, evaluation.entropy))
        _fault_point(f"checkpoint:{t}")
        self._publish_metrics(t, record)
        if self.cfg.keep_checkpoints == "last":
            prune_checkpoints(self.dir.checkpoints, t)
        state.last_round = t
        self.progress.round_done(record)

    def _initial_round(
        self, rnd: RoundData, state: _TrainingState, rule: TrainAccuracy, on_epoch: EpochCallback
    ) -> tuple[int, float]:
        """Round 0, the same for every policy: fresh weights, constant rate, ``initial_rule``.

        Nothing was learned before it, so there is nothing to continue or replay; training it
        alike (or taking it over from another run with ``start_from``) makes every policy of a
        comparison continue from the same model, and the first budget identical by construction.
        """
        rng = numpy_rng(self.cfg.seed, 0, "train")
        if self.dir.start.exists():
            return self._take_over_start(rnd, state, rng)
        state.model, state.optimizer = self._fresh_model(0)
        state.trained_steps = 0
        set_learning_rate(state.optimizer, self.cfg.lr)
        seed_torch(self.cfg.seed, 0, "train")
        trainer = Trainer(self.data, state.meter, self.cfg.batch_size)
        fit = trainer.fit(state.model, state.optimizer, self.policy, rnd, rule, rng, on_epoch)
        return fit.epochs, fit.running_accuracy

    def _take_over_start(self, rnd: RoundData, state: _TrainingState, rng: np.random.Generator) -> tuple[int, float]:
        """The initial round from ``start.pt``: its model, optimizer and compute, then this policy's round end."""
        start = load_checkpoint(self.dir.start)
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
        self, t: int, rnd: RoundData, state: _TrainingState, rule: StopRule, on_epoch: EpochCallback
    ) -> tuple[int, float]:
        """A round after the initial one: the policy's own way, rule and learning-rate schedule."""
        if state.model is None or self.policy.reinitialize:
            state.model, state.optimizer = self._fresh_model(t)
            state.trained_steps = 0
        elif self.warm_start.active:
            shrink_perturb(state.model, self._fresh_network(t), self.warm_start.shrink, self.warm_start.perturb)
        assert state.optimizer is not None
        base_lr = self.lr_of(t)
        set_learning_rate(state.optimizer, base_lr)
        seed_torch(self.cfg.seed, t, "train")
        lr_at = self._round_schedule(rnd, rule.max_epochs, base_lr, state.trained_steps)
        trainer = Trainer(self.data, state.meter, self.cfg.batch_size)
        fit = trainer.fit(
            state.model, state.optimizer, self.policy, rnd, rule, numpy_rng(self.cfg.seed, t, "train"), on_epoch, lr_at,
        )
        state.trained_steps += fit.steps
        state.annealed = self._annealed_copy(t, rnd, state, trainer, base_lr) if self.schedule.anneals else None
        return fit.epochs, fit.running_accuracy

    def _round_schedule(self, rnd: RoundData, epochs: int, base_lr: float, trained: int) -> LearningRate | None:
        """The round's learning rate per step (over at most ``epochs`` epochs), or None to keep it constant."""
        if self.schedule.name == "constant":
            return None
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

    def _record(
        self, t: int, labeled: int, epochs: int, epoch_cap: int, train_acc: float, scores: dict, meter: ComputeMeter
    ) -> dict:
        s = meter.seconds
        return {
            "round": t,
            "labeled": labeled,
            "new": int(self.plan[t]),
            **scores,
            "epochs": epochs,
            "epoch_cap": epoch_cap,
            "train_running_accuracy": train_acc,
            "train_seconds": s["train"],
            "select_seconds": s["score"] + s["select"],
            "score_seconds": s["score"],
            "evaluate_seconds": s["evaluate"],
            "sample_gradients": meter.sample_gradients,
            "optimizer_steps": meter.optimizer_steps,
            "forward_samples": meter.forward_samples,
            "compute": meter.compute,
            "policy": self.policy.name,
            "acquisition": self.acquisition.name,
            **self.rules_of(t),
        }

    def rules_of(self, t: int) -> dict:
        """How round ``t`` trains, as recorded with it and checked again on resume."""
        return {
            "stop_rule": self.rule_of(t).describe(),
            "schedule": "constant" if t == 0 else self.schedule.describe(),
            "warm_start": self.warm_start_of(t),
            "lr": self.lr_of(t),
        }

    def lr_of(self, t: int) -> float:
        """The learning rate round ``t`` starts from, before its schedule: the configured one for
        the shared initial round, the policy's (reset-tuned's 1.5x, cal's replay scaling) after."""
        return self.cfg.lr if t == 0 else later_round_lr(self.cfg, self.policy)

    def warm_start_of(self, t: int) -> str:
        """What the model went through before round ``t`` trained ("none" for fresh weights)."""
        return "none" if t == 0 or self.policy.reinitialize else self.warm_start.describe()

    def rule_of(self, t: int) -> StopRule:
        """The stopping rule round ``t`` trains with: the shared initial rule, then the policy's."""
        return self.initial_rule if t == 0 else self.stop_rule

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
            "start_key": start_key(self.cfg, self.dataset) if t == 0 else None,
            "calkit_version": __version__,
        }

    def _publish_metrics(self, t: int, record: dict) -> None:
        """Record in the ledger, then rewrite metrics.jsonl whole, so a crash never duplicates a line."""
        self.ledger.record_metrics(t, record)
        lines = "".join(json.dumps(r) + "\n" for r in self.ledger.metrics())
        atomic_write_text(self.dir.metrics, lines)

    def _fresh_model(self, t: int) -> tuple[nn.Module, torch.optim.Optimizer]:
        model = self._fresh_network(t)
        return model, self.optimizer_cfg.build(model)

    def _fresh_network(self, t: int) -> nn.Module:
        """Newly initialised weights, seeded by (seed, t)."""
        seed_torch(self.cfg.seed, t, "init")
        return self.model_factory().to(self.data.device)

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
            self.check_rules_unchanged(payload["metrics"])
        self._publish_metrics(t, payload["metrics"])
        meter = ComputeMeter.from_dict(payload["meter"])
        return _TrainingState(model, optimizer, meter, t, annealed, payload.get("trained_steps", 0))

    def check_rules_unchanged(self, record: dict) -> None:
        """Refuse to train the remaining rounds under other rules than the rounds before them.

        A run's config.yaml holds every setting, so this only fires when it was edited, or for a
        config.yaml from calkit 0.2, which left defaults unset: those resolve with this calkit's
        defaults, and after an upgrade that changed one the rest of the run would silently train
        differently. Setting the value in config.yaml pins it.
        """
        now = self.rules_of(record["round"])
        changed = [f"{key}: trained with '{record[key]}', now '{value}'"
                   for key, value in now.items() if key in record and record[key] != value]
        if changed:
            raise ConfigError(
                f"{self.dir.path}: its settings no longer resolve to the rules its rounds trained with "
                f"({'; '.join(changed)}), because a default changed in this calkit ({__version__}) or config.yaml "
                f"was edited. A run keeps one set of rules: set the values in {self.dir.config} (for example "
                "max_new_epochs, new_accuracy, max_epochs, schedule, shrink, lr) so that they resolve as before, or start a new run"
            )

    def _spec_factory(self) -> ModelFactory:
        spec = ModelSpec.parse(self.cfg.model, self.cfg.dropout)
        shape, n_classes = self.dataset.input_shape, self.dataset.n_classes
        return lambda: build_model(spec, shape, n_classes)


def dataset_for(cfg: RunConfig) -> Dataset:
    """The dataset a configuration names, cut to ``pool_size`` items when that is set."""
    dataset = load_dataset(cfg.dataset, cfg.data_dir, cfg.test_fraction, label_column=cfg.label_column,
                           val_fraction=cfg.val_fraction)
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


def initial_rule_for(cfg: RunConfig) -> TrainAccuracy:
    """The initial round's rule, shared by every policy (--initial-accuracy, --initial-max-epochs)."""
    cfg = resolve(cfg)
    return TrainAccuracy(cfg.initial_accuracy, cfg.initial_max_epochs)


def stop_rule_for(cfg: RunConfig) -> StopRule:
    """The rule of every round after the initial one, from the resolved settings
    (calkit.resolve documents the precedence and the defaults)."""
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
    policy = policy or make_policy(cfg.policy, cfg.policy_options())
    later = RoundData(1, new_ids=np.arange(1), history_ids=np.arange(1))
    return cfg.lr * cfg.later_lr_factor * policy.lr_multiplier(cfg.batch_size, later)


def warm_start_for(cfg: RunConfig) -> ShrinkPerturb:
    """Shrink and perturb of a kept model before each later round."""
    cfg = resolve(cfg)
    return ShrinkPerturb(cfg.shrink, cfg.perturb)


def start_key(cfg: RunConfig, dataset: Dataset) -> dict:
    """What decides a run's initial round: runs with equal keys train the same initial model.

    The learning rate is left out on purpose: a run that takes over a start has the start's
    initial round, and its own rate (set again at the start of every later round) only governs
    the rounds after it. Everything else here shapes the model or the optimizer state it inherits.
    """
    fields = ("model", "dropout", "optimizer", "momentum", "weight_decay", "batch_size", "seed", "device")
    return {
        **{name: getattr(cfg, name) for name in fields},
        "initial": plan_rounds(cfg, dataset.pool_size)[0],
        "initial_rule": initial_rule_for(cfg).describe(),
        "dataset": dataset.fingerprint(),
    }


def _read_start(path: Path, key: dict) -> dict:
    """The trained initial round of the run at ``path``, if its start key equals ``key``."""
    run = RunDirectory(path)
    source = checkpoint_path(run.checkpoints, 0)
    if not source.exists():
        raise LedgerError(f"cannot start from {path}: it has no trained initial round ({source} is missing)")
    payload = load_checkpoint(source)
    theirs = payload.get("start_key") or {}
    differ = sorted(k for k in key if theirs.get(k) != key[k])
    if differ:
        shown = "; ".join(f"{k}: {theirs.get(k)!r} there, {key[k]!r} here" for k in differ)
        raise ConfigError(f"cannot start from {path}: its initial round was made differently ({shown})")
    with Ledger.open(run.ledger) as ledger:
        query = ledger.query(0)
    assert query is not None
    return {key_: payload[key_] for key_ in ("model", "optimizer", "meter", "metrics")} | {
        "query_ids": np.asarray(query.ids), "source": str(path.resolve()), "start_key": key,
    }


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
