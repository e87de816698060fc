"""The one contract every acquisition function follows.

An acquisition function sees a :class:`ScoringContext` (model outputs on demand, a seeded
generator) and a set of candidate ids, and returns ``k`` distinct candidates with a score each.
Validation lives here, so every strategy refuses bad requests the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from calkit.errors import AcquisitionError


def my_share(ctx: object, n: int) -> np.ndarray:
    """The positions among ``n`` candidates that this process scores (all of them on one process)."""
    share = getattr(ctx, "my_share", None)
    return share(n) if share is not None else np.arange(n)


class ScoringContext(Protocol):
    """What a strategy may ask about candidates. Implementations cache and batch the work."""

    rng: np.random.Generator

    def probabilities(self, ids: np.ndarray) -> np.ndarray:
        """Softmax outputs, shape (len(ids), n_classes), in eval mode without augmentation."""
        ...

    def embeddings(self, ids: np.ndarray) -> np.ndarray:
        """The model's embeddings, shape (len(ids), d): its own ``embed`` when it has one, else
        penultimate-layer features (:func:`calkit.models.embedding_source`)."""
        ...


@dataclass(frozen=True)
class Selection:
    """Chosen ids in pick order with the score that earned each its place."""

    ids: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])


class Acquisition(ABC):
    """Base class: validate the request, then delegate to :meth:`_select`.

    A strategy with settings declares them as a dataclass ``Options`` (fields made with
    :func:`calkit.options.option`); it gets them as ``self.options``, and `calkit run` offers
    each as ``--NAME-FIELD``.
    """

    name: ClassVar[str]
    Options: ClassVar[type | None] = None

    def __init__(self, options: object | None = None):
        if options is not None and (self.Options is None or not isinstance(options, self.Options)):
            raise AcquisitionError(f"{self.name} takes {'no options' if self.Options is None else self.Options.__name__}")
        self.options = options if options is not None or self.Options is None else self.Options()

    def select(self, ctx: ScoringContext, candidate_ids: np.ndarray, k: int) -> Selection:
        candidates = np.asarray(candidate_ids)
        if candidates.ndim != 1 or not np.issubdtype(candidates.dtype, np.integer):
            raise AcquisitionError("candidate ids must be a 1-D integer array")
        candidates = candidates.astype(np.int64, copy=False)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise AcquisitionError(f"k must be a positive integer, got {k!r}")
        if len(np.unique(candidates)) != len(candidates):
            raise AcquisitionError("candidate ids contain duplicates")
        if k > len(candidates):
            raise AcquisitionError(f"{self.name}: asked for {k} items but only {len(candidates)} candidates remain")
        selection = self._select(ctx, candidates, int(k))
        if len(selection) != k or len(np.unique(selection.ids)) != k or not np.isin(selection.ids, candidates).all():
            raise AcquisitionError(f"{self.name} broke the contract: it must return {k} distinct candidates")
        return selection

    @abstractmethod
    def _select(self, ctx: ScoringContext, candidates: np.ndarray, k: int) -> Selection:
        """Pick ``k`` of ``candidates`` (already validated, unique, k <= len)."""


class ScoreBased(Acquisition):
    """Top-k by a per-item informativeness score (higher = label it sooner).

    Ties are broken by a seeded random order, so equal scores do not favour low ids. On several
    processes each scores its share and only the shares' top k travel (a context with
    ``my_share``, ``local_probabilities`` and ``merge_top``: calkit.acquisition.context); the
    order is total, so the pick equals one process's.
    """

    def _select(self, ctx: ScoringContext, candidates: np.ndarray, k: int) -> Selection:
        n = len(candidates)
        order_key = np.empty(n, dtype=np.int64)
        order_key[ctx.rng.permutation(n)] = np.arange(n)  # the tie-break: place in a seeded shuffle
        mine = my_share(ctx, n)
        local = getattr(ctx, "local_probabilities", ctx.probabilities)
        scores = np.asarray(self.score(local(candidates[mine])), dtype=np.float64)
        best = np.lexsort((order_key[mine], -scores))[:k]
        picked, picked_scores = mine[best], scores[best]
        merge = getattr(ctx, "merge_top", None)
        if merge is not None:
            picked, picked_scores = merge(picked, picked_scores, order_key, k)
        return Selection(candidates[picked], picked_scores)

    @abstractmethod
    def score(self, probs: np.ndarray) -> np.ndarray:
        """Informativeness of each row of class probabilities."""
