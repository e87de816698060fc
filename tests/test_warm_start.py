"""Shrink and perturb: the arithmetic, its validation, and where the loop applies it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from calkit import ActiveLoop, RunConfig
from calkit.checkpoint import checkpoint_path, load_checkpoint
from calkit.errors import ConfigError
from calkit.report import read_metrics
from calkit.train.warm_start import shrink_perturb
from tests.conftest import make_blobs


def test_shrink_perturb_mixes_the_weights_with_a_fresh_draw():
    model, fresh = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.clone() for p in model.parameters()]
    shrink_perturb(model, fresh, 0.6, 0.1)
    for p, b, q in zip(model.parameters(), before, fresh.parameters()):
        torch.testing.assert_close(p, 0.6 * b + 0.1 * q)
    identity = nn.Linear(3, 2)
    kept = [p.clone() for p in identity.parameters()]
    shrink_perturb(identity, fresh, 1.0, 0.0)
    assert all(torch.equal(p, k) for p, k in zip(identity.parameters(), kept))


@pytest.mark.parametrize("shrink, perturb", [(0.0, 0.1), (1.5, 0.0), (0.5, -0.1), (0.5, 2.0)])
def test_bad_values_are_refused(shrink, perturb):
    with pytest.raises(ConfigError):
        RunConfig(rounds=2, shrink=shrink, perturb=perturb).validate()


def _first_layer_after(tmp_path, name, **kw):
    cfg = RunConfig(dataset="blobs", model="mlp:16", initial=20, round_size=10, rounds=2, epochs=1, batch_size=64,
                    lr=1e-9, **kw)  # a learning rate too small to move the weights: only shrink-perturb does
    loop = ActiveLoop.create(tmp_path / name, cfg, dataset=make_blobs())
    assert loop.run().complete
    loop.close()
    return [load_checkpoint(checkpoint_path(tmp_path / name / "checkpoints", t))["model"] for t in (0, 1)]


def test_the_loop_shrinks_a_kept_model_before_each_later_round(tmp_path):
    (r0, r1) = _first_layer_after(tmp_path, "sp", policy="er", shrink=0.5, perturb=0.0)
    for key in r0:
        if key.endswith("weight"):
            torch.testing.assert_close(r1[key], 0.5 * r0[key], atol=1e-6, rtol=1e-4)
    (p0, p1) = _first_layer_after(tmp_path, "plain", policy="er")
    assert all(torch.allclose(p1[k], p0[k], atol=1e-6) for k in p0 if k.endswith("weight"))


def test_cal_shrinks_by_default_and_every_record_says_what_the_model_went_through(tmp_path):
    (r0, r1) = _first_layer_after(tmp_path, "cal", policy="cal")
    assert not all(torch.allclose(r1[k], r0[k], atol=1e-6) for k in r0 if k.endswith("weight"))
    (c0, c1) = _first_layer_after(tmp_path, "off", policy="cal", shrink=1.0, perturb=0.0)
    assert all(torch.allclose(c1[k], c0[k], atol=1e-6) for k in c0 if k.endswith("weight"))
    records = read_metrics(tmp_path / "cal")
    assert [r["warm_start"] for r in records] == ["none", "shrink 0.9, perturb 0.05"]
    reset = read_metrics(tmp_path / "off")
    assert [r["warm_start"] for r in reset] == ["none", "none"]


def test_resume_refuses_a_run_whose_config_was_edited_to_another_warm_start(tmp_path):
    cfg = RunConfig(dataset="blobs", model="mlp:16", policy="cal", initial=20, round_size=10, rounds=2, epochs=1)
    loop = ActiveLoop.create(tmp_path / "r", cfg, dataset=make_blobs())
    assert loop.run().complete  # round 1 was shrunk by cal's default
    loop.close()
    config = tmp_path / "r" / "config.yaml"
    edited = config.read_text().replace("rounds: 2", "rounds: 3").replace("shrink: 0.9", "shrink: 0.5")
    assert "shrink: 0.5" in edited
    config.write_text(edited)
    with pytest.raises(ConfigError, match="was edited .shrink: 0.9 at creation, 0.5 now"):
        ActiveLoop.open(tmp_path / "r", dataset=make_blobs()).run()
