"""Training: compute meter, stopping rules, optimizer config, the Trainer loop and policies."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from calkit.errors import ConfigError
from calkit.models import build_model
from calkit.policies import POLICIES, Policy, RoundData, Step, make_policy, minibatches
from calkit.policies.base import RoundContext
from calkit.policies.reset import ResetPolicy
from calkit.policies.warm import WarmPolicy
from calkit.tensors import DeviceData
from calkit.train import (
    OPTIMIZERS,
    PHASES,
    ComputeMeter,
    EpochStats,
    FitSummary,
    FixedEpochs,
    LabeledPasses,
    NewItemsLearned,
    OptimizerConfig,
    TrainAccuracy,
    Trainer,
)

from conftest import make_blobs

# --------------------------------------------------------------------------------------------
# ComputeMeter
# --------------------------------------------------------------------------------------------


def test_meter_starts_at_zero_with_every_phase():
    m = ComputeMeter()
    assert (m.optimizer_steps, m.sample_gradients, m.forward_samples) == (0, 0, 0)
    assert set(m.seconds) == set(PHASES)
    assert all(v == 0.0 for v in m.seconds.values())


def test_meter_phase_timing_accumulates():
    m = ComputeMeter()
    with m.phase("train"):
        time.sleep(0.01)
    first = m.seconds["train"]
    assert first >= 0.009
    with m.phase("train"):
        time.sleep(0.01)
    assert m.seconds["train"] >= first + 0.009
    assert m.seconds["score"] == 0.0


def test_meter_phase_counts_time_even_when_body_raises():
    m = ComputeMeter()
    with pytest.raises(KeyError):
        with m.phase("evaluate"):
            time.sleep(0.005)
            raise KeyError("x")
    assert m.seconds["evaluate"] > 0.0


def test_meter_unknown_phase_raises():
    m = ComputeMeter()
    with pytest.raises(ValueError, match="nap"):
        with m.phase("nap"):
            pass
    assert "nap" not in m.seconds


def test_meter_count_step():
    m = ComputeMeter()
    m.count_step(32)
    m.count_step(10, extra_forward=5)
    assert m.optimizer_steps == 2
    assert m.sample_gradients == 42
    assert m.forward_samples == 47


def test_compute_counts_a_sample_gradient_as_three_forward_passes():
    m = ComputeMeter()
    m.count_step(10, extra_forward=4)  # 10 sample-gradients (forward + backward) and 4 forward-only passes
    m.forward_samples += 6  # e.g. scoring
    assert m.forward_only_samples == 10
    assert m.compute == 3 * 10 + 10


def test_meter_round_trip():
    m = ComputeMeter()
    m.count_step(8, extra_forward=3)
    m.seconds["score"] = 1.5
    d = m.to_dict()
    back = ComputeMeter.from_dict(d)
    assert back == m
    assert back.to_dict() == d
    # to_dict copies seconds
    d["seconds"]["score"] = 99.0
    assert m.seconds["score"] == 1.5


def test_meter_from_dict_fills_missing_phases():
    back = ComputeMeter.from_dict({"optimizer_steps": 1, "sample_gradients": 2, "forward_samples": 3,
                                   "seconds": {"train": 0.5}})
    assert back.seconds == {"train": 0.5, "score": 0.0, "select": 0.0, "evaluate": 0.0}
    back = ComputeMeter.from_dict({"optimizer_steps": 1, "sample_gradients": 2, "forward_samples": 3})
    assert set(back.seconds) == set(PHASES)


def test_meter_add():
    a, b = ComputeMeter(), ComputeMeter()
    a.count_step(4)
    a.seconds["train"] = 1.0
    b.count_step(6, extra_forward=2)
    b.count_step(6)
    b.seconds["train"] = 0.5
    b.seconds["select"] = 0.25
    a.add(b)
    assert (a.optimizer_steps, a.sample_gradients, a.forward_samples) == (3, 16, 18)
    assert a.seconds["train"] == pytest.approx(1.5)
    assert a.seconds["select"] == pytest.approx(0.25)
    assert (b.optimizer_steps, b.sample_gradients, b.forward_samples) == (2, 12, 14)  # b untouched


# --------------------------------------------------------------------------------------------
# stopping rules
# --------------------------------------------------------------------------------------------


def test_fixed_epochs_should_stop():
    rule = FixedEpochs(3)
    assert rule.max_epochs == 3
    assert not rule.should_stop(_stats(1, 1.0))  # accuracy is irrelevant
    assert not rule.should_stop(_stats(2, 1.0))
    assert rule.should_stop(_stats(3, 0.0))
    assert rule.should_stop(_stats(4, 0.0))
    assert "3" in rule.describe()


@pytest.mark.parametrize("epochs", [0, -1])
def test_fixed_epochs_rejects_non_positive(epochs):
    with pytest.raises(ConfigError):
        FixedEpochs(epochs)


def test_train_accuracy_should_stop():
    rule = TrainAccuracy(0.9, 5)
    assert not rule.should_stop(_stats(1, 0.5))
    assert not rule.should_stop(_stats(1, 0.899))
    assert rule.should_stop(_stats(1, 0.9))  # threshold reached counts
    assert rule.should_stop(_stats(2, 0.95))
    assert rule.should_stop(_stats(5, 0.1))  # the cap
    assert not rule.should_stop(_stats(4, 0.1))
    assert "0.9" in rule.describe() and "5" in rule.describe()


@pytest.mark.parametrize("threshold, cap", [(0.0, 5), (-0.1, 5), (1.01, 5), (0.9, 0), (0.9, -2)])
def test_train_accuracy_rejects_bad_values(threshold, cap):
    with pytest.raises(ConfigError):
        TrainAccuracy(threshold, cap)


def _stats(epochs: int, running: float, new: float | None = None) -> EpochStats:
    return EpochStats(epochs, running, running if new is None else new)


def test_new_items_learned_looks_at_the_new_items_only():
    rule = NewItemsLearned(0.99, 20)
    assert not rule.should_stop(_stats(1, running=1.0, new=0.98))
    assert rule.should_stop(_stats(1, running=0.5, new=0.99))  # replayed items are not its business
    assert rule.should_stop(_stats(20, running=0.1, new=0.1))  # the cap
    assert not rule.should_stop(_stats(19, running=0.1, new=0.1))
    assert "new items >= 0.99" in rule.describe() and "20" in rule.describe()


@pytest.mark.parametrize("threshold, cap", [(0.0, 5), (1.5, 5), (0.9, 0), (0.9, True)])
def test_new_items_learned_rejects_bad_values(threshold, cap):
    with pytest.raises(ConfigError):
        NewItemsLearned(threshold, cap)


def test_labeled_passes_sizes_each_round_from_the_labeled_set():
    def rnd(new: int, history: int) -> RoundData:
        return RoundData(1, new_ids=np.arange(history, history + new), history_ids=np.arange(history))

    rule = LabeledPasses(2.0)
    assert rule.resolve(rnd(10, 90)) == FixedEpochs(20)  # 2 x 100 labeled / 10 new
    assert rule.resolve(rnd(10, 190)) == FixedEpochs(40), "rounds grow with what is labeled"
    assert rule.resolve(rnd(30, 70)) == FixedEpochs(7)  # ceil(6.67)
    assert LabeledPasses(0.1).resolve(rnd(50, 50)) == FixedEpochs(1)  # at least one epoch
    assert LabeledPasses(1.5, 0.99).resolve(rnd(10, 90)) == NewItemsLearned(0.99, 15)
    assert "2 passes" in rule.describe() and "0.99" in LabeledPasses(1.5, 0.99).describe()
    tiny = LabeledPasses(1.0, min_steps=20)  # a round of 10 new items is one step per epoch at batch 64
    assert tiny.resolve(rnd(10, 40), steps_per_epoch=1) == FixedEpochs(20)
    assert tiny.resolve(rnd(10, 390), steps_per_epoch=1) == FixedEpochs(40), "the passes win when larger"
    assert tiny.resolve(rnd(100, 400), steps_per_epoch=4) == FixedEpochs(5)  # 20 steps is 5 epochs of 4
    assert "at least 20 steps" in tiny.describe()
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ConfigError):
            LabeledPasses(bad)
    with pytest.raises(ConfigError):
        LabeledPasses(1.0, min_steps=-3)


def test_train_accuracy_threshold_one_is_allowed():
    rule = TrainAccuracy(1.0, 3)
    assert not rule.should_stop(_stats(1, 0.999))
    assert rule.should_stop(_stats(1, 1.0))


# --------------------------------------------------------------------------------------------
# OptimizerConfig
# --------------------------------------------------------------------------------------------


def test_optimizer_config_builds_sgd_and_adam():
    model = build_model("mlp:4", (6,), 3)
    sgd = OptimizerConfig("sgd", lr=0.1, momentum=0.5, weight_decay=1e-4).build(model)
    assert isinstance(sgd, torch.optim.SGD)
    group = sgd.param_groups[0]
    assert group["lr"] == 0.1 and group["momentum"] == 0.5 and group["weight_decay"] == 1e-4
    adam = OptimizerConfig("adam", lr=0.01).build(model)
    assert isinstance(adam, torch.optim.Adam)
    assert adam.param_groups[0]["lr"] == 0.01
    n_params = sum(len(g["params"]) for g in adam.param_groups)
    assert n_params == len(list(model.parameters()))
    assert OptimizerConfig().name in OPTIMIZERS


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "rmsprop"},
        {"name": "SGDx"},
        {"lr": 0.0},
        {"lr": -1e-3},
        {"lr": float("nan")},
        {"weight_decay": -1.0},
        {"momentum": 1.0},
        {"momentum": -0.1},
    ],
)
def test_optimizer_config_rejects(kwargs):
    with pytest.raises(ConfigError):
        OptimizerConfig(**kwargs)


def test_optimizer_config_unknown_name_lists_choices():
    with pytest.raises(ConfigError, match="sgd"):
        OptimizerConfig("lbfgs")


# --------------------------------------------------------------------------------------------
# policies and round data
# --------------------------------------------------------------------------------------------


def test_round_data_labeled_ids_and_new_fraction():
    rnd = RoundData(2, new_ids=np.array([7, 9, 11]), history_ids=np.array([1, 2, 3, 4, 5, 6]))
    np.testing.assert_array_equal(np.sort(rnd.labeled_ids), [1, 2, 3, 4, 5, 6, 7, 9, 11])
    assert len(rnd.labeled_ids) == 9
    assert rnd.new_fraction == pytest.approx(3 / 9)
    first = RoundData(0, new_ids=np.array([1, 2]), history_ids=np.array([], dtype=np.int64))
    assert first.new_fraction == 1.0
    np.testing.assert_array_equal(first.labeled_ids, [1, 2])


def test_policy_flags_and_registry():
    assert ResetPolicy.reinitialize is True
    assert WarmPolicy.reinitialize is False
    assert POLICIES["reset"] is ResetPolicy and POLICIES["warm"] is WarmPolicy
    assert isinstance(make_policy(" Reset "), ResetPolicy)
    assert isinstance(make_policy("warm"), WarmPolicy)
    with pytest.raises(ConfigError, match="reset"):
        make_policy("cal-sd")


@pytest.mark.parametrize("cls", [ResetPolicy, WarmPolicy])
def test_reset_and_warm_steps_cover_all_labeled_items(cls):
    rnd = RoundData(1, new_ids=np.arange(100, 110), history_ids=np.arange(0, 25))
    steps = list(cls().epoch_steps(RoundContext(rnd, None, None, None, np.random.default_rng(0), 8)))
    assert all(isinstance(s, Step) for s in steps)
    assert len(steps) == math.ceil(35 / 8)
    ids = np.concatenate([s.ids for s in steps])
    np.testing.assert_array_equal(np.sort(ids), np.sort(rnd.labeled_ids))
    assert all(s.n_new == len(s.ids) for s in steps)


def test_minibatches_cover_every_id_exactly_once():
    ids = np.array([3, 8, 15, 16, 23, 42, 57, 99, 100, 1001, 2024], dtype=np.int64)
    for batch_size in (1, 3, 4, 11, 50):
        batches = list(minibatches(ids, np.random.default_rng(1), batch_size))
        assert len(batches) == math.ceil(len(ids) / batch_size)
        assert all(len(b) == batch_size for b in batches[:-1])
        assert 1 <= len(batches[-1]) <= batch_size
        flat = np.concatenate(batches)
        assert len(flat) == len(ids)
        np.testing.assert_array_equal(np.sort(flat), np.sort(ids))


def test_minibatches_are_seeded_shuffles():
    ids = np.arange(500, 540, dtype=np.int64)
    a = np.concatenate(list(minibatches(ids, np.random.default_rng(5), 8)))
    b = np.concatenate(list(minibatches(ids, np.random.default_rng(5), 8)))
    c = np.concatenate(list(minibatches(ids, np.random.default_rng(6), 8)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, ids)  # actually shuffled
    # successive epochs from one generator differ
    rng = np.random.default_rng(5)
    e1 = np.concatenate(list(minibatches(ids, rng, 8)))
    e2 = np.concatenate(list(minibatches(ids, rng, 8)))
    assert not np.array_equal(e1, e2)


def test_minibatches_empty():
    assert list(minibatches(np.array([], dtype=np.int64), np.random.default_rng(0), 4)) == []


# --------------------------------------------------------------------------------------------
# DeviceData labels
# --------------------------------------------------------------------------------------------


def test_device_data_labels(blobs):
    data = DeviceData(blobs)
    ids = blobs.ids[[5, 1, 9]]
    with pytest.raises(RuntimeError):
        data.labels(ids)
    data.set_labels(ids, blobs.y_train[[5, 1, 9]])
    np.testing.assert_array_equal(data.labels(ids).numpy(), blobs.y_train[[5, 1, 9]])
    np.testing.assert_array_equal(data.labels(ids[::-1]).numpy(), blobs.y_train[[9, 1, 5]])
    with pytest.raises(RuntimeError):
        data.labels(blobs.ids[[5, 2]])  # one of them not labeled
    torch.testing.assert_close(data.features(ids), torch.as_tensor(blobs.x_train[[5, 1, 9]]))


# --------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------


def _setup(dataset, n_history: int, n_new: int, seed: int = 0, widths: str = "mlp:16"):
    data = DeviceData(dataset)
    history = dataset.ids[:n_history]
    new = dataset.ids[n_history : n_history + n_new]
    labeled = np.concatenate([history, new])
    pos = dataset.positions(labeled)
    data.set_labels(labeled, dataset.y_train[pos])
    torch.manual_seed(seed)
    model = build_model(widths, dataset.input_shape, dataset.n_classes)
    rnd = RoundData(1, new_ids=new, history_ids=history)
    return data, model, rnd


def test_trainer_rejects_bad_batch_size(blobs):
    with pytest.raises(ConfigError):
        Trainer(DeviceData(blobs), ComputeMeter(), batch_size=0)


@pytest.mark.parametrize("n_history, n_new, batch_size", [(50, 20, 16), (40, 24, 16), (0, 13, 64)])
def test_fit_fixed_epochs_counts_compute_exactly(blobs, n_history, n_new, batch_size):
    data, model, rnd = _setup(blobs, n_history, n_new)
    meter = ComputeMeter()
    trainer = Trainer(data, meter, batch_size=batch_size)
    seen_epochs = []
    summary = trainer.fit(
        model,
        OptimizerConfig("adam", lr=1e-2).build(model),
        ResetPolicy(),
        rnd,
        FixedEpochs(3),
        np.random.default_rng(0),
        on_epoch=lambda e, cap, acc: seen_epochs.append((e, cap, acc)),
    )
    n = n_history + n_new
    steps_per_epoch = math.ceil(n / batch_size)
    assert isinstance(summary, FitSummary)
    assert summary.epochs == 3
    assert summary.steps == steps_per_epoch * 3
    assert meter.optimizer_steps == steps_per_epoch * 3
    assert meter.sample_gradients == n * 3
    assert meter.forward_samples == n * 3
    assert meter.seconds["train"] > 0.0
    assert [e for e, _, _ in seen_epochs] == [1, 2, 3]
    assert all(cap == 3 for _, cap, _ in seen_epochs)
    assert all(0.0 <= acc <= 1.0 for _, _, acc in seen_epochs)
    assert seen_epochs[-1][2] == summary.running_accuracy
    assert 0.0 <= summary.new_running_accuracy <= 1.0


def test_fit_meter_accumulates_across_rounds(blobs):
    data, model, rnd = _setup(blobs, 30, 10)
    meter = ComputeMeter()
    trainer = Trainer(data, meter, batch_size=16)
    opt = OptimizerConfig("sgd", lr=0.05).build(model)
    trainer.fit(model, opt, WarmPolicy(), rnd, FixedEpochs(1), np.random.default_rng(0))
    trainer.fit(model, opt, WarmPolicy(), rnd, FixedEpochs(2), np.random.default_rng(1))
    assert meter.optimizer_steps == 3 * 3
    assert meter.sample_gradients == 40 * 3


def test_fit_train_accuracy_stops_early_on_easy_data():
    ds = make_blobs(n_pool=120, spread=0.5, seed=1)
    data, model, rnd = _setup(ds, 60, 30)
    meter = ComputeMeter()
    summary = Trainer(data, meter, batch_size=16).fit(
        model, OptimizerConfig("adam", lr=2e-2).build(model), ResetPolicy(), rnd,
        TrainAccuracy(0.9, 30), np.random.default_rng(0),
    )
    assert summary.running_accuracy >= 0.9
    assert summary.epochs < 30
    assert meter.optimizer_steps == summary.epochs * math.ceil(90 / 16)
    assert meter.sample_gradients == summary.epochs * 90


def test_fit_train_accuracy_stops_at_cap_when_threshold_unreachable():
    # Heavily overlapping blobs: 100 % running accuracy is out of reach in two epochs.
    ds = make_blobs(n_pool=120, spread=8.0, seed=2)
    data, model, rnd = _setup(ds, 60, 30)
    epochs_seen = []
    summary = Trainer(data, ComputeMeter(), batch_size=16).fit(
        model, OptimizerConfig("sgd", lr=1e-3).build(model), ResetPolicy(), rnd,
        TrainAccuracy(1.0, 2), np.random.default_rng(0),
        on_epoch=lambda e, cap, acc: epochs_seen.append((e, cap)),
    )
    assert summary.epochs == 2
    assert summary.running_accuracy < 1.0
    assert epochs_seen == [(1, 2), (2, 2)]


def _fit_weights(blobs, policy: Policy, seed: int = 0, rng_seed: int = 1):
    data, model, rnd = _setup(blobs, 40, 20, seed=seed)
    Trainer(data, ComputeMeter(), batch_size=16).fit(
        model, OptimizerConfig("adam", lr=1e-2).build(model), policy, rnd, FixedEpochs(2),
        np.random.default_rng(rng_seed),
    )
    return model.state_dict()


@pytest.mark.parametrize("cls", [ResetPolicy, WarmPolicy])
def test_fit_is_deterministic(blobs, cls):
    a = _fit_weights(blobs, cls())
    b = _fit_weights(blobs, cls())
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = _fit_weights(blobs, cls(), rng_seed=2)  # other batch order
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_fit_changes_weights_and_leaves_train_mode(blobs):
    data, model, rnd = _setup(blobs, 40, 20)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    Trainer(data, ComputeMeter(), batch_size=16).fit(
        model, OptimizerConfig("sgd", lr=0.1).build(model), ResetPolicy(), rnd, FixedEpochs(1),
        np.random.default_rng(0),
    )
    assert model.training
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fit_fails_on_unlabeled_items(blobs):
    data, model, _ = _setup(blobs, 10, 5)
    rnd = RoundData(1, new_ids=blobs.ids[100:105], history_ids=blobs.ids[:10])  # 100..104 unlabeled
    with pytest.raises(RuntimeError):
        Trainer(data, ComputeMeter(), batch_size=4).fit(
            model, OptimizerConfig().build(model), ResetPolicy(), rnd, FixedEpochs(1), np.random.default_rng(0)
        )


def test_fit_learns_easy_blobs(blobs):
    data, model, rnd = _setup(blobs, 120, 60)
    summary = Trainer(data, ComputeMeter(), batch_size=32).fit(
        model, OptimizerConfig("adam", lr=2e-2).build(model), ResetPolicy(), rnd, FixedEpochs(10),
        np.random.default_rng(0),
    )
    assert summary.running_accuracy > 0.8
    model.eval()
    with torch.no_grad():
        pred = model(torch.as_tensor(blobs.x_test)).argmax(1).numpy()
    assert (pred == blobs.y_test).mean() > 0.8
