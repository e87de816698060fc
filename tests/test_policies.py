"""The CAL policies: losses against hand computations, replay rules, stored targets, MIR's
virtual step, and every policy running, checkpointing and resuming on tiny data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from calkit import ActiveLoop, RunConfig
from calkit.checkpoint import checkpoint_path, load_checkpoint
from calkit.entropy import predictive_entropy
from calkit.errors import ConfigError
from calkit.models import build_model
from calkit.policies import POLICIES, PolicyOptions, ReplayPolicy, RoundData, make_policy
from calkit.policies.base import RoundContext, Step
from calkit.policies.mir import interference
from calkit.policies.sd import distillation_kl, scaled_distillation_loss
from calkit.policies.targets import StoredTargets
from calkit.submodular import greedy_maximize
from calkit.tensors import DeviceData
from calkit.policies import policy_names
from calkit.policies.presets import PRESETS, Preset
from calkit.testing import check_policy
from calkit.train import FixedEpochs, LabeledPasses, NewItemsLearned, TrainAccuracy
from calkit.train.warm_start import ShrinkPerturb
from tests.conftest import make_blobs
from tests.helpers import UserNet, UserNetWithEmbed, comparable, labeled_set, metrics

CONTINUAL = [name for name, cls in POLICIES.items() if issubclass(cls, ReplayPolicy)]


def round_context(policy_name: str = "er", n_history: int = 60, n_new: int = 20, model=None, seed: int = 0,
                  batch_size: int = 8):
    ds = make_blobs()
    data = DeviceData(ds)
    ids = ds.ids[: n_history + n_new]
    data.set_labels(ids, ds.y_train[: n_history + n_new])
    rnd = RoundData(2, new_ids=ids[n_history:], history_ids=ids[:n_history])
    torch.manual_seed(seed)
    model = model or build_model("mlp:16", ds.input_shape, ds.n_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return RoundContext(rnd, model, opt, data, np.random.default_rng(seed), batch_size)


# -- losses against hand computations ------------------------------------------------------
def test_kl_is_a_true_kl_on_log_probabilities():
    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    student = torch.tensor([[0.0, 1.0, 0.0], [1.0, -2.0, 0.0]])
    q, f = teacher.softmax(1), student.softmax(1)
    by_hand = (q * (q.log() - f.log())).sum(1).mean()
    assert torch.allclose(distillation_kl(student, teacher), by_hand, atol=1e-6)
    assert float(distillation_kl(teacher, teacher)) == pytest.approx(0.0, abs=1e-7)
    # The reference code's defect fed probabilities where log-probabilities belong; that value
    # is far from the true KL (and of the wrong sign here), so the two cannot be confused.
    defective = F.kl_div(f, q, reduction="batchmean")
    assert not torch.allclose(defective, by_hand, atol=1e-2)


def test_sd_loss_matches_hand_computation():
    torch.manual_seed(0)
    logits, stored = torch.randn(5, 3), torch.randn(2, 3)
    labels = torch.tensor([0, 1, 2, 1, 0])
    lam, alpha = 0.25, 0.4
    q, f = stored.softmax(1), logits[3:].softmax(1)
    kl = (q * (q.log() - f.log())).sum(1).mean()
    ce_new = -logits[:3].log_softmax(1)[torch.arange(3), labels[:3]].mean()
    ce_rep = -logits[3:].log_softmax(1)[torch.arange(2), labels[3:]].mean()
    by_hand = lam * ce_new + (1 - lam) * (alpha * kl + (1 - alpha) * ce_rep)
    got = scaled_distillation_loss(logits, labels, Step(np.arange(5), 3), stored, lam, alpha)
    assert torch.allclose(got, by_hand, atol=1e-6)
    # no replay: plain CE on the new items
    assert torch.allclose(scaled_distillation_loss(logits[:3], labels[:3], Step(np.arange(3), 3), None, lam, alpha), ce_new)


def test_der_loss_matches_hand_computation():
    ctx = round_context("der")
    policy = make_policy("der", PolicyOptions(alpha=0.3, beta=0.7))
    hist = ctx.rnd.history_ids
    stored = torch.randn(len(hist), 3)
    policy.targets.add(hist, stored)
    step = Step(np.concatenate([ctx.rnd.new_ids[:4], hist[[5, 9]]]), 4)
    out = policy.loss(step, ctx)
    logits, y = out.logits.detach(), ctx.data.labels(step.ids)
    z = stored[[5, 9]]
    by_hand = (
        F.cross_entropy(logits[:4], y[:4])
        + 0.3 * ((logits[4:] - z) ** 2).sum(1).mean()
        + 0.7 * F.cross_entropy(logits[4:], y[4:])
    )
    assert torch.allclose(out.loss.detach(), by_hand, atol=1e-6)


def test_er_loss_is_ce_over_the_concatenation():
    ctx = round_context("er")
    step = Step(np.concatenate([ctx.rnd.new_ids[:4], ctx.rnd.history_ids[:6]]), 4)
    out = make_policy("er").loss(step, ctx)
    y = ctx.data.labels(step.ids)
    assert torch.allclose(out.loss.detach(), F.cross_entropy(out.logits.detach(), y), atol=1e-6)


def test_sd_policy_uses_lambda_t_of_the_round():
    ctx = round_context("sd", n_history=60, n_new=20)
    assert ctx.rnd.new_fraction == pytest.approx(20 / 80)
    policy = make_policy("sd", PolicyOptions(alpha=0.5))
    policy.targets.add(ctx.rnd.history_ids, torch.zeros(60, 3))
    step = Step(np.concatenate([ctx.rnd.new_ids[:4], ctx.rnd.history_ids[:4]]), 4)
    out = policy.loss(step, ctx)
    expected = scaled_distillation_loss(
        out.logits.detach(), ctx.data.labels(step.ids), step, torch.zeros(4, 3), 0.25, 0.5
    )
    assert torch.allclose(out.loss.detach(), expected, atol=1e-6)


@pytest.mark.parametrize("t, new, history, expected", [(0, 100, 0, 1.0), (1, 100, 100, 0.5), (4, 100, 400, 0.2)])
def test_lambda_t_is_new_over_labeled(t, new, history, expected):
    rnd = RoundData(t, np.arange(history, history + new), np.arange(history))
    assert rnd.new_fraction == pytest.approx(expected) == pytest.approx(1 / (t + 1))


# -- replay composition ---------------------------------------------------------------------
@pytest.mark.parametrize("name", CONTINUAL)
def test_replay_comes_from_earlier_rounds_only(name):
    ctx = round_context(name, n_history=60, n_new=20)
    policy = make_policy(name, PolicyOptions(replay_size=8, candidates=24))
    if hasattr(policy, "targets"):
        policy.targets.add(ctx.rnd.history_ids, torch.zeros(60, 3))
    steps = list(policy.epoch_steps(ctx))
    new_seen = np.concatenate([s.new_ids for s in steps])
    assert sorted(new_seen.tolist()) == sorted(ctx.rnd.new_ids.tolist()), "each new item once per epoch"
    for s in steps:
        assert set(s.replay_ids.tolist()) <= set(ctx.rnd.history_ids.tolist())
        assert not set(s.replay_ids.tolist()) & set(ctx.rnd.new_ids.tolist())
        assert len(set(s.replay_ids.tolist())) == len(s.replay_ids)
        assert len(s.replay_ids) == (0 if name == "finetune" else 8)


@pytest.mark.parametrize("name", CONTINUAL)
def test_round_zero_has_nothing_to_replay(name):
    ctx = round_context(name, n_history=0, n_new=20)
    steps = list(make_policy(name).epoch_steps(ctx))
    assert all(len(s.replay_ids) == 0 for s in steps)


def test_replay_size_from_fraction_and_default():
    assert PolicyOptions(replay_fraction=0.5).replay_count(64, 1.0) == 64
    assert PolicyOptions(replay_fraction=2 / 3).replay_count(64, 1.0) == 128
    assert PolicyOptions(replay_fraction=0.05).replay_count(64, 1.0) == 3
    assert PolicyOptions(replay_size=10).replay_count(64, 1.0) == 10
    assert PolicyOptions().replay_count(64, 2.0) == 128
    with pytest.raises(ConfigError, match="only one of"):
        PolicyOptions(replay_size=3, replay_fraction=0.2)
    with pytest.raises(ConfigError, match="replay-fraction"):
        PolicyOptions(replay_fraction=1.0)


def test_lr_scaling_is_off_by_default_and_linear_when_on():
    later = RoundData(1, new_ids=np.arange(10, 20), history_ids=np.arange(10))
    assert make_policy("er", PolicyOptions(replay_size=128)).lr_multiplier(64, later) == 1.0
    assert make_policy("er", PolicyOptions(replay_size=128, lr_scaling=True)).lr_multiplier(64, later) == 3.0
    assert make_policy("reset").lr_multiplier(64, later) == 1.0


def test_lr_scaling_leaves_the_initial_round_alone():
    """Round 0 replays nothing, so it trains at the baseline's rate and matches the baseline's model."""
    initial = RoundData(0, new_ids=np.arange(10), history_ids=np.array([], dtype=np.int64))
    assert make_policy("er", PolicyOptions(replay_size=128, lr_scaling=True)).lr_multiplier(64, initial) == 1.0


def test_the_learning_rate_is_set_per_round(tmp_path):
    loop = ActiveLoop.create(tmp_path / "r", _cfg("er", lr_scaling=True, rounds=2), dataset=make_blobs())
    assert loop.run().complete
    # batch 8 with m' = 8: round 1 runs at twice the configured rate, round 0 at the rate itself
    assert load_checkpoint(checkpoint_path(loop.dir.checkpoints, 0))["optimizer"]["param_groups"][0]["lr"] == 0.01
    assert load_checkpoint(checkpoint_path(loop.dir.checkpoints, 1))["optimizer"]["param_groups"][0]["lr"] == 0.02
    loop.close()



def test_reset_tuned_trains_later_rounds_at_one_and_a_half_times_the_rate(tmp_path):
    """The shared initial round keeps the configured rate (its model is taken over by every policy)."""
    loop = ActiveLoop.create(tmp_path / "r", _cfg("reset-tuned", schedule="constant", rounds=2), dataset=make_blobs())
    assert loop.run().complete
    assert load_checkpoint(checkpoint_path(loop.dir.checkpoints, 0))["optimizer"]["param_groups"][0]["lr"] == 0.01
    assert load_checkpoint(checkpoint_path(loop.dir.checkpoints, 1))["optimizer"]["param_groups"][0]["lr"] == 0.015
    loop.close()


def test_a_run_keeps_its_learning_rate_when_the_preset_changes(tmp_path, monkeypatch):
    """A calkit that retuned a preset's rate finishes an old run at the rate it was created with."""
    loop = ActiveLoop.create(tmp_path / "r", _cfg("reset-tuned", rounds=2), dataset=make_blobs())
    assert loop.run().complete
    loop.close()
    assert [r["lr"] for r in metrics(tmp_path / "r")] == [0.01, 0.015]
    config = tmp_path / "r" / "config.yaml"
    config.write_text(config.read_text().replace("rounds: 2", "rounds: 3"))
    tuned = PRESETS["reset-tuned"]
    monkeypatch.setitem(PRESETS, "reset-tuned", Preset(tuned.name, tuned.policy, {**tuned.settings, "later_lr_factor": 1.0}))
    resumed = ActiveLoop.open(tmp_path / "r", dataset=make_blobs())
    assert resumed.run().complete
    resumed.close()
    assert [r["lr"] for r in metrics(tmp_path / "r")] == [0.01, 0.015, 0.015]

# -- stored targets -------------------------------------------------------------------------
def test_stored_targets_are_written_once_per_item():
    targets = StoredTargets()
    targets.add(np.array([5, 3]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    targets.add(np.array([9]), torch.tensor([[2.0, 2.0]]))
    assert torch.equal(targets.get(np.array([9, 5, 3])), torch.tensor([[2.0, 2.0], [1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="written once"):
        targets.add(np.array([3]), torch.tensor([[7.0, 7.0]]))
    with pytest.raises(KeyError):
        targets.get(np.array([4]))
    copy = StoredTargets()
    copy.load_state_dict(targets.state_dict())
    assert torch.equal(copy.get(np.array([3, 9])), targets.get(np.array([3, 9])))


@pytest.mark.parametrize("name", ["der", "sd"])
def test_targets_are_each_rounds_own_outputs_and_never_overwritten(tmp_path, name):
    """The reference code's aliasing defect cannot happen: after three rounds, the targets of
    round r's items are exactly the eval-mode outputs of the model checkpointed after round r."""
    ds = make_blobs()
    cfg = RunConfig(dataset="blobs", model="mlp:16", policy=name, initial=20, round_size=10, rounds=3,
                    epochs=3, batch_size=8, replay_size=8)
    loop = ActiveLoop.create(tmp_path / "run", cfg, dataset=ds)
    assert loop.run().complete
    stored = loop.policy.targets
    data = DeviceData(ds)
    for r in range(3):
        ids = loop.ledger.query(r).ids
        model = build_model("mlp:16", ds.input_shape, ds.n_classes)
        model.load_state_dict(load_checkpoint(checkpoint_path(tmp_path / "run" / "checkpoints", r))["model"])
        with torch.no_grad():
            expected = model.eval()(data.features(ids))
        assert torch.allclose(stored.get(ids), expected, atol=1e-6), f"round {r} targets"
    loop.close()


# -- MIR ------------------------------------------------------------------------------------
def test_mir_virtual_step_touches_no_real_state():
    ds = make_blobs()
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 3)
    )
    ctx = round_context("mir", model=model)
    # one real step, so the optimizer has momentum state to disturb
    ctx.model.train()
    loss = F.cross_entropy(ctx.model(ctx.data.features(ctx.rnd.new_ids)), ctx.data.labels(ctx.rnd.new_ids))
    loss.backward()
    ctx.optimizer.step()
    before_params = {k: v.clone() for k, v in model.state_dict().items()}
    before_grads = [p.grad.clone() for p in model.parameters()]
    before_opt = {i: {k: v.clone() for k, v in s.items()} for i, s in enumerate(ctx.optimizer.state.values())}
    scores = interference(ctx, ctx.rnd.new_ids[:8], ctx.rnd.history_ids[:30])
    assert scores.shape == (30,) and torch.isfinite(scores).all()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before_params[k]), f"{k} changed (parameters or BatchNorm statistics)"
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), before_grads))
    after_opt = {i: s for i, s in enumerate(ctx.optimizer.state.values())}
    for i, state in before_opt.items():
        assert all(torch.equal(after_opt[i][k], v) for k, v in state.items())
    assert model.training, "train mode restored"
    del ds


def test_mir_replays_the_most_interfered_candidates():
    ctx = round_context("mir", n_history=60)
    policy = make_policy("mir", PolicyOptions(replay_size=5, candidates=20))
    new = ctx.rnd.new_ids[:8]
    step = policy.choose_replay(new, 5, ctx)
    # replay the same candidate draw and score it independently
    ctx2 = round_context("mir", n_history=60)
    cands = policy.sample_candidates(ctx2, 20)
    scores = interference(ctx2, new, cands).numpy()
    assert set(step.replay_ids.tolist()) == set(cands[np.argsort(-scores, kind="stable")[:5]].tolist())
    assert step.extra_gradients == 8 and step.extra_forward == 40


def test_mir_sampling_option_draws_distinct_candidates():
    ctx = round_context("mir", n_history=60)
    step = make_policy("mir", PolicyOptions(replay_size=5, candidates=20, mir_sampling=True)).choose_replay(
        ctx.rnd.new_ids[:8], 5, ctx
    )
    assert len(set(step.replay_ids.tolist())) == 5


def _sds2_replay(model) -> tuple[Step, RoundContext]:
    ctx = round_context("sds2", n_history=60, model=model)
    policy = make_policy("sds2", PolicyOptions(replay_size=5, candidates=20))
    return policy.choose_replay(ctx.rnd.new_ids[:8], 5, ctx), ctx


def test_sds2_covers_a_user_models_own_embeddings():
    torch.manual_seed(0)
    own = UserNetWithEmbed()
    torch.manual_seed(0)
    plain = UserNet()  # the same weights, embeddings read from its hidden layer
    step, _ = _sds2_replay(own)
    assert own.embed_calls == 1
    assert step.extra_forward == 2 * 20, "scoring 20 candidates: a forward and an embed pass each"
    # the same candidate draw, scored by hand with the custom embeddings
    ctx2 = round_context("sds2", n_history=60, model=own)
    policy = make_policy("sds2", PolicyOptions(replay_size=5, candidates=20))
    cands = policy.sample_candidates(ctx2, 20)
    x = ctx2.data.features(cands)
    with torch.no_grad():
        h = predictive_entropy(own.eval()(x))
    expected = greedy_maximize((10.0 * x[:, :2]).numpy(), 5, ctx2.rng, h, 1.0).indices
    assert step.replay_ids.tolist() == cands[expected].tolist()
    plain_step, _ = _sds2_replay(plain)
    assert plain_step.extra_forward == 20
    assert set(plain_step.replay_ids.tolist()) != set(step.replay_ids.tolist())


# -- every policy end to end ----------------------------------------------------------------
def _cfg(policy: str, **kw) -> RunConfig:
    base = dict(dataset="blobs", model="mlp:16", policy=policy, initial=20, round_size=10, rounds=4, epochs=5, lr=0.01,
                batch_size=8, replay_size=8, candidates=16)
    base.update(kw)
    return RunConfig(**base)


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_policy_runs_and_resumes_like_an_uninterrupted_run(tmp_path, name):
    full = ActiveLoop.create(tmp_path / "full", _cfg(name), dataset=make_blobs())
    assert full.run().complete
    full.close()
    part = ActiveLoop.create(tmp_path / "part", _cfg(name), dataset=make_blobs())
    part.plan = part.plan[:2]
    part.run()
    part.close()
    resumed = ActiveLoop.open(tmp_path / "part", dataset=make_blobs())
    assert resumed.run().complete
    resumed.close()
    assert labeled_set(tmp_path / "part") == labeled_set(tmp_path / "full")
    assert comparable(metrics(tmp_path / "part")) == comparable(metrics(tmp_path / "full"))
    assert metrics(tmp_path / "full")[-1]["test_accuracy"] > 0.5


@pytest.mark.parametrize("user_model", [UserNet, UserNetWithEmbed])
def test_a_user_model_runs_sds2_with_diverse_acquisition(tmp_path, user_model):
    """Any nn.Module returning logits works; one with embed() has it used (and counted)."""
    made: list[nn.Module] = []

    def factory() -> nn.Module:
        made.append(user_model())
        return made[-1]

    cfg = _cfg("sds2", acquisition="diverse", rounds=3)
    loop = ActiveLoop.create(tmp_path / "run", cfg, dataset=make_blobs(), model_factory=factory)
    assert loop.run().complete
    loop.close()
    assert len(metrics(tmp_path / "run")) == 3
    if user_model is UserNetWithEmbed:
        assert sum(m.embed_calls for m in made) > 0


def test_continual_rounds_cost_the_same_whatever_the_round():
    """CAL's saving: a round costs E * ceil(b/m) * (m + m') sample-gradients, independent of t."""
    from calkit.train import ComputeMeter, FixedEpochs, Trainer

    ctx = round_context("er", n_history=60, n_new=20)
    meter = ComputeMeter()
    Trainer(ctx.data, meter, batch_size=8).fit(
        ctx.model, ctx.optimizer, make_policy("er", PolicyOptions(replay_size=16)), ctx.rnd, FixedEpochs(2),
        np.random.default_rng(0),
    )
    steps_per_epoch = math.ceil(20 / 8)
    assert meter.optimizer_steps == 2 * steps_per_epoch
    assert meter.sample_gradients == 2 * (20 + steps_per_epoch * 16)


def test_continual_policies_default_to_fixed_epochs_and_reset_to_the_accuracy_rule(tmp_path):
    loop = ActiveLoop.create(tmp_path / "a", _cfg("sd", epochs=None), dataset=make_blobs())
    assert loop.rules.later.describe().startswith("fixed")
    loop.close()
    loop = ActiveLoop.create(tmp_path / "b", _cfg("reset", epochs=None), dataset=make_blobs())
    assert "running train accuracy >= 0.99" in loop.rules.later.describe()
    loop.close()


def test_cal_trains_until_the_new_items_are_learned(tmp_path):
    loop = ActiveLoop.create(tmp_path / "a", _cfg("cal", epochs=None), dataset=make_blobs())
    assert loop.rules.later == LabeledPasses(2.0, 0.99, 40)
    cal = PRESETS["cal"].settings
    assert loop.rules.later == LabeledPasses(cal["labeled_passes"], cal["new_accuracy"], cal["min_round_steps"])
    assert loop.rules.warm_start == ShrinkPerturb(0.9, 0.05)
    loop.close()
    loop = ActiveLoop.create(tmp_path / "p", _cfg("cal", epochs=None, labeled_passes=1.5, min_round_steps=0),
                             dataset=make_blobs())
    assert loop.rules.later == LabeledPasses(1.5, 0.99, 0)
    loop.close()
    loop = ActiveLoop.create(tmp_path / "b", _cfg("cal", epochs=None, new_accuracy=0.9, max_new_epochs=7, max_epochs=30),
                              dataset=make_blobs())
    assert loop.rules.later == NewItemsLearned(0.9, 7)  # max_epochs caps standard AL's rounds, not cal's
    loop.close()
    loop = ActiveLoop.create(tmp_path / "c", _cfg("sd", epochs=None, new_accuracy=0.95), dataset=make_blobs())
    assert loop.rules.later == NewItemsLearned(0.95, 20)  # any continual policy can opt in
    loop.close()


@pytest.mark.parametrize("policy", ["reset", "reset-tuned", "warm", "er", "sd", "cal"])
def test_every_policy_trains_the_initial_round_by_one_shared_rule(tmp_path, policy):
    loop = ActiveLoop.create(tmp_path / policy, _cfg(policy, epochs=3, initial_max_epochs=7), dataset=make_blobs())
    assert loop.rules.rule_of(0) == TrainAccuracy(0.99, 7)
    assert loop.rules.rule_of(1) == loop.rules.later == FixedEpochs(3)
    loop.close()


def test_new_items_rule_ends_rounds_early_on_easy_data(tmp_path):
    """Separable blobs are learned within a few epochs, below the round's cap."""
    loop = ActiveLoop.create(tmp_path / "r", _cfg("cal", epochs=None), dataset=make_blobs())
    assert loop.run().complete
    loop.close()
    records = metrics(tmp_path / "r")
    assert all(r["epochs"] < r["epoch_cap"] for r in records[1:]), [r["epochs"] for r in records]


def test_cal_rounds_grow_with_the_labeled_set_and_take_at_least_40_steps(tmp_path):
    data = make_blobs(spread=3.0)
    loop = ActiveLoop.create(tmp_path / "r", _cfg("cal", epochs=None, rounds=6, batch_size=4, labeled_passes=3.0),
                             dataset=data)
    assert loop.run().complete
    loop.close()
    records = metrics(tmp_path / "r")
    # rounds of 10 new items at batch 4 are 3 steps an epoch: 40 steps take 14 epochs, 3 passes over
    # 30..70 labeled items take 9..21
    assert [r["epoch_cap"] for r in records[1:]] == [14, 14, 15, 18, 21]
    assert all(r["epochs"] <= r["epoch_cap"] for r in records[1:])


def test_cal_defaults_lean_replay_scaled_rate_and_a_cosine_per_round(tmp_path):
    cal = make_policy("cal")
    later = RoundData(1, new_ids=np.arange(10, 20), history_ids=np.arange(10))
    assert cal.replay_size(64) == 64  # replay fraction 1/2
    assert cal.lr_multiplier(64, later) == 2.0
    loop = ActiveLoop.create(tmp_path / "cal", _cfg("cal", epochs=None, replay_size=None), dataset=make_blobs())
    assert loop.rules.schedule.name == "cosine"
    loop.close()
    loop = ActiveLoop.create(tmp_path / "own", _cfg("cal", schedule="constant"), dataset=make_blobs())
    assert loop.rules.schedule.name == "constant"  # the run's choice wins
    loop.close()
    loop = ActiveLoop.create(tmp_path / "reset", _cfg("reset"), dataset=make_blobs())
    assert loop.rules.schedule.name == "constant"
    loop.close()


@pytest.mark.parametrize("name", policy_names())
def test_every_policy_and_preset_keeps_the_public_contract(name):
    """calkit.testing's checks, the ones a third-party policy runs too."""
    check_policy(lambda: make_policy(name))
