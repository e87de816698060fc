"""Model outputs for acquisition, computed lazily in eval and inference mode, in large batches."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from calkit.models import batched_inference, batched_logits_and_embeddings, forward_passes
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
        x = self.data.batches(ids, self.batch_size)  # streamed: the candidates are never all in memory at once
        self.forward_samples += len(ids) * forward_passes(self.model, with_embeddings)
        if with_embeddings:
            logits, emb = batched_logits_and_embeddings(self.model, x, self.batch_size)
            self._embeddings[_key(ids)] = emb.float().cpu().numpy().astype(np.float64)
        else:
            logits = batched_inference(self.model, x, self.batch_size)
        self._probs[_key(ids)] = torch.softmax(logits.float(), dim=1).cpu().numpy().astype(np.float64)
        self.seconds += time.perf_counter() - start


def _key(ids: np.ndarray) -> bytes:
    return np.asarray(ids, dtype=np.int64).tobytes()
