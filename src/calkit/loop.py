"""The active-learning loop: rounds of acquire -> label -> train -> evaluate -> checkpoint.

Durable state lives in the run directory: the ledger (queries, labels, round states) and one
checkpoint per trained round. Everything else is derived from them, so ``resume`` after a crash
at any point (kill -9 included) continues from the last durable state; because every random
choice of round t is seeded by (seed, t, phase), the resumed run ends with the same labeled set
and numbers as an uninterrupted one. How a round trains is calkit.round_trainer's job; the rules
it follows are calkit.rules'; the files are calkit.run_storage's.

Launched by torchrun, every rank runs this loop: all of them score and train (calkit.distributed),
rank 0 alone reads and writes the ledger and the run's files and tells the others what it read.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from calkit import __version__
from calkit.acquisition import (
    Acquisition, ModelScoringContext, RandomSampling, ShardedScoringContext, make_acquisition,
)
from calkit.config import RunConfig, plan_rounds
from calkit.data import Dataset, load_dataset
from calkit.data.subsample import subsample_pool
from calkit.distributed import current
from calkit.errors import ConfigError, LedgerError
from calkit.evaluate import accuracy_by_round, evaluate
from calkit.faults import fault_point
from calkit.ledger import Ledger, Query, utc_now
from calkit.models import ModelSpec, build_model
from calkit.noise import NoiseModel
from calkit.oracle import Oracle, make_oracle
from calkit.options import build_options
from calkit.policies import Policy, PolicyOptions, RoundData, make_policy
from calkit.progress import Progress
from calkit.records import RoundRecord
from calkit.resolve import resolve
from calkit.round_trainer import ModelFactory, RoundTrainer, TrainingState
from calkit.rules import RoundRules, initial_rule_for, later_round_lr
from calkit.run_storage import RunDirectory, read_start_of
from calkit.seeding import numpy_rng
from calkit.tensors import Augment, pool_data
from calkit.train import ComputeMeter

__all__ = ["ActiveLoop", "RunDirectory", "RunStatus", "dataset_for", "later_round_lr", "score_subset", "start_key"]


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
        augment: Augment | None = None,
    ):
        self.dir = run_dir
        self.cfg = cfg = resolve(cfg)
        self.dataset = dataset
        self.ledger = ledger
        self.ranks = current()
        self.progress = (progress or Progress()) if self.ranks.is_main else Progress()
        self.plan = plan_rounds(cfg, dataset.pool_size)
        self.policy: Policy = policy or make_policy(cfg.policy, cfg.policy_options(), cfg.policy_settings)
        if policy is not None:
            align_policy(policy, cfg)
        self.acquisition: Acquisition = acquisition or make_acquisition(cfg.acquisition, cfg.acquisition_options)
        self.oracle: Oracle = oracle_for(cfg, dataset)
        self.rules = RoundRules(cfg, self.policy)
        self.data = pool_data(dataset, _device(cfg.device), cfg.stream, cfg.loader_workers, augment)
        self.trainer = RoundTrainer(cfg, self.data, self.policy, self.rules, model_factory or self._spec_factory(),
                                    run_dir)

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
        augment: Augment | None = None,
    ) -> "ActiveLoop":
        """Validate everything, then lay out a new run directory.

        ``start_from`` names a run whose trained initial round this run takes over instead of
        training its own (same data, seed, model, optimizer and initial rule, checked here):
        `calkit compare` starts every policy of a seed from one model this way.

        ``augment``: a function applied to every training batch on the device (calkit.tensors);
        it is code, not a setting, so ``open`` needs it again to resume the run alike.
        """
        ranks = current()
        if ranks.distributed:  # rank 0 lays the run out (or fails, on every rank); all then open it
            checked = ranks.on_main(lambda: resolve(cfg.validate(), policy, acquisition))
            dataset = dataset or dataset_for(checked)  # loaded once per rank: a pass over the pool each time
            ranks.on_main(lambda: cls._create_here(path, cfg, dataset, model_factory, None, start_from, policy,
                                                   acquisition, augment).close())
            return cls.open(path, dataset, model_factory, progress, policy, acquisition, augment)
        return cls._create_here(path, cfg, dataset, model_factory, progress, start_from, policy, acquisition, augment)

    @classmethod
    def _create_here(cls, path, cfg, dataset, model_factory, progress, start_from, policy, acquisition,
                     augment) -> "ActiveLoop":
        cfg = resolve(cfg.validate(), policy, acquisition)
        run_dir = RunDirectory(path)
        if run_dir.exists():
            raise LedgerError(f"{run_dir.path} already holds a run; continue it with `calkit resume {run_dir.path}`")
        if run_dir.path.exists() and any(run_dir.path.iterdir()):
            raise LedgerError(f"{run_dir.path} exists and is not empty; choose another --out")
        dataset = dataset or dataset_for(cfg)
        plan_rounds(cfg, dataset.pool_size)  # fail on impossible budgets before touching disk
        policy = policy or make_policy(cfg.policy, cfg.policy_options(), cfg.policy_settings)
        acquisition = acquisition or make_acquisition(cfg.acquisition, cfg.acquisition_options)
        oracle_for(cfg, dataset)
        _device(cfg.device)
        RoundRules(cfg, policy)
        _check_model_fits(cfg, dataset, model_factory)
        start = None if start_from is None else read_start_of(Path(start_from), start_key(cfg, dataset))
        run_dir.claim()
        if start is not None:
            run_dir.write_start(start)
        cfg.to_yaml(run_dir.config)
        meta = {
            "calkit_version": __version__,
            "created_at": utc_now(),
            "dataset": dataset.name,
            "dataset_fingerprint": dataset.fingerprint(),
            "class_names": list(dataset.class_names),
            "config": cfg.to_dict(),
            "start_from": None if start is None else start["source"],
            "augment": None if augment is None else getattr(augment, "__name__", type(augment).__name__),
        }
        ledger = Ledger.create(run_dir.ledger, dataset.ids.tolist(), meta)
        return cls(run_dir, cfg, dataset, ledger, model_factory, progress, policy, acquisition, augment)

    @classmethod
    def open(
        cls,
        path: str | Path,
        dataset: Dataset | None = None,
        model_factory: ModelFactory | None = None,
        progress: Progress | None = None,
        policy: Policy | None = None,
        acquisition: Acquisition | None = None,
        augment: Augment | None = None,
    ) -> "ActiveLoop":
        """Reopen a run directory, refusing data that differs from the run's."""
        run_dir, cfg, ledger, dataset = open_parts(path, dataset, policy, acquisition)
        try:
            return cls(run_dir, cfg, dataset, ledger, model_factory, progress, policy, acquisition, augment)
        except BaseException:
            ledger.close()
            raise

    def close(self) -> None:
        self.ledger.close()

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> RunStatus:
        """Run (or continue) until the plan is done or a query awaits people's labels.

        A round trains only once the ledger closed it, and trains on the labels read in the
        transaction that closed it.
        """
        main = self.ranks.on_main
        augmented = main(lambda: self.ledger.meta("augment", None))
        if augmented and self.data.augment is None:
            raise ConfigError(f"{self.dir.path} trains with an augmentation ({augmented}), which is code, not a "
                              "setting; to train it, pass it again: Run.open(path, augment=...) or "
                              "ActiveLoop.open(path, augment=...)")
        if self.oracle.name == "people" and main(self.status).state == "awaiting_labels":
            main(lambda: self.dir.publish_metrics(self.ledger.metrics()))  # in case a crash came between the two writes
            return main(self.status)  # nothing to train: no restore
        state = self._restore()
        for t in range(state.last_round + 1, len(self.plan)):
            query = main(lambda: self.ledger.query(t)) or self._acquire(t, state)
            state.meter.add(ComputeMeter.from_dict(query.cost))
            labels = main(lambda: self._answer(t, query))
            if labels is None:
                return main(self.status)
            if self.cfg.lookahead and 0 < t < len(self.plan) - 1 and main(lambda: self.ledger.query(t + 1)) is None:
                self._acquire(t + 1, state, ahead=True)
            self._train_round(t, query, labels, state)
        return main(self.status)

    def _answer(self, t: int, query: Query) -> dict[int, int] | None:
        """The oracle's answers, then round t's labels if the ledger could close it."""
        self.oracle.answer(query, self.ledger)
        fault_point(f"labels:{t}")
        return self.ledger.close_round(t)

    def open_initial_query(self) -> Query:
        """Ask round 0's random items now (it needs no model), so people can start labeling."""
        return self.ranks.on_main(lambda: self.ledger.query(0)) or self._acquire(0, None)

    def status(self) -> RunStatus:
        return run_status(self.ledger, self.plan)

    def _acquire(self, t: int, state: TrainingState | None, ahead: bool = False) -> Query:
        """Choose round t's items and store the query atomically, with the compute it took.

        ``ahead``: round t-1 is closed but not trained yet (lookahead), so the newest model,
        the one of round t-2, chooses.
        """
        start = time.perf_counter()
        candidates = np.setdiff1d(self.dataset.ids, self.ranks.on_main(lambda: self.ledger.unavailable_ids()))
        if t == 0:
            ctx = _RandomOnly(numpy_rng(self.cfg.seed, 0, "initial"))
            selection = RandomSampling().select(ctx, candidates, self.plan[0])
            name, infer_seconds, forward = "random", 0.0, 0
        else:
            assert state is not None and state.serving is not None
            candidates = score_subset(candidates, self.plan[t], self.cfg.score_multiple, numpy_rng(self.cfg.seed, t, "subset"))
            ctx = self._scoring_context(state.serving, numpy_rng(self.cfg.seed, t, "select"))
            selection = self.acquisition.select(ctx, candidates, self.plan[t])
            forward = ctx.job_forward_samples() if isinstance(ctx, ShardedScoringContext) else ctx.forward_samples
            name, infer_seconds = self.acquisition.name, ctx.seconds
        cost = ComputeMeter(forward_samples=forward)
        cost.seconds["score"] = infer_seconds
        cost.seconds["select"] = time.perf_counter() - start - infer_seconds
        query = Query(t, name, selection.ids, selection.scores, cost.to_dict())
        self.ranks.on_main(lambda: self.ledger.add_query(query, ahead=ahead))
        fault_point(f"query:{t}")
        return query

    def _scoring_context(self, model: nn.Module, rng: np.random.Generator) -> ModelScoringContext:
        """Pool scoring on this process, or shared by the job's ranks (the same selection)."""
        if self.ranks.distributed:
            return ShardedScoringContext(model, self.data, rng, self.cfg.score_batch_size, self.ranks)
        return ModelScoringContext(model, self.data, rng, self.cfg.score_batch_size)

    def _train_round(self, t: int, query: Query, labels: dict[int, int], state: TrainingState) -> None:
        labeled, history = self.ranks.on_main(
            lambda: (self.ledger.queried_ids(before_round=t + 1), self.ledger.queried_ids(before_round=t)))
        self.data.set_labels(labeled, np.array([labels[int(i)] for i in labeled]))
        rnd = RoundData(t, new_ids=query.ids, history_ids=history)
        self.progress.round_started(t, len(self.plan), len(labeled))

        def on_epoch(epoch: int, max_epochs: int, acc: float) -> None:
            self.progress.epoch_done(t, epoch, max_epochs, acc)
            fault_point(f"train:{t}")

        fit = self.trainer.train(t, rnd, state, on_epoch)
        self.ranks.on_main(lambda: self._finish_round(t, query, labeled, fit, state))
        state.last_round = t

    def _finish_round(self, t: int, query: Query, labeled: np.ndarray, fit, state: TrainingState) -> None:
        """Evaluate, checkpoint and record a trained round (rank 0's job on several processes)."""
        with state.meter.phase("evaluate"):
            evaluation = evaluate(state.serving, self.data, self.cfg.score_batch_size,
                                  holdout=self.ledger.holdout_labels() if len(self.ledger.holdout_ids()) else None)
            per_round = [self.ledger.query(r).ids for r in range(t + 1)]
            by_round = accuracy_by_round(state.serving, self.data, per_round, self.cfg.score_batch_size)
        record = RoundRecord(
            t, len(labeled), int(self.plan[t]), {**evaluation.scores, "round_item_accuracy": by_round}, fit.epochs,
            fit.rule.max_epochs, fit.running_accuracy, ComputeMeter.from_dict(state.meter.to_dict()),
            self.policy.name, self.acquisition.name, self.rules.describe(t),
        ).to_dict()
        key = start_key(self.cfg, self.dataset) if t == 0 else None
        self.dir.save_round(t, self.trainer.checkpoint(t, state, record, evaluation.entropy, key))
        fault_point(f"checkpoint:{t}")
        self._publish_metrics(t, record)
        if self.cfg.keep_checkpoints == "last":
            self.dir.prune(t)
        self.progress.round_done(record)

    def _publish_metrics(self, t: int, record: dict) -> None:
        """Record in the ledger (which marks the round trained), then rewrite metrics.jsonl."""
        self.ledger.record_metrics(t, record)
        self.dir.publish_metrics(self.ledger.metrics())

    def _restore(self) -> TrainingState:
        found = self.ranks.on_main(self.dir.latest_round)
        if found is None:
            return TrainingState(None, None, ComputeMeter(), -1)
        t, payload = found
        state = self.trainer.restore(t, payload)
        if t < len(self.plan) - 1:
            self.check_rules_unchanged(payload["metrics"])
        self.ranks.on_main(lambda: self._publish_metrics(t, payload["metrics"]))
        return state

    def check_rules_unchanged(self, record: dict) -> None:
        """Refuse to train the remaining rounds under other rules than the rounds before them.

        A run's config.yaml holds every setting, so this only fires when it was edited, or for a
        config.yaml from calkit 0.2, which left defaults unset: those resolve with this calkit's
        defaults, and after an upgrade that changed one the rest of the run would silently train
        differently. Setting the value in config.yaml pins it.
        """
        now = self.rules.describe(record["round"])
        changed = [f"{key}: trained with '{record[key]}', now '{value}'"
                   for key, value in now.items() if key in record and record[key] != value]
        if changed:
            raise ConfigError(
                f"{self.dir.path}: its settings no longer resolve to the rules its rounds trained with "
                f"({'; '.join(changed)}), because a default changed in this calkit ({__version__}) or config.yaml "
                f"was edited. A run keeps one set of rules: set the values in {self.dir.config} (for example "
                "max_new_epochs, new_accuracy, max_epochs, schedule, shrink, lr) so that they resolve as before, or start a new run"
            )

    # -- after a run ----------------------------------------------------------------------------
    def test_entropy_at(self, t: int) -> np.ndarray | None:
        """Round ``t``'s test-set entropies as stored by the run (None for runs from before they were)."""
        return self.dir.round_payload(t).get("test_entropy")

    def model_at(self, t: int) -> nn.Module:
        """The model as checkpointed after round ``t`` (eval mode), for analyses after a run."""
        payload = self.dir.round_payload(t)
        return self.trainer.model_from(payload.get("annealed") or payload["model"]).eval()

    def _spec_factory(self) -> ModelFactory:
        spec = ModelSpec.parse(self.cfg.model, self.cfg.dropout)
        shape, n_classes = self.dataset.input_shape, self.dataset.n_classes
        return lambda: build_model(spec, shape, n_classes)


def open_parts(
    path: str | Path, dataset: Dataset | None = None, policy: Policy | None = None,
    acquisition: Acquisition | None = None,
) -> tuple[RunDirectory, RunConfig, Ledger, Dataset]:
    """A run directory's settings, ledger and data, checked against each other: what labeling
    needs, without building a model or a policy.

    On several processes rank 0 opens and checks; the others take its settings, load the data
    themselves (it must be the same: its fingerprint is compared) and hold no ledger, so a job on
    several machines needs the run directory on rank 0's machine only.
    """
    ranks = current()
    if ranks.distributed:
        def checked() -> tuple[dict, str]:
            run_dir, cfg, ledger, data = open_parts_here(path, dataset, policy, acquisition)
            opened.append((run_dir, cfg, ledger, data))
            return cfg.to_dict(), data.fingerprint()

        opened: list = []
        settings, fingerprint = ranks.on_main(checked)
        if ranks.is_main:
            return opened[0]
        cfg = RunConfig.from_dict(settings)
        dataset = dataset or dataset_for(cfg)
        if dataset.fingerprint() != fingerprint:
            raise LedgerError(f"rank {ranks.rank}: the data of {cfg.dataset!r} differs from rank 0's")
        return RunDirectory(path), cfg, LedgerOnRankZero(), dataset
    return open_parts_here(path, dataset, policy, acquisition)


def open_parts_here(
    path: str | Path, dataset: Dataset | None = None, policy: Policy | None = None,
    acquisition: Acquisition | None = None,
) -> tuple[RunDirectory, RunConfig, Ledger, Dataset]:
    run_dir = RunDirectory(path)
    if not run_dir.exists():
        raise LedgerError(f"{run_dir.path} is not a calkit run directory (no ledger.sqlite)")
    written = RunConfig.from_yaml(run_dir.config).validate()
    ledger = Ledger.open(run_dir.ledger)
    try:
        cfg = resolve(written, policy, acquisition)
        check_config_unchanged(run_dir, written, cfg, ledger, policy, acquisition)
        dataset = dataset or dataset_for(cfg)
        if dataset.fingerprint() != ledger.meta("dataset_fingerprint"):
            raise LedgerError(f"the data of {cfg.dataset!r} differs from the data this run started with")
        check_plan_matches(run_dir, plan_rounds(cfg, dataset.pool_size), ledger)
    except BaseException:
        ledger.close()
        raise
    return run_dir, cfg, ledger, dataset


#: Settings config.yaml may change after creation: where the run finds its data (the data's
#: fingerprint is checked), how many rounds it goes on for, where it computes. Any other change
#: would make the rounds already trained mean something else.
CHANGEABLE = frozenset({"dataset", "data_dir", "rounds", "budget", "device", "score_batch_size", "keep_checkpoints",
                        "resolved", "stream", "loader_workers"})


#: Settings a calkit 0.2 config left unset that may be pinned to any value: what they decide is
#: recorded with each round (stop rule, schedule, warm start, learning rate), and resume checks
#: it (check_rules_unchanged), so a pin to other values than the rounds trained with is refused.
PINNABLE = frozenset({"epochs", "train_accuracy", "new_accuracy", "max_epochs", "max_new_epochs", "labeled_passes",
                      "min_round_steps", "schedule", "shrink", "perturb", "lr_scaling", "replay_ratio",
                      "later_lr_factor", "initial_accuracy", "initial_max_epochs"})


def check_config_unchanged(run_dir: RunDirectory, written: RunConfig, cfg: RunConfig, ledger: Ledger,
                           policy: Policy | None = None, acquisition: Acquisition | None = None) -> None:
    """Refuse a config.yaml edited since the run was created (the ledger keeps the original).

    Both are compared resolved. A calkit 0.2 config left defaults unset, which resolve with this
    calkit's defaults: pinning one of PINNABLE is allowed (the round records decide), any other
    only to the value it resolves to.
    """
    created = ledger.meta("config", None)
    if not isinstance(created, dict):
        return
    as_created = RunConfig.from_dict(created)
    original = resolve(as_created, policy, acquisition).to_dict()
    if as_created.resolved != written.resolved:
        raise ConfigError(f"{run_dir.config} says resolved: {str(written.resolved).lower()}, but the run was created "
                          f"{'with' if not written.resolved else 'without'} its defaults written out; put it back")
    now = cfg.to_dict()
    pinned = set() if as_created.resolved else {k for k in PINNABLE if getattr(as_created, k) is None}
    changed = [k for k in now if k not in CHANGEABLE | pinned and now[k] != original[k]]
    if changed:
        shown = "; ".join(f"{k}: {original[k]!r} at creation, {now[k]!r} now" for k in changed)
        raise ConfigError(f"{run_dir.config} was edited ({shown}). A run keeps the settings it was created with "
                          f"(only {', '.join(sorted(CHANGEABLE))} may change); put them back, or start a new run")


def check_plan_matches(run_dir: RunDirectory, plan: list[int], ledger: Ledger) -> None:
    """The rounds already asked must be the plan's first rounds, with the plan's sizes."""
    last = ledger.last_query_round()
    asked = [] if last is None else [len(ledger.query(t).ids) for t in range(last + 1)]
    if len(asked) > len(plan) or any(a != p for a, p in zip(asked, plan)):
        raise ConfigError(f"{run_dir.path}: its settings now plan rounds of {plan}, but it asked rounds of {asked}; "
                          f"put the round settings in {run_dir.config} back")


def align_policy(policy: Policy, cfg: RunConfig) -> None:
    """Make a policy object train with the run's recorded settings, which were resolved from it
    at creation: the config, not the object, says what the run means."""
    if isinstance(getattr(policy, "options", None), PolicyOptions):
        policy.options = cfg.policy_options()
    if policy.Options is not None:
        policy.settings = build_options(policy.Options, cfg.policy_settings, f"policy {policy.name!r}")


def object_disagrees(policy: Policy, cfg: RunConfig) -> list[str]:
    """The settings a policy object sets otherwise than the run recorded (its name included)."""
    out = [] if policy.name == cfg.policy else [f"policy: {cfg.policy!r} recorded, the object is {policy.name!r}"]
    options = getattr(policy, "options", None)
    if isinstance(options, PolicyOptions):
        recorded = cfg.policy_options()
        out += [f"{k}: {getattr(recorded, k)!r} recorded, {v!r} in the object"
                for k, v in dataclasses.asdict(options).items()
                if v is not None and v != getattr(recorded, k) and not (k == "mir_sampling" and v is False)]
    return out


def run_status(ledger: Ledger, plan: list[int]) -> RunStatus:
    """Where a run stands, from its ledger alone."""
    trained = ledger.trained_rounds()
    if len(trained) >= len(plan):
        return RunStatus("complete", len(plan) - 1, sum(plan))
    t = len(trained)
    unsettled = len(ledger.unanswered(t)) if ledger.round_state(t) == "open" else 0
    disputed = len(ledger.disputed(t)) if unsettled else 0
    return RunStatus("awaiting_labels" if unsettled else "ready", t, sum(plan[:t]), unsettled, disputed)


def oracle_for(cfg: RunConfig, dataset: Dataset) -> Oracle:
    return make_oracle(cfg.oracle, dataset, cfg.annotators, NoiseModel(cfg.noise_model, cfg.label_noise), cfg.seed)


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
    top-b of a large random subset is a cheaper pick (BENCHMARKS.md, "Scaling", models the time
    it saves; how much less informative the pick is has not been measured).
    """
    if multiple is None or len(candidates) <= multiple * round_size:
        return candidates
    return np.sort(rng.choice(candidates, size=multiple * round_size, replace=False))


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


class LedgerOnRankZero:
    """What ranks other than 0 hold instead of the ledger: rank 0 alone opens it (SQLite is for the
    processes of one machine), and tells the others what they need. Any other use is a bug."""

    def close(self) -> None:
        pass

    def __getattr__(self, name: str):
        raise RuntimeError(f"ledger.{name} used on rank {current().rank}: only rank 0 reads and writes the ledger")


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
    return current().device(name)


def _check_model_fits(cfg: RunConfig, dataset: Dataset, factory: ModelFactory | None) -> None:
    """The model takes the dataset's items and gives one logit per class, checked on two items."""
    if factory is None:
        model = build_model(ModelSpec.parse(cfg.model, cfg.dropout), dataset.input_shape, dataset.n_classes)
    else:
        model = factory()
        if not isinstance(model, nn.Module):
            raise ConfigError(f"the model factory made {type(model).__name__}, not a torch.nn.Module")
    device = _device(cfg.device)
    try:
        with torch.no_grad():
            out = model.to(device).eval()(torch.as_tensor(np.asarray(dataset.x_train[:2]), device=device))
    except Exception as exc:
        raise ConfigError(f"the model cannot take {dataset.name}'s items (shape {dataset.input_shape}): {exc}") from exc
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"the model returns {type(out).__name__}; it must return a tensor of logits")
    if tuple(out.shape) != (min(2, dataset.pool_size), dataset.n_classes):
        raise ConfigError(f"the model gives outputs of shape {tuple(out.shape)[1:]} per item; it must give one logit "
                          f"per class ({dataset.n_classes})")
