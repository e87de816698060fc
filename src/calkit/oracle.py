"""Who answers a query: the dataset's known labels (simulation) or people, through files."""

from __future__ import annotations

from typing import Protocol

from calkit.data.dataset import Dataset
from calkit.errors import ConfigError
from calkit.ledger import LabelFact, Ledger, Query


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
                f"{dataset.name} has no labels for its pool, so it cannot be simulated; use --oracle files"
            )
        self.dataset = dataset

    def answer(self, query: Query, ledger: Ledger) -> None:
        pending = ledger.unanswered(query.round)
        if len(pending) == 0:
            return
        labels = self.dataset.y_train[self.dataset.positions(pending)]
        ledger.add_labels([LabelFact(int(i), int(y), source="simulated") for i, y in zip(pending, labels)])


class FileOracle:
    """People answer through `calkit query` / `calkit ingest`; the loop waits for them."""

    name = "files"

    def answer(self, query: Query, ledger: Ledger) -> None:
        pass


def make_oracle(name: str, dataset: Dataset) -> Oracle:
    if name == "simulated":
        return SimulatedOracle(dataset)
    if name == "files":
        return FileOracle()
    raise ConfigError(f"unknown oracle {name!r}; choose 'simulated' or 'files'")
