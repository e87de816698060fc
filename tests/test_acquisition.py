"""Acquisition functions: a conformance suite every registered strategy inherits, plus specifics.

The conformance tests are parametrized over ``calkit.acquisition.ACQUISITIONS`` and over two
kinds of scoring context (a fake one with fixed per-id arrays and the real
``ModelScoringContext`` with a tiny MLP), so a strategy added to the registry later is covered
without touching this file.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from calkit.acquisition import (
    ACQUISITIONS,
    Acquisition,
    Entropy,
    LeastConfidence,
    Margin,
    ModelScoringContext,
    RandomSampling,
    ScoreBased,
    Selection,
    make_acquisition,
)
from calkit.errors import AcquisitionError, CalkitError, ConfigError
from calkit.models import ModelSpec, batched_inference, build_model
from calkit.tensors import DeviceData
from calkit.testing import check_acquisition

from conftest import make_blobs
from tests.helpers import UserNet, UserNetWithEmbed

STRATEGY_NAMES = sorted(ACQUISITIONS)
CONTEXT_KINDS = ("fake", "model")


# --------------------------------------------------------------------------------------------
# scoring contexts
# --------------------------------------------------------------------------------------------


class FakeContext:
    """A ScoringContext answering from fixed per-id tables; records what it was asked."""

    def __init__(self, probs: dict[int, np.ndarray], embeds: dict[int, np.ndarray] | None = None, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self._probs = {int(k): np.asarray(v, dtype=np.float64) for k, v in probs.items()}
        if embeds is None:
            emb_rng = np.random.default_rng(1234)
            embeds = {k: emb_rng.normal(size=4) for k in self._probs}
        self._embeds = {int(k): np.asarray(v, dtype=np.float64) for k, v in embeds.items()}
        self.asked: list[np.ndarray] = []

    def probabilities(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        self.asked.append(ids.copy())
        return np.stack([self._probs[int(i)] for i in ids])

    def embeddings(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        self.asked.append(ids.copy())
        return np.stack([self._embeds[int(i)] for i in ids])


# The blobs pool uses ids 1000..1239; the fake tables use the same ids, so candidate sets can
# be shared between both kinds of context.
_BLOBS = make_blobs()
ALL_IDS = _BLOBS.ids.copy()
# A non-contiguous subset: every third id, plus a few stragglers, never the first id.
CANDIDATES = np.concatenate([ALL_IDS[5:120:3], ALL_IDS[[200, 211, 239]]]).astype(np.int64)


def _random_probs(ids: np.ndarray, n_classes: int = 3, seed: int = 7) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(ids), n_classes)) * 2.0
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return {int(i): row for i, row in zip(ids, p)}


_FAKE_PROBS = _random_probs(ALL_IDS)


@pytest.fixture(scope="module")
def tiny_model_data():
    torch.manual_seed(0)
    data = DeviceData(_BLOBS)
    model = build_model("mlp:8", _BLOBS.input_shape, _BLOBS.n_classes)
    return model, data


@pytest.fixture
def make_ctx(tiny_model_data):
    """``make_ctx(kind, seed)`` -> a fresh scoring context of that kind with that rng seed."""
    model, data = tiny_model_data

    def factory(kind: str, seed: int = 0):
        if kind == "fake":
            return FakeContext(_FAKE_PROBS, seed=seed)
        return ModelScoringContext(model, data, np.random.default_rng(seed), batch_size=16)

    return factory


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------


def test_registry_is_nonempty_and_keyed_by_name():
    assert {"random", "entropy", "margin", "least_confidence"} <= set(ACQUISITIONS)
    for key, cls in ACQUISITIONS.items():
        assert issubclass(cls, Acquisition)
        assert cls.name == key


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_make_acquisition_builds_each_registered_strategy(name):
    acq = make_acquisition(name)
    assert isinstance(acq, ACQUISITIONS[name])
    assert isinstance(make_acquisition(f"  {name.upper()} "), ACQUISITIONS[name])


def test_make_acquisition_accepts_dashed_least_confidence():
    assert isinstance(make_acquisition("least-confidence"), LeastConfidence)
    assert isinstance(make_acquisition("least_confidence"), LeastConfidence)


def test_make_acquisition_rejects_unknown_name_listing_choices():
    with pytest.raises(ConfigError) as info:
        make_acquisition("bald-and-beautiful")
    msg = str(info.value)
    assert "bald-and-beautiful" in msg
    for name in ACQUISITIONS:
        assert name in msg
    assert isinstance(info.value, CalkitError)


# --------------------------------------------------------------------------------------------
# conformance: every registered strategy, with both kinds of context
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_every_strategy_keeps_the_public_contract(name):
    """k distinct candidates with finite aligned scores, never outside the candidates, the same for
    the same seed, bad requests refused before the model is asked: calkit.testing's checks, the
    ones a third-party strategy runs too."""
    check_acquisition(make_acquisition(name))


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_candidates_as_list_and_numpy_int_k_are_accepted(make_ctx, name):
    sel = make_acquisition(name).select(make_ctx("fake"), CANDIDATES.tolist(), np.int64(3))
    assert len(sel) == 3 and np.isin(sel.ids, CANDIDATES).all()


@pytest.mark.parametrize("name", STRATEGY_NAMES)
@pytest.mark.parametrize("k", [len(CANDIDATES) + 1, 0, -1, 2.0, 1.5, "3", True, None])
def test_refuses_bad_k(make_ctx, name, k):
    with pytest.raises(AcquisitionError):
        make_acquisition(name).select(make_ctx("fake"), CANDIDATES, k)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_refuses_k_larger_than_candidates_with_clear_message(make_ctx, name):
    with pytest.raises(AcquisitionError, match=str(len(CANDIDATES))):
        make_acquisition(name).select(make_ctx("fake"), CANDIDATES, len(CANDIDATES) + 5)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_refuses_empty_candidates(make_ctx, name):
    with pytest.raises(AcquisitionError):
        make_acquisition(name).select(make_ctx("fake"), np.array([], dtype=np.int64), 1)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_refuses_duplicate_candidates(make_ctx, name):
    dup = np.concatenate([CANDIDATES[:5], CANDIDATES[2:3]])
    with pytest.raises(AcquisitionError, match="duplicate"):
        make_acquisition(name).select(make_ctx("fake"), dup, 2)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
@pytest.mark.parametrize(
    "bad",
    [
        CANDIDATES[:6].reshape(2, 3),
        CANDIDATES[:6].astype(np.float64),
        np.array(CANDIDATES[0]),  # 0-D
    ],
    ids=["2d", "float", "scalar"],
)
def test_refuses_malformed_candidates(make_ctx, name, bad):
    with pytest.raises(AcquisitionError):
        make_acquisition(name).select(make_ctx("fake"), bad, 1)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_validation_happens_before_the_context_is_consulted(name):
    ctx = FakeContext(_FAKE_PROBS)
    with pytest.raises(AcquisitionError):
        make_acquisition(name).select(ctx, CANDIDATES, 0)
    assert ctx.asked == []


@pytest.mark.parametrize("name", [n for n, c in ACQUISITIONS.items() if issubclass(c, ScoreBased)])
@pytest.mark.parametrize("kind", CONTEXT_KINDS)
def test_score_based_scores_are_the_picked_items_scores_in_descending_order(make_ctx, name, kind):
    acq = make_acquisition(name)
    ctx = make_ctx(kind, seed=1)
    sel = acq.select(ctx, CANDIDATES, 10)
    # (float32 model outputs can differ in the last bits with the batch they were computed in)
    expected = acq.score(ctx.probabilities(sel.ids))
    np.testing.assert_allclose(sel.scores, expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(sel.scores) <= 0)
    # Nothing left behind scores higher than the lowest pick.
    rest = np.setdiff1d(CANDIDATES, sel.ids)
    assert acq.score(ctx.probabilities(rest)).max() <= sel.scores.min() + 1e-6


# --------------------------------------------------------------------------------------------
# random sampling
# --------------------------------------------------------------------------------------------


def test_random_different_seeds_give_different_selections():
    picks = {tuple(RandomSampling().select(FakeContext(_FAKE_PROBS, seed=s), CANDIDATES, 5).ids) for s in range(6)}
    assert len(picks) > 1


def test_random_never_asks_the_model():
    ctx = FakeContext(_FAKE_PROBS)
    RandomSampling().select(ctx, CANDIDATES, 5)
    assert ctx.asked == []


def test_random_is_roughly_uniform():
    candidates = ALL_IDS[:10]
    counts = dict.fromkeys(candidates.tolist(), 0)
    rng_ctx = FakeContext(_FAKE_PROBS, seed=0)
    for _ in range(600):
        for i in RandomSampling().select(rng_ctx, candidates, 2).ids:
            counts[int(i)] += 1
    # 600 * 2 / 10 = 120 expected per id
    assert min(counts.values()) > 70 and max(counts.values()) < 170


# --------------------------------------------------------------------------------------------
# uncertainty strategies on a hand-made table
# --------------------------------------------------------------------------------------------

HAND_IDS = np.array([11, 23, 35, 47, 59, 71], dtype=np.int64)
HAND_PROBS = np.array(
    [
        [0.90, 0.05, 0.05],  # 11: confident
        [0.50, 0.49, 0.01],  # 23: two-way tie -> smallest margin
        [0.40, 0.30, 0.30],  # 35: spread out
        [0.70, 0.15, 0.15],  # 47
        [0.36, 0.34, 0.30],  # 59: most spread -> highest entropy, lowest max
        [0.60, 0.38, 0.02],  # 71
    ]
)
# Hand-computed:
#   entropy          = 0.3944, 0.7422, 1.0889, 0.8188, 1.0958, 0.7524  -> 59, 35, 47, 71, 23, 11
#   margin (-gap)    = -0.85, -0.01, -0.10, -0.55, -0.02, -0.22       -> 23, 59, 35, 71, 47, 11
#   least confidence = 0.10, 0.50, 0.60, 0.30, 0.64, 0.40             -> 59, 35, 23, 71, 47, 11
HAND_EXPECTED = {
    "entropy": ([59, 35, 47, 71, 23, 11], [0.3944, 0.7422, 1.0889, 0.8188, 1.0958, 0.7524]),
    "margin": ([23, 59, 35, 71, 47, 11], [-0.85, -0.01, -0.10, -0.55, -0.02, -0.22]),
    "least_confidence": ([59, 35, 23, 71, 47, 11], [0.10, 0.50, 0.60, 0.30, 0.64, 0.40]),
}


def _hand_ctx(seed: int = 0) -> FakeContext:
    return FakeContext(dict(zip(HAND_IDS.tolist(), HAND_PROBS)), seed=seed)


@pytest.mark.parametrize("name", sorted(HAND_EXPECTED))
def test_scores_match_hand_computation(name):
    _, scores = HAND_EXPECTED[name]
    np.testing.assert_allclose(make_acquisition(name).score(HAND_PROBS), scores, atol=5e-5)


def test_entropy_matches_definition():
    expected = [-sum(p * math.log(p) for p in row if p > 0) for row in HAND_PROBS]
    np.testing.assert_allclose(Entropy().score(HAND_PROBS), expected, rtol=1e-9)


def test_entropy_handles_exact_zero_probabilities():
    probs = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    s = Entropy().score(probs)
    assert np.isfinite(s).all()
    np.testing.assert_allclose(s, [0.0, math.log(2)], atol=1e-9)


@pytest.mark.parametrize("name", sorted(HAND_EXPECTED))
@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_picks_the_most_uncertain_items(name, k):
    order, _ = HAND_EXPECTED[name]
    for seed in range(3):  # no ties: the seed must not matter
        sel = make_acquisition(name).select(_hand_ctx(seed), HAND_IDS, k)
        assert sel.ids.tolist() == order[:k]


@pytest.mark.parametrize("name", sorted(HAND_EXPECTED))
def test_only_candidates_are_scored_and_picked(name):
    # Drop the overall winner from the candidates; the next best must be chosen instead.
    order, _ = HAND_EXPECTED[name]
    candidates = np.array([i for i in HAND_IDS if i != order[0]], dtype=np.int64)
    sel = make_acquisition(name).select(_hand_ctx(), candidates, 2)
    assert sel.ids.tolist() == order[1:3]


def test_margin_with_two_classes():
    probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4]])
    np.testing.assert_allclose(Margin().score(probs), [0.0, -0.8, -0.2], atol=1e-12)


TIE_IDS = np.arange(100, 140, 2, dtype=np.int64)  # 20 ids, all with identical probabilities


def _tie_ctx(seed: int) -> FakeContext:
    return FakeContext({int(i): np.array([0.5, 0.3, 0.2]) for i in TIE_IDS}, seed=seed)


@pytest.mark.parametrize("cls", [Entropy, Margin, LeastConfidence])
def test_ties_broken_by_seeded_rng_deterministically(cls):
    a = cls().select(_tie_ctx(5), TIE_IDS, 6).ids
    b = cls().select(_tie_ctx(5), TIE_IDS, 6).ids
    np.testing.assert_array_equal(a, b)
    orders = {tuple(cls().select(_tie_ctx(s), TIE_IDS, 6).ids) for s in range(8)}
    assert len(orders) > 1, "tie-breaking ignores the rng"
    # ... and does not simply favour the lowest ids.
    assert orders != {tuple(TIE_IDS[:6])}


@pytest.mark.parametrize("cls", [Entropy, Margin, LeastConfidence])
def test_partial_ties_keep_strict_order_and_shuffle_only_within_ties(cls):
    probs = {int(i): np.array([0.5, 0.3, 0.2]) for i in TIE_IDS}
    probs[int(TIE_IDS[-1])] = np.array([0.34, 0.33, 0.33])  # clearly most uncertain
    sel = cls().select(FakeContext(probs, seed=9), TIE_IDS, 3)
    assert sel.ids[0] == TIE_IDS[-1]
    assert sel.scores[1] == sel.scores[2]


# --------------------------------------------------------------------------------------------
# ModelScoringContext
# --------------------------------------------------------------------------------------------


def _dropout_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelSpec.parse("mlp:16", dropout=0.5), _BLOBS.input_shape, _BLOBS.n_classes)


def test_context_probabilities_are_softmax_rows_in_id_order(tiny_model_data):
    model, data = tiny_model_data
    ctx = ModelScoringContext(model, data, np.random.default_rng(0), batch_size=7)
    ids = ALL_IDS[[9, 2, 30, 15]]
    probs = ctx.probabilities(ids)
    assert probs.shape == (4, _BLOBS.n_classes)
    assert probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    model.eval()
    with torch.no_grad():
        x = torch.as_tensor(_BLOBS.x_train[[9, 2, 30, 15]])
        expected = torch.softmax(model(x), dim=1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_context_uses_eval_mode_and_restores_training_flag():
    model = _dropout_model()
    model.train()
    data = DeviceData(_BLOBS)
    ids = ALL_IDS[:40]
    p1 = ModelScoringContext(model, data, np.random.default_rng(0)).probabilities(ids)
    assert model.training
    p2 = ModelScoringContext(model, data, np.random.default_rng(1)).probabilities(ids)
    assert model.training
    np.testing.assert_array_equal(p1, p2)  # dropout off: deterministic
    e1 = ModelScoringContext(model, data, np.random.default_rng(0)).embeddings(ids)
    e2 = ModelScoringContext(model, data, np.random.default_rng(0)).embeddings(ids)
    np.testing.assert_array_equal(e1, e2)
    assert model.training
    # and a model that was in eval mode stays in eval mode
    model.eval()
    ModelScoringContext(model, data, np.random.default_rng(0)).probabilities(ids)
    assert not model.training


def test_context_restores_training_flag_when_the_model_fails():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 3)

        def forward(self, x):
            raise RuntimeError("boom")

    model = Boom().train()
    ctx = ModelScoringContext(model, DeviceData(_BLOBS), np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="boom"):
        ctx.probabilities(ALL_IDS[:3])
    assert model.training


class _Recorder(nn.Module):
    """Linear model that records the autograd state and mode it was called in."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 3)
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x):
        self.calls.append((torch.is_grad_enabled(), self.training))
        return self.lin(x)


def test_context_runs_without_grad_in_eval_mode():
    torch.manual_seed(0)
    model = _Recorder().train()
    ctx = ModelScoringContext(model, DeviceData(_BLOBS), np.random.default_rng(0), batch_size=10)
    ctx.probabilities(ALL_IDS[:25])
    assert len(model.calls) == 3  # batched: 10 + 10 + 5
    assert all(grad is False and training is False for grad, training in model.calls)
    ctx.embeddings(ALL_IDS[:25])
    assert all(grad is False and training is False for grad, training in model.calls)
    out = batched_inference(model, torch.as_tensor(_BLOBS.x_train[:5]))
    assert out.requires_grad is False
    assert model.training


def test_context_counts_forward_samples_and_caches_repeated_ids(tiny_model_data, monkeypatch):
    import calkit.acquisition.context as context_module

    clock = iter(range(0, 1000, 5))  # every reading of the clock is 5 s after the previous one
    monkeypatch.setattr(context_module.time, "perf_counter", lambda: float(next(clock)))
    model, data = tiny_model_data
    ctx = ModelScoringContext(model, data, np.random.default_rng(0), batch_size=8)
    ids = ALL_IDS[10:40]
    assert ctx.forward_samples == 0
    first = ctx.probabilities(ids)
    assert ctx.forward_samples == 30
    assert ctx.seconds == 5.0, "one inference is timed once, start to end"
    again = ctx.probabilities(ids.copy())
    assert ctx.seconds == 5.0, "a cached answer costs no inference time"
    assert ctx.forward_samples == 30, "repeated ids were recomputed"
    np.testing.assert_array_equal(first, again)
    ctx.probabilities(ids.tolist())  # a list of the same ids is the same request
    assert ctx.forward_samples == 30
    ctx.probabilities(ids[::-1])  # different order: a different request
    assert ctx.forward_samples == 60
    emb = ctx.embeddings(ids)  # embeddings are cached separately
    assert ctx.forward_samples == 90
    assert emb.shape == (30, 8)
    ctx.embeddings(ids)
    assert ctx.forward_samples == 90


@pytest.mark.parametrize("name", [n for n, c in ACQUISITIONS.items() if issubclass(c, ScoreBased)])
def test_selecting_twice_from_the_same_candidates_reuses_the_cache(tiny_model_data, name):
    model, data = tiny_model_data
    ctx = ModelScoringContext(model, data, np.random.default_rng(0))
    acq = make_acquisition(name)
    acq.select(ctx, CANDIDATES, 4)
    assert ctx.forward_samples == len(CANDIDATES)
    acq.select(ctx, CANDIDATES, 4)
    assert ctx.forward_samples == len(CANDIDATES)


def test_context_embeddings_for_model_without_embed_method():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    ctx = ModelScoringContext(model, DeviceData(_BLOBS), np.random.default_rng(0))
    emb = ctx.embeddings(ALL_IDS[:12])
    assert emb.shape == (12, 5)
    assert (emb >= 0).all()  # read after the ReLU


def _user_nets(seed: int = 0) -> tuple[UserNetWithEmbed, UserNet]:
    """The same user network (same weights) with and without an embed method of its own."""
    torch.manual_seed(seed)
    own = UserNetWithEmbed()
    torch.manual_seed(seed)
    return own, UserNet()


def test_diverse_uses_a_user_models_own_embed():
    own, plain = _user_nets()
    data = DeviceData(_BLOBS)
    ctx = ModelScoringContext(own, data, np.random.default_rng(0))
    picked = make_acquisition("diverse").select(ctx, CANDIDATES, 6).ids
    assert own.embed_calls == 1
    assert ctx.forward_samples == 2 * len(CANDIDATES), "the embed call is a pass of its own"
    x = torch.as_tensor(_BLOBS.x_train[CANDIDATES - 1000])
    custom = (10.0 * x[:, :2]).numpy().astype(np.float64)
    np.testing.assert_array_equal(ctx.embeddings(CANDIDATES), custom)
    # the same probabilities and the custom embeddings give the same pick ...
    fake = FakeContext(dict(zip(CANDIDATES.tolist(), ctx.probabilities(CANDIDATES))),
                       dict(zip(CANDIDATES.tolist(), custom)))
    np.testing.assert_array_equal(make_acquisition("diverse").select(fake, CANDIDATES, 6).ids, picked)
    # ... and the network's hidden layer (what a model without embed() gets) another one
    plain_ctx = ModelScoringContext(plain, data, np.random.default_rng(0))
    hidden = make_acquisition("diverse").select(plain_ctx, CANDIDATES, 6)
    assert set(hidden.ids.tolist()) != set(picked.tolist())


def test_diverse_takes_its_settings_from_its_options_and_refuses_bad_ones():
    from calkit.acquisition import acquisition_defaults

    assert acquisition_defaults("diverse", {"lam": 0.0}) == {"lam": 0.0, "kernel_width": None, "max_universe": 2048}
    assert acquisition_defaults("entropy") is None
    ctx = FakeContext(_FAKE_PROBS)
    coverage_only = make_acquisition("diverse", {"lam": 0.0}).select(ctx, CANDIDATES, 6).ids
    default = make_acquisition("diverse").select(FakeContext(_FAKE_PROBS), CANDIDATES, 6).ids
    assert not np.array_equal(coverage_only, default)  # the setting reaches the objective
    for bad in ({"lam": -1.0}, {"kernel_width": 0.0}, {"max_universe": 0}, {"width": 1.0}):
        with pytest.raises(ConfigError):
            make_acquisition("diverse", bad)
    with pytest.raises(ConfigError, match="takes no settings"):
        make_acquisition("margin", {"lam": 1.0})
