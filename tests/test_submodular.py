"""The submodular engine: greedy against exhaustive search, lazy = plain greedy, memory bounds,
determinism, and the `diverse` acquisition that uses it."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import calkit.submodular as sm
from calkit.acquisition import make_acquisition
from calkit.errors import ConfigError
from calkit.submodular import greedy_maximize, median_heuristic, objective, similarity


def brute_force(e, k, sigma, h, lam) -> float:
    return max(objective(e, np.array(s), sigma, h, lam) for s in itertools.combinations(range(len(e)), k))


def plain_greedy(e, k, sigma, h, lam) -> list[int]:
    picked: list[int] = []
    for _ in range(k):
        rest = [j for j in range(len(e)) if j not in picked]
        picked.append(max(rest, key=lambda j: objective(e, np.array(picked + [j]), sigma, h, lam)))
    return picked


@pytest.mark.parametrize("seed", range(12))
def test_greedy_reaches_one_minus_one_over_e_of_the_optimum(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(6, 10)), int(rng.integers(2, 4))
    e, h = rng.normal(size=(n, 2)), rng.random(n) * 2
    lam, sigma = float(rng.choice([0.0, 0.5, 3.0])), float(rng.choice([0.3, 1.0]))
    result = greedy_maximize(e, k, np.random.default_rng(seed), h, lam, sigma)
    value = objective(e, result.indices, sigma, h, lam)
    assert value == pytest.approx(result.value, rel=1e-5), "gains add up to the objective"
    assert value >= (1 - 1 / math.e) * brute_force(e, k, sigma, h, lam) - 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_lazy_greedy_picks_what_plain_greedy_picks(seed):
    rng = np.random.default_rng(100 + seed)
    e, h = rng.normal(size=(12, 3)), rng.random(12)
    result = greedy_maximize(e, 4, np.random.default_rng(0), h, 1.5, 1.0)
    assert result.indices.tolist() == plain_greedy(e, 4, 1.0, h, 1.5)


def test_greedy_is_exact_on_well_separated_clusters():
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [50, 0], [0, 50], [50, 50]], dtype=float)
    e = np.concatenate([c + rng.normal(0, 0.1, size=(3, 2)) for c in centers])
    result = greedy_maximize(e, 4, np.random.default_rng(0), sigma=1.0)
    assert sorted(int(i) // 3 for i in result.indices) == [0, 1, 2, 3], "one pick per cluster"
    assert objective(e, result.indices, 1.0) == pytest.approx(brute_force(e, 4, 1.0, None, 0.0), rel=1e-9)


def test_deterministic_under_a_seed_and_ties_follow_the_seed():
    e = np.zeros((20, 4))  # every candidate identical: all gains tie
    a = greedy_maximize(e, 5, np.random.default_rng(3), sigma=1.0).indices
    b = greedy_maximize(e, 5, np.random.default_rng(3), sigma=1.0).indices
    c = greedy_maximize(e, 5, np.random.default_rng(4), sigma=1.0).indices
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()


def test_large_candidate_sets_use_a_bounded_universe(monkeypatch):
    shapes = []
    real = sm.similarity

    def spy(points, universe, sigma, chunk=8192):
        shapes.append((points.shape[0], universe.shape[0]))
        return real(points, universe, sigma, chunk)

    monkeypatch.setattr(sm, "similarity", spy)
    e = np.random.default_rng(0).normal(size=(3000, 8)).astype(np.float32)
    result = greedy_maximize(e, 20, np.random.default_rng(0), max_universe=256)
    assert shapes == [(3000, 256)], "n x |A|, never n x n"
    assert len(set(result.indices.tolist())) == 20


def test_similarity_matches_the_rbf_formula_in_chunks():
    rng = np.random.default_rng(0)
    p, u = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    expected = np.exp(-((p[:, None, :] - u[None, :, :]) ** 2).sum(-1) / (2 * 0.8**2))
    assert np.allclose(similarity(p, u, 0.8, chunk=3), expected, atol=1e-5)


def test_median_heuristic_is_the_median_distance():
    e = np.array([[0.0], [1.0], [3.0]])
    assert median_heuristic(e, np.random.default_rng(0)) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(k=0), "cannot pick"), (dict(k=11), "cannot pick"), (dict(lam=-1.0), "lam"),
     (dict(utilities=-np.ones(10)), "non-negative"), (dict(sigma=0.0), "kernel width")],
)
def test_bad_requests_are_refused(kwargs, message):
    args = dict(k=2, utilities=None, lam=0.0, sigma=None)
    args.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        greedy_maximize(np.zeros((10, 2)), args.pop("k"), np.random.default_rng(0), **args)


class ClusterContext:
    """Three clusters; the model is unsure about every item of cluster 0 alike."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        centers = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
        self.cluster = np.repeat(np.arange(3), 30)
        self.emb = centers[self.cluster] + rng.normal(0, 0.5, size=(90, 2))
        uncertain = np.full(3, 1 / 3)
        sure = np.array([0.9, 0.05, 0.05])
        self.probs = np.where((self.cluster == 0)[:, None], uncertain, sure)
        self.probs = self.probs + rng.uniform(0, 1e-3, size=self.probs.shape)
        self.probs /= self.probs.sum(1, keepdims=True)
        self.rng = np.random.default_rng(seed)

    def probabilities(self, ids):
        return self.probs[ids]

    def embeddings(self, ids):
        return self.emb[ids]


def test_diverse_spreads_a_batch_where_entropy_piles_into_one_cluster():
    ids = np.arange(90)
    by_entropy = make_acquisition("entropy").select(ClusterContext(), ids, 6).ids
    diverse = make_acquisition("diverse").select(ClusterContext(), ids, 6).ids
    assert set(ClusterContext().cluster[by_entropy].tolist()) == {0}
    assert set(ClusterContext().cluster[diverse].tolist()) == {0, 1, 2}
