"""`start_from`: a run takes over another run's trained initial round instead of training its own,
after checking that the start was made the way this run would have made it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calkit import ActiveLoop, RunConfig
from calkit.checkpoint import checkpoint_path, load_checkpoint
from calkit.errors import ConfigError, LedgerError
from tests.conftest import make_blobs
from tests.helpers import calkit, comparable, labeled_set, metrics


def cfg(**kw) -> RunConfig:
    base = dict(dataset="blobs", model="mlp:16", initial=20, round_size=10, rounds=3, epochs=2, batch_size=8,
                initial_max_epochs=5)
    base.update(kw)
    return RunConfig(**base)


@pytest.fixture
def start(tmp_path):
    loop = ActiveLoop.create(tmp_path / "start", cfg(policy="reset", rounds=1), dataset=make_blobs(spread=2.5))
    assert loop.run().complete
    loop.close()
    return tmp_path / "start"


def test_a_run_takes_over_the_start_instead_of_training_round_0(tmp_path, start, monkeypatch):
    from calkit.train import Trainer

    fits = []
    original = Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self, *a, **k: fits.append(a[3].index) or original(self, *a, **k))
    loop = ActiveLoop.create(tmp_path / "sd", cfg(policy="sd", lr=0.02), dataset=make_blobs(spread=2.5),
                             start_from=start)
    assert loop.run().complete
    targets = loop.policy.targets
    loop.close()
    assert fits == [1, 2], "round 0 was not trained again"
    mine, theirs = metrics(tmp_path / "sd")[0], metrics(start)[0]
    for key in ("test_accuracy", "val_accuracy", "epochs", "sample_gradients", "stop_rule"):
        assert mine[key] == theirs[key], key
    assert mine["train_seconds"] > theirs["train_seconds"], "the start's training time, plus the stored targets"
    assert mine["forward_samples"] == theirs["forward_samples"] + 20, "sd's stored targets for round 0's items count"
    start_model = load_checkpoint(checkpoint_path(start / "checkpoints", 0))["model"]
    model = load_checkpoint(checkpoint_path(tmp_path / "sd" / "checkpoints", 0))["model"]
    assert all(torch.equal(model[k], start_model[k]) for k in model)
    assert len(targets.get(np.array(sorted(labeled_set(start))[0][:1]), "cpu")) == 1  # round 0's items have targets


@pytest.mark.parametrize("change, field", [
    (dict(seed=1), "seed"), (dict(initial_max_epochs=6), "initial_rule"), (dict(model="mlp:8"), "model"),
    (dict(initial=30), "initial"), (dict(optimizer="sgd"), "optimizer"),
])
def test_a_start_made_differently_is_refused_before_anything_is_written(tmp_path, start, change, field):
    with pytest.raises(ConfigError, match=f"made differently.*{field}"):
        ActiveLoop.create(tmp_path / "new", cfg(policy="cal", **change), dataset=make_blobs(spread=2.5),
                          start_from=start)
    assert not (tmp_path / "new").exists()


def test_other_data_is_refused_too(tmp_path, start):
    with pytest.raises(ConfigError, match="dataset"):
        ActiveLoop.create(tmp_path / "new", cfg(policy="cal"), dataset=make_blobs(spread=2.4), start_from=start)


def test_a_start_without_a_trained_initial_round_is_refused(tmp_path):
    empty = ActiveLoop.create(tmp_path / "empty", cfg(policy="reset"), dataset=make_blobs())
    empty.close()
    with pytest.raises(LedgerError, match="no trained initial round"):
        ActiveLoop.create(tmp_path / "new", cfg(policy="cal"), dataset=make_blobs(), start_from=tmp_path / "empty")


def test_kill_then_resume_a_run_that_started_from_another(tmp_path):
    """The start lives in the run directory (start.pt), so a resumed run needs nothing else."""
    ds = make_blobs(n_pool=200)
    data = tmp_path / "blobs.npz"
    np.savez(data, X=ds.x_train, y=ds.y_train, X_test=ds.x_test, y_test=ds.y_test)
    flags = ["--dataset", str(data), "--model", "mlp:16", "--initial", "20", "--round-size", "10", "--epochs", "2",
             "--batch-size", "8", "--initial-max-epochs", "4"]
    assert calkit("run", *flags, "--rounds", "1", "--policy", "reset", "--out", str(tmp_path / "s")).returncode == 0
    run = [*flags, "--rounds", "4", "--policy", "cal", "--start-from", str(tmp_path / "s")]
    done = calkit("run", *run, "--out", str(tmp_path / "ref"))
    assert done.returncode == 0, done.stderr
    for fault in ("checkpoint:0", "train:2"):
        target = tmp_path / fault.replace(":", "")
        killed = calkit("run", *run, "--out", str(target), fault=fault)
        assert killed.returncode == -9
        resumed = calkit("resume", str(target))
        assert resumed.returncode == 0, resumed.stderr
        assert labeled_set(target) == labeled_set(tmp_path / "ref")
        assert comparable(metrics(target)) == comparable(metrics(tmp_path / "ref"))
