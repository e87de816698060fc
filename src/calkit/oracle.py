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
from calkit.noise import NoiseModel

ORACLES = ("simulated", "people")
ALIASES = {"files": "people"}
#: The annotator name of the simulated oracle's facts.
SIMULATED = "simulated"


class Oracle(Protocol):
    """Answers what it can of a query by appending label facts to the ledger."""

    name: str

    def answer(self, query: Query, ledger: Ledger) -> None: ...


class SimulatedOracle:
    """Reads the pool's known labels: the researcher's setting. All answers in one transaction.

    With ``annotators`` > 1, the query's items go to ``sim-0``, ``sim-1``, ... in turn (by rank);
    with a noise model, each answer is wrong with its probability (calkit.noise).
    """

    name = "simulated"

    def __init__(self, dataset: Dataset, annotators: int = 1, noise: NoiseModel | None = None, seed: int = 0):
        if dataset.y_train is None:
            raise ConfigError(
                f"{dataset.name} has no labels for its pool, so it cannot be simulated; use oracle 'people'"
            )
        self.dataset = dataset
        self.annotators = annotators
        self.noise = noise or NoiseModel()
        self.seed = seed

    def answer(self, query: Query, ledger: Ledger) -> None:
        pending = set(ledger.unanswered(query.round).tolist())
        if not pending:
            return
        positions = self.dataset.positions(query.ids)
        truth = self.dataset.y_train[positions]
        given, _ = self.noise.answers(truth, positions, self.dataset.pool_size, self.dataset.n_classes, self.seed)
        ledger.submit([LabelFact(int(i), int(y), source="simulated", annotator=self.annotator(rank))
                       for rank, (i, y) in enumerate(zip(query.ids.tolist(), given)) if i in pending])

    def annotator(self, rank: int) -> str:
        return SIMULATED if self.annotators == 1 else f"sim-{rank % self.annotators}"


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


def make_oracle(name: str, dataset: Dataset, annotators: int = 1, noise: NoiseModel | None = None,
                seed: int = 0) -> Oracle:
    if oracle_name(name) == "simulated":
        return SimulatedOracle(dataset, annotators, noise, seed)
    if annotators != 1 or (noise is not None and noise.rate > 0):
        raise ConfigError("simulated annotators and label noise are for oracle 'simulated'; people make their own")
    return PeopleOracle()
