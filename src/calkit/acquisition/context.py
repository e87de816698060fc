"""Model outputs for acquisition, computed lazily in eval and inference mode, in large batches."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from calkit.distributed import Ranks
from calkit.models import forward_passes, inference_batches
from calkit.tensors import PoolData


class ModelScoringContext:
    """Answers a strategy's questions about candidates with one model, caching per id set.

    ``forward_samples`` and ``seconds`` count the inference work, for the compute meter.
    Embeddings come from :func:`calkit.models.embedding_source` (a model's own ``embed`` first).
    """

    def __init__(self, model: nn.Module, data: PoolData, rng: np.random.Generator, batch_size: int = 4096):
        self.model = model
        self.data = data
        self.rng = rng
        self.batch_size = batch_size
        self.forward_samples = 0
        self.seconds = 0.0
        self._probs: dict[bytes, np.ndarray] = {}
        self._embeddings: dict[bytes, np.ndarray] = {}

    def probabilities(self, ids: np.ndarray) -> np.ndarray:
        key = _key(ids)
        if key not in self._probs:
            self._infer(ids, with_embeddings=False)
        return self._probs[key].copy()

    def embeddings(self, ids: np.ndarray) -> np.ndarray:
        """Computed together with the probabilities, so asking for both costs one pass."""
        key = _key(ids)
        if key not in self._embeddings:
            self._infer(ids, with_embeddings=True)
        return self._embeddings[key].copy()

    def _infer(self, ids: np.ndarray, with_embeddings: bool) -> None:
        start = time.perf_counter()
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:  # a rank whose share is empty
            self._probs[_key(ids)] = np.zeros((0, self.data.dataset.n_classes))
            self._embeddings[_key(ids)] = np.zeros((0, 0))
            return
        self.forward_samples += len(ids) * forward_passes(self.model, with_embeddings)
        # Batch by batch into arrays made once: the candidates are never all in memory, and no
        # small per-batch result outlives its batch (kept ones pin the heap; it would grow with the pool).
        probs, emb, row = np.empty((len(ids), self.data.dataset.n_classes)), None, 0
        batches = self.data.batches(ids, self.batch_size)
        for logits, embedded in inference_batches(self.model, batches, self.batch_size, with_embeddings):
            end = row + logits.shape[0]
            probs[row:end] = torch.softmax(logits.float(), dim=1).cpu().numpy()
            if embedded is not None:
                emb = np.empty((len(ids), embedded.shape[1])) if emb is None else emb
                emb[row:end] = embedded.float().cpu().numpy()
            row = end
        self._probs[_key(ids)] = probs
        if emb is not None:
            self._embeddings[_key(ids)] = emb
        self.seconds += time.perf_counter() - start


class ShardedScoringContext(ModelScoringContext):
    """The same answers, computed by several processes: each rank scores its share of the ids.

    Shares are whole scoring batches (:meth:`Ranks.shard`), so every item is scored in the same
    batch as on one process and gets the same numbers. :meth:`probabilities` and
    :meth:`embeddings` gather every rank's share (what a strategy that looks at all candidates
    needs); top-k strategies instead score :meth:`my_share` and send only their best
    (:meth:`merge_top`), which is what scales to pools of any size. ``forward_samples`` counts
    this rank's passes; :meth:`job_forward_samples` the job's.
    """

    def __init__(self, model: nn.Module, data: PoolData, rng: np.random.Generator, batch_size: int, ranks: Ranks):
        super().__init__(model, data, rng, batch_size)
        self.ranks = ranks
        # Gathered answers apart from this rank's own: a rank whose share is every candidate
        # would otherwise find the gathered answer cached and skip a gather the others join.
        self._gathered_probs: dict[bytes, np.ndarray] = {}
        self._gathered_embeddings: dict[bytes, np.ndarray] = {}

    def my_share(self, n: int) -> np.ndarray:
        """This rank's positions among ``n`` candidates."""
        return self.ranks.shard(n, self.batch_size)

    def local_probabilities(self, ids: np.ndarray) -> np.ndarray:
        """Probabilities of ids this rank scores itself (its share), nothing gathered."""
        return super().probabilities(ids)

    def probabilities(self, ids: np.ndarray) -> np.ndarray:
        return self._gathered(ids, self._gathered_probs, super().probabilities)

    def embeddings(self, ids: np.ndarray) -> np.ndarray:
        return self._gathered(ids, self._gathered_embeddings, super().embeddings)

    def merge_top(self, positions: np.ndarray, scores: np.ndarray, order_key: np.ndarray, k: int
                  ) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` of every rank's best ``k`` (by score, ties by ``order_key``)."""
        parts = self.ranks.gather((positions, scores))
        positions = np.concatenate([p for p, _ in parts])
        scores = np.concatenate([s for _, s in parts])
        best = np.lexsort((order_key[positions], -scores))[:k]
        return positions[best], scores[best]

    def job_forward_samples(self) -> int:
        return int(self.ranks.sum(torch.tensor([self.forward_samples], dtype=torch.long))[0])

    def _gathered(self, ids: np.ndarray, cache: dict, compute) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        key = _key(ids)
        if key not in cache:
            mine = compute(ids[self.my_share(len(ids))])
            parts = [part for part in self.ranks.gather(mine) if len(part)]
            cache[key] = np.concatenate(parts)
        return cache[key].copy()


def _key(ids: np.ndarray) -> bytes:
    return np.asarray(ids, dtype=np.int64).tobytes()
