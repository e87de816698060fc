"""Who answers a query: the dataset's known labels (simulation) or people.

People answer through any channel that writes to the ledger: the Python API
(:meth:`calkit.Run.submit`), answers files (`calkit query` / `calkit ingest`) and, next, the web
application. The loop only waits for them. ``files`` is the former name of ``people``.
"""

from __future__ import annotations

from typing import Protocol

from calkit.data.dataset import Dataset
from calkit.errors import ConfigError
from calkit.ledger import LabelFact, Ledger, Query

ORACLES = ("simulated", "people")
ALIASES = {"files": "people"}
#: The annotator name of the simulated oracle's facts.
SIMULATED = "simulated"


class Oracle(Protocol):
    """Answers what it can of a query by appending label facts to the ledger."""

    name: str

    def answer(self, query: Query, ledger: Ledger) -> None: ...


class SimulatedOracle:
    """Reads the pool's known labels: the researcher's setting. All answers in one transaction."""

    name = "simulated"

    def __init__(self, dataset: Dataset):
        if dataset.y_train is None:
            raise ConfigError(
                f"{dataset.name} has no labels for its pool, so it cannot be simulated; use oracle 'people'"
            )
        self.dataset = dataset

    def answer(self, query: Query, ledger: Ledger) -> None:
        pending = ledger.unanswered(query.round)
        if len(pending) == 0:
            return
        labels = self.dataset.y_train[self.dataset.positions(pending)]
        ledger.submit([LabelFact(int(i), int(y), source="simulated", annotator=SIMULATED)
                       for i, y in zip(pending, labels)])


class PeopleOracle:
    """People answer through the API, answers files or the web application; the loop waits."""

    name = "people"

    def answer(self, query: Query, ledger: Ledger) -> None:
        pass


def oracle_name(name: str) -> str:
    """The oracle a user-facing name stands for (``files`` is ``people``)."""
    key = ALIASES.get(name, name)
    if key not in ORACLES:
        raise ConfigError(f"unknown oracle {name!r}; choose one of {', '.join(ORACLES)}")
    return key


def make_oracle(name: str, dataset: Dataset) -> Oracle:
    return SimulatedOracle(dataset) if oracle_name(name) == "simulated" else PeopleOracle()
