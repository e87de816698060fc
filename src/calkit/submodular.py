"""Greedy maximisation of facility location plus a concave uncertainty term.

    G(S) = sum_{i in A} max_{j in S} w_ij + lam * log(1 + sum_{j in S} h_j),
    w_ij = exp(-||e_i - e_j||^2 / (2 sigma^2))

Both terms are monotone submodular, so greedy is within (1 - 1/e) of the optimum. One engine
serves SDS2 replay (a few hundred history candidates) and diversity-aware acquisition (up to
the whole unlabeled pool).

Memory stays bounded: the universe A is the candidate set itself when it has at most
``max_universe`` items, otherwise a seeded random sample of that size whose coverage is
reweighted by n / |A| (an unbiased estimate of the full sum). The similarity matrix is then
n x |A| float32 (400 MB for 50,000 candidates and |A| = 2,048), built in chunks, never n x n.
Greedy is lazy: a heap of stale gains (upper bounds, by submodularity) that are refreshed only
at the top, which picks exactly what plain greedy picks, at a fraction of the work.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import torch

from calkit.errors import ConfigError

DEFAULT_MAX_UNIVERSE = 2048


@dataclass(frozen=True)
class GreedyResult:
    """Picked positions in pick order, each pick's marginal gain, and the objective value."""

    indices: np.ndarray
    gains: np.ndarray

    @property
    def value(self) -> float:
        return float(self.gains.sum())


def median_heuristic(embeddings: np.ndarray, rng: np.random.Generator, max_points: int = 1000) -> float:
    """Kernel width sigma = median pairwise distance of (a sample of) the points."""
    n = embeddings.shape[0]
    idx = rng.choice(n, size=min(n, max_points), replace=False)
    e = torch.as_tensor(embeddings[idx], dtype=torch.float32)
    d = torch.cdist(e, e)
    off_diag = d[~torch.eye(len(idx), dtype=torch.bool)]
    sigma = float(off_diag.median()) if off_diag.numel() else 1.0
    return sigma if sigma > 0 else 1.0


def similarity(points: np.ndarray, universe: np.ndarray, sigma: float, chunk: int = 8192) -> np.ndarray:
    """The kernel block w[j, i] = exp(-||p_j - u_i||^2 / (2 sigma^2)) as float32, chunk by chunk."""
    u = torch.as_tensor(universe, dtype=torch.float32)
    u_sq = (u * u).sum(1)
    out = np.empty((points.shape[0], universe.shape[0]), dtype=np.float32)
    scale = -1.0 / (2.0 * sigma * sigma)
    for start in range(0, points.shape[0], chunk):
        p = torch.as_tensor(points[start : start + chunk], dtype=torch.float32)
        d2 = ((p * p).sum(1, keepdim=True) + u_sq - 2.0 * (p @ u.T)).clamp_(min=0.0)
        out[start : start + chunk] = torch.exp_(d2.mul_(scale)).numpy()
    return out


def greedy_maximize(
    embeddings: np.ndarray,
    k: int,
    rng: np.random.Generator,
    utilities: np.ndarray | None = None,
    lam: float = 0.0,
    sigma: float | None = None,
    max_universe: int = DEFAULT_MAX_UNIVERSE,
) -> GreedyResult:
    """Pick ``k`` of the ``n`` rows of ``embeddings`` greedily for G(S); deterministic under ``rng``."""
    n = embeddings.shape[0]
    if embeddings.ndim != 2:
        raise ConfigError(f"embeddings must be 2-D (n, d), got shape {embeddings.shape}")
    if not 1 <= k <= n:
        raise ConfigError(f"cannot pick {k} of {n} candidates")
    if lam < 0:
        raise ConfigError(f"lam must be >= 0, got {lam}")
    h = np.zeros(n) if utilities is None else np.asarray(utilities, dtype=np.float64)
    if h.shape != (n,) or (h < 0).any():
        raise ConfigError("utilities must be one non-negative number per candidate")
    sigma = sigma if sigma is not None else median_heuristic(embeddings, rng)
    if sigma <= 0:
        raise ConfigError(f"kernel width must be positive, got {sigma}")
    if n <= max_universe:
        universe, weight = np.arange(n), 1.0
    else:
        universe, weight = np.sort(rng.choice(n, size=max_universe, replace=False)), n / max_universe
    w = similarity(embeddings, embeddings[universe], sigma)
    return _lazy_greedy(w, weight, h, lam, k, rng)


def _lazy_greedy(
    w: np.ndarray, weight: float, h: np.ndarray, lam: float, k: int, rng: np.random.Generator
) -> GreedyResult:
    n = w.shape[0]
    coverage = np.zeros(w.shape[1], dtype=np.float32)
    utility_sum = 0.0
    initial = weight * w.sum(axis=1, dtype=np.float64) + lam * np.log1p(h)
    tie_rank = rng.permutation(n)  # equal gains are broken by a seeded order, not by position
    heap = [(-float(g), int(tie_rank[j]), j) for j, g in enumerate(initial)]
    heapq.heapify(heap)
    picked: list[int] = []
    gains: list[float] = []
    while len(picked) < k:
        _, rank, j = heapq.heappop(heap)
        fresh = weight * float(np.maximum(w[j] - coverage, 0.0).sum(dtype=np.float64))
        fresh += lam * (np.log1p(utility_sum + h[j]) - np.log1p(utility_sum))
        if not heap or fresh >= -heap[0][0] - 1e-12 * max(1.0, abs(fresh)):
            picked.append(j)
            gains.append(fresh)
            np.maximum(coverage, w[j], out=coverage)
            utility_sum += h[j]
        else:
            heapq.heappush(heap, (-fresh, rank, j))
    return GreedyResult(np.array(picked, dtype=np.int64), np.array(gains))


def objective(
    embeddings: np.ndarray, selected: np.ndarray, sigma: float, utilities: np.ndarray | None = None, lam: float = 0.0
) -> float:
    """G(S) over the full candidate set as universe (for tests and small instances)."""
    if len(selected) == 0:
        return 0.0
    w = similarity(embeddings, embeddings, sigma)
    coverage = w[:, selected].max(axis=1).sum(dtype=np.float64)
    h = np.zeros(embeddings.shape[0]) if utilities is None else utilities
    return float(coverage + lam * np.log1p(h[selected].sum()))
