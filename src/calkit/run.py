"""`calkit.Run`: the public Python API of a run, used by the CLI and the labeling application.

A run lives in a directory (config.yaml, ledger.sqlite, checkpoints). Any number of processes
may open it at once: annotators' answers go in through :meth:`Run.submit`, each a short
transaction; one process at a time trains, through :meth:`Run.advance`, guarded by a lock file
that the operating system releases when its holder dies (kill -9 included).

Example (people label; see the README for the whole script)::

    run = calkit.Run.create("runs/demo", dataset="digits", oracle="people", policy="cal", rounds=3)
    for item in run.pending():
        ...  # show item.display to a person
    run.submit({item.id: "7"}, annotator="ana")
    status = run.advance()  # trains once the round's labels are complete
"""

from __future__ import annotations

import copy
import dataclasses
import fcntl
import os
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
from torch import nn

from calkit.answers import IngestResult, annotator_problem, class_index, ingest, write_query
from calkit.config import RunConfig, plan_rounds
from calkit.data import Dataset
from calkit.distributed import current
from calkit.errors import ConfigError, LabelError, LedgerError
from calkit.label_review import PREDICTION_SOURCES, Suspect
from calkit.ledger import ANONYMOUS, LabelFact, Ledger, SubmitResult
from calkit.loop import ActiveLoop, RunDirectory, RunStatus, object_disagrees, open_parts, run_status
from calkit.policies import PolicyOptions
from calkit.progress import Progress

ModelArg = str | nn.Module | Callable[[], nn.Module] | None


@dataclass(frozen=True)
class Item:
    """One item of the open query, as a person labels it.

    ``display`` is what the dataset can show: the text of a text item, otherwise its features
    (an image as ``(C, H, W)``, a table row as a vector). ``score`` is the acquisition score
    (higher: more informative); ``answers`` counts the annotators who answered it so far, and
    ``disputed`` says their current answers tie.
    """

    id: int
    round: int
    rank: int
    score: float
    display: str | np.ndarray
    answers: int = 0
    disputed: bool = False


class Run:
    """One active-learning run. Make it with :meth:`create`, reopen it with :meth:`open`.

    Labeling (pending, submit, status) needs only the ledger and the data; the model, policy and
    acquisition are built on the first :meth:`advance`, so a process that only takes answers (a
    web server) never builds them.
    """

    def __init__(self, run_dir: RunDirectory, cfg: RunConfig, dataset: Dataset, ledger: Ledger,
                 components: dict, progress: Progress | None, loop: ActiveLoop | None = None):
        self._dir, self._cfg, self._dataset, self._ledger = run_dir, cfg, dataset, ledger
        self._components, self._progress, self._loop = components, progress, loop
        self._plan = plan_rounds(cfg, dataset.pool_size)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        dataset: str | Dataset = "digits",
        policy: object = None,
        acquisition: object = None,
        model: ModelArg = None,
        config: RunConfig | None = None,
        start_from: str | Path | None = None,
        progress: Progress | None = None,
        augment: Callable | None = None,
        **options: object,
    ) -> "Run":
        """Validate every option and build every component, then lay out the run directory.

        ``options`` take the names of the `calkit run` flags with underscores (``rounds=3``,
        ``round_size=50``, ``oracle="people"``); ``config`` is a base they override. ``policy``,
        ``acquisition`` and ``model`` take names or objects (a Policy, an Acquisition, an
        ``nn.Module`` returning logits or a function making one). The initial random query is
        opened at once, so people can start labeling before any model exists. ``augment`` is a
        function applied to every training batch (calkit.tensors); like a model object, pass it
        to :meth:`open` again to train on.
        """
        cfg, data, components = _configure(config, dataset, policy, acquisition, model, options)
        components.update(_augment(augment))
        loop = ActiveLoop.create(path, cfg, dataset=data, progress=progress, start_from=start_from, **components)
        loop.open_initial_query()
        return cls(loop.dir, loop.cfg, loop.dataset, loop.ledger, components, progress, loop)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        dataset: Dataset | None = None,
        policy: object = None,
        acquisition: object = None,
        model: ModelArg = None,
        progress: Progress | None = None,
        augment: Callable | None = None,
    ) -> "Run":
        """Reopen a run with the settings it was created with (from its config.yaml).

        To train a run created with a custom policy, acquisition or model, pass the same objects
        again; labeling and status need none of them.
        """
        components = {**_components(policy, acquisition, model), **_augment(augment)}
        run_dir, cfg, ledger, data = open_parts(path, dataset, components.get("policy"), components.get("acquisition"))
        differ = object_disagrees(components["policy"], cfg) if "policy" in components else []
        if differ:
            ledger.close()
            raise ConfigError(f"the policy object differs from the one {run_dir.path} was created with "
                              f"({'; '.join(differ)}); a run keeps its settings")
        return cls(run_dir, cfg, data, ledger, components, progress)

    def close(self) -> None:
        self._ledger.close()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _training(self) -> ActiveLoop:
        """The loop that trains: built on first use, from names or the objects given to open."""
        if self._loop is None:
            if self._cfg.model.startswith("custom") and "model_factory" not in self._components:
                raise ConfigError(f"{self.path} was created with a custom model ({self._cfg.model}); to train it, "
                                  "pass it again: Run.open(path, model=...)")
            for kind in ("policy", "acquisition"):
                if kind not in self._components:
                    _require_registered(kind, getattr(self._cfg, kind), self.path)
            self._loop = ActiveLoop(self._dir, self._cfg, self._dataset, self._ledger,
                                    progress=self._progress, **self._components)
        return self._loop

    # -- what a run is ----------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self._dir.path

    @property
    def config(self) -> RunConfig:
        """The run's settings, every default resolved (what config.yaml holds)."""
        return self._cfg

    @property
    def dataset(self) -> Dataset:
        return self._dataset

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._dataset.class_names

    @property
    def plan(self) -> list[int]:
        """The size of every round, the initial one first."""
        return list(self._plan)

    def metrics(self) -> list[dict]:
        """One record per trained round (what metrics.jsonl holds)."""
        return self._ledger.metrics()

    def describe(self) -> str:
        """One line on what this run does, for people starting or resuming it."""
        loop = self._training()
        return (f"run directory {self.path}: policy {loop.policy.name}, acquisition {loop.acquisition.name}, "
                f"oracle {self.config.oracle}, {len(self._plan)} rounds to {sum(self._plan)} labels, "
                f"stopping rule: {loop.rules.later.describe()}")

    # -- people in the loop -------------------------------------------------------------------
    def pending(self) -> list[Item]:
        """The open query's items that still lack an agreed label, in rank order."""
        ledger = self._ledger
        t = ledger.open_round()
        if t is None:
            return []
        query = ledger.query(t)
        assert query is not None
        waiting = set(ledger.unanswered(t).tolist())
        disputed = set(ledger.disputed(t).tolist())
        items = []
        for rank, (item_id, score) in enumerate(zip(query.ids.tolist(), query.scores.tolist())):
            if item_id in waiting:
                answers = len(ledger.current_answers(item_id)) if item_id in disputed else 0
                items.append(Item(item_id, t, rank, float(score), self.dataset.display(item_id), answers,
                                  item_id in disputed))
        return items

    def submit(
        self, labels: Mapping[int, int | str], annotator: str = ANONYMOUS, *, guideline_version: str | None = None
    ) -> SubmitResult:
        """Store one annotator's answers: every one of them, or none and a LabelError.

        ``labels`` maps item ids to classes, by index or by name. Answers are validated in the
        transaction that writes them (item known, in the open query, class in range). The same
        answer again changes nothing; a changed answer supersedes the annotator's earlier one,
        which is kept. Another annotator's answer on the same item is kept beside it: training
        reads the majority, and a tie is disputed until more answers (or :meth:`resolve`) settle it.
        """
        who = _annotator(annotator)
        classes, problems = self._class_indices(labels)
        facts = [LabelFact(item_id, index, source="api", annotator=who, guideline_version=guideline_version)
                 for item_id, index in classes.items()]
        return self._ledger.submit(facts, n_classes=len(self.class_names), problems=problems)

    def resolve(self, labels: Mapping[int, int | str], decided_by: str, reason: str) -> None:
        """Settle items of the open query by decision (a lead resolving disputed items): the
        decision overrides the majority; every answer stays in the ledger."""
        self._decide(labels, decided_by, reason, corrections=False)

    def correct(self, labels: Mapping[int, int | str], decided_by: str, reason: str) -> None:
        """Correct labels of items asked in any round (a lead acting on a label review): the
        decision overrides the answers, which stay in the ledger, and the next round trained
        reads it (a round already trained is not trained again)."""
        self._decide(labels, decided_by, reason, corrections=True)

    def hold_out(self, count: int) -> np.ndarray:
        """Set ``count`` random, never-asked items aside as a validation set that people label
        (for data without one): they come first at the labeling desk, never train, and every
        round after they have answers reports ``holdout_accuracy`` on them. Returns their ids."""
        if self.config.oracle != "people":
            raise ConfigError("a held-out validation set is labeled by people: this run's labels come from the "
                              f"{self.config.oracle} oracle, and its data's own splits measure it")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"the held-out count must be a positive integer, got {count!r}")
        asked = self._ledger.last_query_round()
        still_needed = sum(self._plan[(-1 if asked is None else asked) + 1:])
        return self._ledger.add_holdout(count, self._cfg.seed, keep=still_needed)

    def _decide(self, labels: Mapping[int, int | str], decided_by: str, reason: str, corrections: bool) -> None:
        who = _annotator(decided_by)
        if not isinstance(reason, str) or not reason.strip():
            raise LabelError({"reason": "a decision needs its reason, as text"})
        decisions, problems = self._class_indices(labels)
        if problems:
            raise LabelError(problems)
        self._ledger.adjudicate(decisions, who, reason, corrections=corrections)

    def _class_indices(self, labels: Mapping[int, int | str]) -> tuple[dict[int, int], dict]:
        """Item id -> class index for the good entries, and what is wrong with the others."""
        if not isinstance(labels, Mapping):
            raise LabelError({"labels": f"must map item ids to classes, got {type(labels).__name__}"})
        good, problems = {}, {}
        for item_id, value in labels.items():
            if not _is_int(item_id):
                problems[item_id] = f"item id {item_id!r} is not an integer"
                continue
            index, why = class_index(value, self.class_names)
            if index is None:
                problems[int(item_id)] = why
            else:
                good[int(item_id)] = index
        return good, problems

    def ingest(self, path: str | Path, annotator: str | None = None, guideline_version: str | None = None) -> IngestResult:
        """Store the answers of a CSV or JSONL file (`calkit ingest`): all of them or none."""
        return ingest(self._ledger, Path(path), list(self.class_names), annotator, guideline_version)

    def write_query(self, out_dir: str | Path | None = None, overwrite: bool = False) -> tuple[Path, Path, int]:
        """Write the pending items as CSV (to fill in) and JSONL (`calkit query`); returns both
        paths and the count. Text items carry their text. A CSV holding answers is kept unless
        ``overwrite``."""
        return write_query(self.pending(), Path(out_dir) if out_dir else self._dir.queries, overwrite)

    # -- training -------------------------------------------------------------------------
    def advance(self) -> RunStatus:
        """Train every round whose labels are complete, opening the next query after each.

        Returns with ``awaiting_labels`` while answers are missing (at once, without loading a
        model), and with ``training`` when another process is training the run; a simulated
        run goes to the end. Safe to call from several processes: each round trains once.
        """
        ranks = current()
        status = ranks.on_main(self.status)
        nothing_to_train = status.complete or (status.state == "awaiting_labels" and self.config.oracle == "people")
        wait = 0.0 if nothing_to_train else LOCK_WAIT_S
        # On several processes rank 0 holds the lock for the job: the ranks train together.
        with _training_lock(self.path, wait) if ranks.is_main else nullcontext(None) as held:
            held = ranks.broadcast(held)
            if held and nothing_to_train:  # only the lock's holder writes files
                ranks.on_main(lambda: self._dir.publish_metrics(self._ledger.metrics()))  # a crash between two writes
            elif held:
                return self._training().run()
        if nothing_to_train:
            return status
        return ranks.on_main(self.status)  # another process holds the lock: training, or only checking for labels

    def predict(self, item_ids) -> tuple[np.ndarray, int]:
        """Class probabilities of pool items under the newest trained model, and that model's
        round (for suggestions shown to people; builds the model, so a web process should not)."""
        from calkit.acquisition import ModelScoringContext

        trained = sorted(self._ledger.trained_rounds())
        if not trained:
            raise LabelError({"model": "no round has been trained yet"})
        loop = self._training()
        ctx = ModelScoringContext(loop.model_at(trained[-1]), loop.data, np.random.default_rng(0),
                                  self._cfg.score_batch_size)
        return ctx.probabilities(np.asarray(item_ids, dtype=np.int64)), trained[-1]

    def review_labels(self, source: str = "crossval") -> list[Suspect]:
        """The agreed labels of the trained rounds, most suspect first: confident learning on
        out-of-sample predictions (calkit.label_review documents ``source``). Builds and trains
        models: not for a web process."""
        from calkit.acquisition import ModelScoringContext
        from calkit.label_review import cross_validated_probabilities, rank_suspects, selector_round

        if source not in PREDICTION_SOURCES:
            raise ConfigError(f"source must be one of {', '.join(PREDICTION_SOURCES)}, got {source!r}")
        trained = sorted(self._ledger.trained_rounds())
        if not trained:
            raise LabelError({"model": "no round has been trained yet"})
        loop = self._training()
        agreed = self._ledger.adjudicated()
        models: dict[int, nn.Module] = {}

        def model(t: int) -> nn.Module:
            if t not in models:
                try:
                    models[t] = loop.model_at(t)
                except (OSError, LedgerError):
                    models[t] = model(trained[-1]) if t != trained[-1] else loop.model_at(t)
            return models[t]

        if source == "crossval":
            ids = np.array([i for t in trained for i in self._ledger.query(t).ids.tolist() if i in agreed],
                           dtype=np.int64)
            rounds = np.array([self._ledger.query_round_of([i])[int(i)] for i in ids])
            given = np.array([agreed[int(i)] for i in ids], dtype=np.int64)
            return rank_suspects(ids, rounds, given, cross_validated_probabilities(loop, ids, given))
        ids, rounds, given, probs = [], [], [], []
        for t in trained:
            items = np.array([i for i in self._ledger.query(t).ids.tolist() if i in agreed], dtype=np.int64)
            chooser = selector_round(t, self._cfg.lookahead)
            chooser = trained[-1] if chooser is None or source == "newest" else chooser

            def predict(m: int) -> np.ndarray:
                ctx = ModelScoringContext(model(m), loop.data, np.random.default_rng(0), self._cfg.score_batch_size)
                return ctx.probabilities(items)

            p = predict(chooser)
            if source == "ensemble":
                later = [m for m in trained if m > chooser]
                p = (p + sum(predict(m) for m in later)) / (1 + len(later))
            ids.append(items)
            rounds.append(np.full(len(items), t))
            given.append(np.array([agreed[int(i)] for i in items], dtype=np.int64))
            probs.append(p)
        return rank_suspects(np.concatenate(ids), np.concatenate(rounds), np.concatenate(given), np.concatenate(probs))

    def status(self) -> RunStatus:
        """Where the run stands: ``awaiting_labels``, ``ready``, ``training`` or ``complete``."""
        status = run_status(self._ledger, self._plan)
        if status.state == "ready" and _training_lock_held(self.path):
            return replace(status, state="training")
        return status


# -- helpers ------------------------------------------------------------------------------
def _configure(
    config: RunConfig | None, dataset: str | Dataset, policy: object, acquisition: object, model: ModelArg,
    options: Mapping[str, object],
) -> tuple[RunConfig, Dataset | None, dict]:
    """The run's config and components from the API's arguments, nothing written yet."""
    raw = (config or RunConfig()).to_dict()
    unknown = sorted(set(options) - set(raw))
    if unknown:
        raise ConfigError(f"unknown options: {', '.join(unknown)}; options take the names of the `calkit run` flags "
                          "with underscores")
    raw.update(options)
    data = dataset if isinstance(dataset, Dataset) else None
    raw["dataset"] = dataset.name if isinstance(dataset, Dataset) else dataset
    for key, value in (("policy", policy), ("acquisition", acquisition)):
        if value is not None:
            raw[key] = value if isinstance(value, str) else _name_of(value, key)
    if policy is not None and not isinstance(policy, str):
        beside = sorted(k for k in (*POLICY_OPTION_FIELDS, "policy_settings")
                        if raw.get(k) is not None and not (k == "mir_sampling" and raw[k] is False))
        if beside:
            raise ConfigError(f"with a policy object, its settings go in the object (its options), not beside it: "
                              f"{', '.join(beside)}")
        _object_options(raw, policy)
    if isinstance(model, str):
        raw["model"] = model
    elif model is not None:
        raw["model"] = f"custom:{type(model).__name__ if isinstance(model, nn.Module) else getattr(model, '__name__', 'factory')}"
    return RunConfig.from_dict(raw).validate(), data, _components(policy, acquisition, model)


def _components(policy: object, acquisition: object, model: ModelArg) -> dict:
    for kind, value in (("policy", policy), ("acquisition", acquisition)):
        if isinstance(value, type):
            raise ConfigError(f"{kind}= takes a name or an instance, got the class {value.__name__}; pass "
                              f"{value.__name__}() (or register the class and pass its name)")
    out: dict = {}
    if policy is not None and not isinstance(policy, str):
        out["policy"] = policy
    if acquisition is not None and not isinstance(acquisition, str):
        out["acquisition"] = acquisition
    if isinstance(model, nn.Module):
        out["model_factory"] = _fresh_copies(model)
    elif callable(model) and not isinstance(model, str):
        out["model_factory"] = model
    return out


def _augment(augment: object) -> dict:
    if augment is None:
        return {}
    if not callable(augment):
        raise ConfigError(f"augment= takes a function of a batch tensor, got {type(augment).__name__}")
    return {"augment": augment}


def _fresh_copies(module: nn.Module) -> Callable[[], nn.Module]:
    """A factory of newly initialised copies of ``module`` (standard AL needs fresh weights
    every round; the loop seeds the generator before each call)."""
    template = copy.deepcopy(module)

    def make() -> nn.Module:
        fresh = copy.deepcopy(template)
        for sub in fresh.modules():
            reset = getattr(sub, "reset_parameters", None)
            if callable(reset):
                reset()
        return fresh

    return make


def _name_of(component: object, kind: str) -> str:
    """The name a policy or acquisition object is recorded under; it must not pass for another."""
    from calkit.acquisition import ACQUISITIONS
    from calkit.policies import POLICIES, PRESETS, policy_class

    name = getattr(component, "name", None)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"a {kind} object needs a `name` attribute (a non-empty string), got {component!r}")
    registry = POLICIES if kind == "policy" else ACQUISITIONS
    if kind == "policy" and name.strip().lower() in PRESETS:  # only make_policy(preset) may carry its name
        taken = not (getattr(component, "preset", None) == name and type(component) is policy_class(name))
    else:
        key = registry.key(name)
        taken = key is not None and registry[key] is not type(component)
    if taken:
        raise ConfigError(f"the {kind} object {component!r} is named {name!r}, as a built-in or registered {kind} "
                          "is; give its class another name, so that the run's records cannot pass for that one's")
    return name


def _require_registered(kind: str, name: str, path: Path) -> None:
    from calkit.acquisition import ACQUISITIONS
    from calkit.policies import resolve_policy_name

    from calkit.policies import POLICIES

    try:
        resolve_policy_name(name) if kind == "policy" else ACQUISITIONS.lookup(name)
    except ConfigError:
        broken = (POLICIES if kind == "policy" else ACQUISITIONS).broken(name)
        if broken:
            raise ConfigError(f"{path} trains with the {kind} {name!r}, but {broken}") from None
        raise ConfigError(f"{path} was created with a {kind} {name!r} that is neither built in nor registered: "
                          f"install or register it, or pass the object: Run.open(path, {kind}=...)") from None


POLICY_OPTION_FIELDS = tuple(f.name for f in dataclasses.fields(PolicyOptions))


def _object_options(raw: dict, policy: object) -> None:
    """Record a policy object's own options in the config, so that the run says what trains."""
    options = getattr(policy, "options", None)
    if dataclasses.is_dataclass(options):
        for key, value in dataclasses.asdict(options).items():
            if key in raw and value is not None and not (key == "mir_sampling" and value is False):
                raw[key] = value
    settings = getattr(policy, "settings", None)
    if dataclasses.is_dataclass(settings):
        raw["policy_settings"] = dataclasses.asdict(settings)


def _annotator(name: object) -> str:
    """An annotator's name, checked as every channel checks it (calkit.answers.annotator_problem)."""
    if not isinstance(name, str):
        raise LabelError({"annotator": f"an annotator needs a non-empty name, got {name!r}"})
    why_not = annotator_problem(name)
    if why_not:
        raise LabelError({"annotator": why_not})
    return name.strip()


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _lock_path(path: Path) -> Path:
    return path / ".train.lock"


#: Seconds advance() keeps trying for the training lock: a status() probe holds it for
#: microseconds, a process that trains for far longer.
LOCK_WAIT_S = 0.5


@contextmanager
def _training_lock(path: Path, wait: float = 0.0) -> Iterator[bool]:
    """Hold the run's training lock if nobody else does (trying for ``wait`` seconds); yields
    whether it is held. The OS releases it when its holder dies, kill -9 included."""
    fd = os.open(_lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.01)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _training_lock_held(path: Path) -> bool:
    """Whether a process holds the training lock. The probe takes a shared lock, which another
    probe does not block, so two processes asking never see each other as training."""
    fd = os.open(_lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the shared lock
    return False
