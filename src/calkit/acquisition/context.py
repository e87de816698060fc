"""Model outputs for acquisition, computed lazily in eval and inference mode, in large batches."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from calkit.models import batched_inference
from calkit.tensors import DeviceData


class ModelScoringContext:
    """Answers a strategy's questions about candidates with one model, caching per id set.

    ``forward_samples`` and ``seconds`` count the inference work, for the compute meter.
    """

    def __init__(self, model: nn.Module, data: DeviceData, rng: np.random.Generator, batch_size: int = 4096):
        self.model = model
        self.data = data
        self.rng = rng
        self.batch_size = batch_size
        self.forward_samples = 0
        self.seconds = 0.0
        self._cache: dict[tuple[str, bytes], np.ndarray] = {}

    def probabilities(self, ids: np.ndarray) -> np.ndarray:
        return self._cached("probs", ids, lambda x: torch.softmax(self._infer(x, False).float(), dim=1))

    def embeddings(self, ids: np.ndarray) -> np.ndarray:
        return self._cached("embed", ids, lambda x: self._infer(x, True).float())

    def _infer(self, x: torch.Tensor, embeddings: bool) -> torch.Tensor:
        start = time.perf_counter()
        self.forward_samples += int(x.shape[0])
        out = batched_inference(self.model, x, self.batch_size, embeddings=embeddings)
        self.seconds += time.perf_counter() - start
        return out

    def _cached(self, kind: str, ids: np.ndarray, compute) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        key = (kind, ids.tobytes())
        if key not in self._cache:
            self._cache[key] = compute(self.data.features(ids)).cpu().numpy().astype(np.float64)
        return self._cache[key].copy()
