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
import fcntl
import os
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
from torch import nn

from calkit.answers import IngestResult, ingest, write_query
from calkit.config import RunConfig
from calkit.data import Dataset
from calkit.errors import ConfigError, LabelError
from calkit.ledger import LabelFact, SubmitResult
from calkit.loop import ActiveLoop, RunDirectory, RunStatus
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
    """One active-learning run. Make it with :meth:`create`, reopen it with :meth:`open`."""

    def __init__(self, loop: ActiveLoop):
        self._loop = loop

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
        **options: object,
    ) -> "Run":
        """Validate every option and build every component, then lay out the run directory.

        ``options`` take the names of the `calkit run` flags with underscores (``rounds=3``,
        ``round_size=50``, ``oracle="people"``); ``config`` is a base they override. ``policy``,
        ``acquisition`` and ``model`` take names or objects (a Policy, an Acquisition, an
        ``nn.Module`` returning logits or a function making one). The initial random query is
        opened at once, so people can start labeling before any model exists.
        """
        cfg, data, components = _configure(config, dataset, policy, acquisition, model, options)
        loop = ActiveLoop.create(path, cfg, dataset=data, progress=progress, start_from=start_from, **components)
        loop.open_initial_query()
        return cls(loop)

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
    ) -> "Run":
        """Reopen a run with the settings it was created with (from its config.yaml).

        Pass the same objects again for a run created with a custom policy, acquisition or
        model; a built-in or registered name reopens by itself.
        """
        cfg = RunConfig.from_yaml(RunDirectory(path).config) if RunDirectory(path).exists() else None
        components = _components(policy, acquisition, model)
        if cfg is not None and cfg.model.startswith("custom") and "model_factory" not in components:
            raise ConfigError(f"{path} was created with a custom model ({cfg.model}); pass it again: Run.open(path, model=...)")
        return cls(ActiveLoop.open(path, dataset=dataset, progress=progress, **components))

    def close(self) -> None:
        self._loop.close()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what a run is ----------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self._loop.dir.path

    @property
    def config(self) -> RunConfig:
        """The run's settings, every default resolved (what config.yaml holds)."""
        return self._loop.cfg

    @property
    def dataset(self) -> Dataset:
        return self._loop.dataset

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._loop.dataset.class_names

    @property
    def plan(self) -> list[int]:
        """The size of every round, the initial one first."""
        return list(self._loop.plan)

    def metrics(self) -> list[dict]:
        """One record per trained round (what metrics.jsonl holds)."""
        return self._loop.ledger.metrics()

    def describe(self) -> str:
        """One line on what this run does, for people starting or resuming it."""
        loop = self._loop
        return (f"run directory {self.path}: policy {loop.policy.name}, acquisition {loop.acquisition.name}, "
                f"oracle {self.config.oracle}, {len(loop.plan)} rounds to {sum(loop.plan)} labels, "
                f"stopping rule: {loop.rules.later.describe()}")

    # -- people in the loop -------------------------------------------------------------------
    def pending(self) -> list[Item]:
        """The open query's items that still lack an agreed label, in rank order."""
        ledger = self._loop.ledger
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
        self, labels: Mapping[int, int | str], annotator: str = "anonymous", *, guideline_version: str | None = None
    ) -> SubmitResult:
        """Store one annotator's answers: every one of them, or none and a LabelError.

        ``labels`` maps item ids to classes, by index or by name. Answers are validated in the
        transaction that writes them (item known, in the open query, class in range). The same
        answer again changes nothing; a changed answer supersedes the annotator's earlier one,
        which is kept. Another annotator's answer on the same item is kept beside it: training
        reads the majority, and a tie is disputed until more answers settle it.
        """
        if not isinstance(annotator, str) or not annotator.strip():
            raise LabelError({-1: f"annotator must be a non-empty name, got {annotator!r}"})
        facts, problems = [], {}
        for item_id, value in labels.items():
            index = _class_index(value, self.class_names)
            if not _is_int(item_id):
                problems[item_id] = f"item id {item_id!r} is not an integer"
            elif index is None and _is_int(value):
                problems[int(item_id)] = f"class {value!r} is out of range (0..{len(self.class_names) - 1})"
            elif index is None:
                problems[int(item_id)] = f"class {value!r} is not one of {list(self.class_names)} or an index of them"
            else:
                facts.append(LabelFact(int(item_id), index, source="api", annotator=annotator.strip(),
                                       guideline_version=guideline_version))
        return self._loop.ledger.submit(facts, n_classes=len(self.class_names), problems=problems)

    def ingest(self, path: str | Path, annotator: str | None = None, guideline_version: str | None = None) -> IngestResult:
        """Store the answers of a CSV or JSONL file (`calkit ingest`): all of them or none."""
        return ingest(self._loop.ledger, Path(path), list(self.class_names), annotator, guideline_version)

    def write_query(self, out_dir: str | Path | None = None) -> tuple[Path, Path, int]:
        """Write the pending items as CSV (to fill in) and JSONL (`calkit query`); returns both
        paths and the count. Text items carry their text."""
        return write_query(self.pending(), Path(out_dir) if out_dir else self._loop.dir.queries)

    # -- training -------------------------------------------------------------------------
    def advance(self) -> RunStatus:
        """Train every round whose labels are complete, opening the next query after each.

        Returns at once with state ``training`` when another process holds the run's training
        lock, and with ``awaiting_labels`` while answers are missing; a simulated run goes to
        the end. Safe to call from several processes: each round trains once.
        """
        with _training_lock(self.path) as held:
            if held:
                return self._loop.run()
        return self.status()  # another process holds the lock: training, or only checking for labels

    def status(self) -> RunStatus:
        """Where the run stands: ``awaiting_labels``, ``ready``, ``training`` or ``complete``."""
        status = self._loop.status()
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
    if isinstance(model, str):
        raw["model"] = model
    elif model is not None:
        raw["model"] = f"custom:{type(model).__name__ if isinstance(model, nn.Module) else getattr(model, '__name__', 'factory')}"
    return RunConfig.from_dict(raw).validate(), data, _components(policy, acquisition, model)


def _components(policy: object, acquisition: object, model: ModelArg) -> dict:
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
    name = getattr(component, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a {kind} object needs a `name` attribute (a non-empty string), got {component!r}")
    return name


def _class_index(value: object, class_names: tuple[str, ...]) -> int | None:
    """A class by name, else by index (a class named "3" wins over index 3)."""
    if isinstance(value, str):
        text = value.strip()
        if text in class_names:
            return class_names.index(text)
        return int(text) if text.isdigit() and int(text) < len(class_names) else None
    if _is_int(value) and 0 <= int(value) < len(class_names):
        return int(value)
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _lock_path(path: Path) -> Path:
    return path / ".train.lock"


@contextmanager
def _training_lock(path: Path) -> Iterator[bool]:
    """Hold the run's training lock if nobody else does; yields whether it is held."""
    fd = os.open(_lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _training_lock_held(path: Path) -> bool:
    with _training_lock(path) as held:
        return not held
