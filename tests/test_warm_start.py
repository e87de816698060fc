"""Shrink and perturb: the arithmetic, its validation, and where the loop applies it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from calkit import ActiveLoop, RunConfig
from calkit.checkpoint import checkpoint_path, load_checkpoint
from calkit.errors import ConfigError
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
