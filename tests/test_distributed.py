"""Runs on several processes (torchrun, gloo on CPU): the ranks pick what one process picks, train
to the same numbers, and a rank killed with -9 stops the job, which resume then continues."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from calkit.acquisition import ModelScoringContext
from calkit.data import load_dataset
from calkit.distributed import Ranks
from calkit.policies import PolicyOptions, Step, make_policy
from calkit.tensors import pool_data

from distributed_scoring import SCORE_BATCH, fixed_model, picks
from calkit.cli import main
from helpers import comparable, labeled_set, metrics
from test_policies import round_context

HERE = Path(__file__).parent
TORCHRUN = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2")
RUN = ("--dataset", "digits", "--policy", "cal", "--rounds", "5", "--initial", "60", "--round-size", "60",
       "--seed", "4", "--quiet")


def torchrun(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CALKIT_FAULT")}
    return subprocess.run([*TORCHRUN, *args], env={**environ, **env}, capture_output=True, text=True,
                          timeout=timeout)


# -- the loss of a step shared by ranks ---------------------------------------------------------
@pytest.mark.parametrize("policy_name", ["reset", "er", "sd", "der"])
@pytest.mark.parametrize("n_new, n_replay", [(8, 16), (5, 3), (1, 4)])
def test_shares_of_a_step_average_to_the_whole_steps_gradient(policy_name, n_new, n_replay):
    """DDP averages the ranks' gradients; the shares' weights make that the whole step's gradient,
    however unevenly the new and replayed rows fall (a rank may get none of a part)."""
    ctx = round_context(policy_name, n_history=40, n_new=20)
    policy = make_policy(policy_name, PolicyOptions(alpha=0.4))
    if hasattr(policy, "targets"):
        policy.targets.add(ctx.rnd.history_ids, torch.randn(40, 3, generator=torch.Generator().manual_seed(0)))
    step = Step(np.concatenate([ctx.rnd.new_ids[:n_new], ctx.rnd.history_ids[:n_replay]]), n_new)

    def gradient(s: Step) -> torch.Tensor:
        ctx.model.zero_grad()
        policy.loss(s, ctx).loss.backward()
        return torch.cat([p.grad.flatten() for p in ctx.model.parameters()])

    whole = gradient(step)
    for world in (2, 3):
        averaged = sum(gradient(step.share(Ranks(rank, world))) for rank in range(world)) / world
        torch.testing.assert_close(averaged, whole, rtol=1e-5, atol=1e-6)


def test_a_share_splits_the_new_and_the_replayed_parts_separately():
    step = Step(np.arange(10), 3)
    shares = [step.share(Ranks(r, 2)) for r in range(2)]
    assert [s.new_ids.tolist() for s in shares] == [[0, 1], [2]]
    assert [s.replay_ids.tolist() for s in shares] == [[3, 4, 5, 6], [7, 8, 9]]
    assert all(s.shard.new_total == 3 and s.shard.replay_total == 7 for s in shares)
    assert step.share(Ranks()) is step


def test_ranks_shard_whole_batches():
    shares = [Ranks(r, 3).shard(1000, 64) for r in range(3)]
    assert np.array_equal(np.concatenate(shares), np.arange(1000))
    assert all(s[0] % 64 == 0 for s in shares if len(s))


# -- the same picks -------------------------------------------------------------------------------
def _npy_pool(tmp_path: Path) -> Path:
    digits = load_dataset("digits", test_fraction=0, val_fraction=0)
    folder = tmp_path / "pool"
    folder.mkdir()
    x = digits.x_train.reshape(len(digits.x_train), -1)
    for i, part in enumerate(np.array_split(np.arange(len(x)), 3)):
        np.save(folder / f"x-{i}.npy", x[part])
    np.save(folder / "y.npy", digits.y_train)
    return folder


def test_two_ranks_pick_what_one_process_picks(tmp_path, monkeypatch):
    """On the device and streamed from .npy shards by a DataLoader worker: the same picks, the same
    scores; also when one batch holds every candidate (rank 0 scores them all, rank 1 none)."""
    monkeypatch.setenv("CALKIT_CACHE", str(tmp_path / "cache"))  # files found finite are remembered there
    sources = [("digits", 0, SCORE_BATCH), (str(_npy_pool(tmp_path)), 1, SCORE_BATCH), ("digits", 0, 4096)]
    out = tmp_path / "picks.json"
    done = torchrun(str(HERE / "distributed_scoring.py"), str(out), *(f"{d}:{w}:{b}" for d, w, b in sources),
                    timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    shared = json.loads(out.read_text())
    assert shared["world"] == 2
    first, second = shared["train"]  # MIR with dropout and BatchNorm: the ranks chose and ended alike
    assert first == second
    for data, workers, batch in sources:
        dataset = load_dataset(data)
        model = fixed_model(dataset)
        alone = picks(dataset, lambda rng: ModelScoringContext(model, pool_data(dataset), rng, batch))
        assert shared["picks"][f"{data}:{workers}:{batch}"] == alone


# -- a run on two processes -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "run"
    done = torchrun("-m", "calkit", "run", *RUN, "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_a_two_process_run_trains_like_one_process(tmp_path, two_process_run):
    alone = tmp_path / "alone"
    assert main(["run", *RUN, "--out", str(alone)]) == 0
    shared, single = metrics(two_process_run), metrics(alone)
    assert len(shared) == len(single) == 5
    for a, b in zip(shared, single):
        assert a["sample_gradients"] == b["sample_gradients"]
        assert a["forward_samples"] == b["forward_samples"]
        assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 0.005
    assert len(labeled_set(two_process_run)) == len(labeled_set(alone)) == 300


def test_killing_one_rank_stops_the_job_and_resume_continues_it(tmp_path, two_process_run):
    out = tmp_path / "killed"
    begin = time.monotonic()
    crashed = torchrun("-m", "calkit", "run", *RUN, "--out", str(out), CALKIT_FAULT_AT="train:2",
                       CALKIT_FAULT_RANK="1")
    assert crashed.returncode != 0
    assert time.monotonic() - begin < 120  # stopped, not hung waiting for the dead rank
    assert [r["round"] for r in metrics(out)] == [0, 1]
    resumed = torchrun("-m", "calkit", "resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert comparable(metrics(out)) == comparable(metrics(two_process_run))
    assert labeled_set(out) == labeled_set(two_process_run)


def test_commands_that_run_in_one_process_refuse_torchrun(monkeypatch, capsys, two_process_run):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["report", str(two_process_run)]) == 2
    assert "runs in one process; torchrun can launch run, resume, compare" in capsys.readouterr().err


def test_compare_runs_on_two_processes(tmp_path, two_process_run):
    """Rank 0 alone decides which runs exist and writes the report; the runs train on both ranks."""
    args = ("compare", "--dataset", "digits", "--policies", "cal", "--seeds", "1", "--budgets", "100,200",
            "--setups", "same", "--out", str(tmp_path / "cmp"))
    done = torchrun("-m", "calkit", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert summary["baseline"] == "reset" and set(summary["setups"]) == {"same"}
    runs = sorted(p.name for p in (tmp_path / "cmp" / "same").iterdir())
    assert runs == ["cal-s0", "reset-s0"]
    for name in runs:
        records = metrics(tmp_path / "cmp" / "same" / name)
        assert records[0]["labeled"] == 100 and records[-1]["labeled"] == 200
