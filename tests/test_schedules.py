"""Learning-rate schedules: their shapes, and the infinite schedule's anneal-a-copy contract in the loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from calkit import ActiveLoop, RunConfig
from calkit.checkpoint import checkpoint_path, load_checkpoint
from calkit.errors import ConfigError
from calkit.train.schedules import Schedule
from tests.conftest import make_blobs
from tests.helpers import comparable, metrics


def curve(schedule: Schedule, horizon: int, trained: int = 0) -> list[float]:
    return [schedule.factor(i, horizon, trained) for i in range(horizon)]


def test_constant_is_one_everywhere():
    assert set(curve(Schedule("constant"), 50, trained=7)) == {1.0}


def test_cosine_warms_up_then_decays_to_the_floor_every_round():
    s = Schedule("cosine", warmup=0.1, min_factor=0.1)
    first, later = curve(s, 100), curve(s, 100, trained=500)
    assert first == later  # restarted: earlier rounds do not matter
    assert first[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert first[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(first[10:], first[11:]))
    assert s.factor(100, 100, 0) == pytest.approx(0.1)  # the horizon reaches eta_min


@pytest.mark.parametrize("cooldown", ["cosine", "inv-sqrt"])
def test_infinite_cools_down_once_then_stays_constant(cooldown):
    s = Schedule("infinite", warmup=0.05, const_factor=0.55, cooldown=cooldown)
    first = curve(s, 200)
    assert first[9] == pytest.approx(1.0)  # the warm-up peaks at eta_max
    assert first[10] == pytest.approx(1.0)  # and the cooldown starts there: continuous
    assert all(a >= b for a, b in zip(first[10:], first[11:]))
    assert s.factor(200, 200, 0) == pytest.approx(0.55)  # the cooldown ends at eta_const: continuous
    assert set(curve(s, 30, trained=200)) == {0.55}  # later rounds: no re-warm, no re-decay


def test_inverse_sqrt_cooldown_drops_faster_than_cosine_early():
    cos, inv = Schedule("infinite", warmup=0.0), Schedule("infinite", warmup=0.0, cooldown="inv-sqrt")
    assert inv.factor(10, 100, 0) < cos.factor(10, 100, 0)


def test_infinite_anneal_is_exponential_from_the_plateau_to_the_floor():
    s = Schedule("infinite", const_factor=0.5, min_factor=0.05)
    steps = [s.anneal_factor(i, 10) for i in range(10)]
    assert steps[-1] == pytest.approx(0.05)
    ratios = [b / a for a, b in zip(steps, steps[1:])]
    assert ratios == pytest.approx([ratios[0]] * len(ratios))  # constant ratio: exponential
    assert steps[0] == pytest.approx(0.5 * (0.1) ** 0.1)


def test_wsd_is_flat_at_the_peak_and_anneals_as_one_minus_sqrt():
    s = Schedule("wsd", warmup=0.0, min_factor=0.0)
    assert set(curve(s, 20)) == {1.0} and set(curve(s, 20, trained=5)) == {1.0}
    assert [s.anneal_factor(i, 4) for i in range(4)] == pytest.approx([1 - math.sqrt(p) for p in (0.25, 0.5, 0.75, 1.0)])


@pytest.mark.parametrize("kw", [dict(name="linear"), dict(cooldown="step"), dict(warmup=1.0), dict(min_factor=1.5),
                                dict(const_factor=0.05, min_factor=0.1), dict(anneal_epochs=0)])
def test_bad_schedules_are_refused(kw):
    with pytest.raises(ConfigError):
        Schedule(**kw)


def test_trainer_sets_the_learning_rate_before_every_step():
    from calkit.policies import RoundData, make_policy
    from calkit.tensors import DeviceData
    from calkit.train import ComputeMeter, FixedEpochs, Trainer

    blobs = make_blobs()
    data = DeviceData(blobs, torch.device("cpu"))
    ids = blobs.ids[:20]
    data.set_labels(ids, blobs.y_train[blobs.positions(ids)])
    model = torch.nn.Linear(blobs.input_shape[0], blobs.n_classes)
    seen: list[float] = []

    class Recorder(torch.optim.SGD):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    rnd = RoundData(0, new_ids=ids, history_ids=np.array([], dtype=np.int64))
    Trainer(data, ComputeMeter(), batch_size=8).fit(
        model, Recorder(model.parameters(), lr=1.0), make_policy("reset"), rnd, FixedEpochs(2),
        np.random.default_rng(0), lr_at=lambda step: 0.1 * (step + 1),
    )
    assert seen == pytest.approx([0.1 * (i + 1) for i in range(6)])  # 2 epochs x ceil(20 / 8) steps


# -- the loop ---------------------------------------------------------------------------------


def _cfg(**kw) -> RunConfig:
    base = dict(dataset="blobs", model="mlp:16", policy="cal", initial=20, round_size=10, rounds=4, epochs=3, lr=0.01,
                batch_size=8, replay_size=8, lr_scaling=False, schedule="infinite", warmup=0.1)
    base.update(kw)
    return RunConfig(**base)


def test_infinite_schedule_serves_an_annealed_copy_and_continues_from_the_plateau(tmp_path):
    loop = ActiveLoop.create(tmp_path / "r", _cfg(), dataset=make_blobs())
    assert loop.run().complete
    initial = load_checkpoint(checkpoint_path(loop.dir.checkpoints, 0))
    assert initial["annealed"] is None  # the initial round trains like standard AL
    assert initial["optimizer"]["param_groups"][0]["lr"] == 0.01
    for t in range(1, 4):
        payload = load_checkpoint(checkpoint_path(loop.dir.checkpoints, t))
        assert payload["annealed"] is not None
        differs = [not torch.equal(payload["model"][k], payload["annealed"][k]) for k in payload["model"]]
        assert any(differs), "the anneal trained the copy, not the continual state"
        # the continual optimizer keeps the cooldown's (round 1) or the plateau's rate: the
        # anneal's lower rates never reach it
        lr = payload["optimizer"]["param_groups"][0]["lr"]
        if t == 1:
            assert 0.01 * 0.55 < lr < 0.01
        else:
            assert lr == pytest.approx(0.01 * 0.55)
    served = loop.model_at(3)
    assert all(torch.equal(v, payload["annealed"][k]) for k, v in served.state_dict().items())
    loop.close()
    assert metrics(tmp_path / "r")[-1]["schedule"].startswith("infinite")


def test_the_anneal_is_metered_as_training(tmp_path):
    for schedule in ("constant", "infinite"):
        loop = ActiveLoop.create(tmp_path / schedule, _cfg(schedule=schedule), dataset=make_blobs())
        assert loop.run().complete
        loop.close()
    plain, annealed = metrics(tmp_path / "constant"), metrics(tmp_path / "infinite")
    # one extra epoch per continual round: 10 new items in 2 steps, each replaying 8; none in round 0
    assert annealed[-1]["sample_gradients"] == plain[-1]["sample_gradients"] + 3 * (10 + 2 * 8)


@pytest.mark.parametrize("schedule", ["cosine", "infinite"])
def test_scheduled_runs_resume_like_uninterrupted_ones(tmp_path, schedule):
    full = ActiveLoop.create(tmp_path / "full", _cfg(schedule=schedule), dataset=make_blobs())
    assert full.run().complete
    full.close()
    part = ActiveLoop.create(tmp_path / "part", _cfg(schedule=schedule), dataset=make_blobs())
    part.plan = part.plan[:2]  # stop after the second checkpoint
    part.run()
    part.close()
    resumed = ActiveLoop.open(tmp_path / "part", dataset=make_blobs())
    assert resumed.run().complete
    resumed.close()
    assert comparable(metrics(tmp_path / "part")) == comparable(metrics(tmp_path / "full"))


@pytest.mark.parametrize("schedule", ["cosine", "infinite", "wsd"])
def test_every_policy_trains_the_same_initial_round_whatever_its_rules(tmp_path, schedule):
    """Round 0 is the shared initial rule at a constant rate, for cal and reset alike, whatever their
    own schedules and caps (cal's new-items cap, reset's --max-epochs). The blobs overlap, so no
    round reaches 99 % training accuracy and every cap binds: a round 0 trained by each policy's
    own rules would show as different epochs and a different model."""
    data = make_blobs(spread=2.5)
    rules = dict(epochs=None, initial_max_epochs=6)
    cal = ActiveLoop.create(tmp_path / "cal", _cfg(schedule=schedule, max_new_epochs=2, **rules), dataset=data)
    base = ActiveLoop.create(tmp_path / "reset", _cfg(policy="reset", schedule="cosine", max_epochs=9, **rules),
                             dataset=data)
    for loop in (cal, base):
        loop.plan = loop.plan[:1]
        loop.run()
        loop.close()
    first = metrics(tmp_path / "cal")[0]
    assert first["epochs"] == 6 and first["schedule"] == "constant"
    assert comparable(metrics(tmp_path / "cal")) == comparable(metrics(tmp_path / "reset"))
    models = [load_checkpoint(checkpoint_path(tmp_path / p / "checkpoints", 0))["model"] for p in ("cal", "reset")]
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])
