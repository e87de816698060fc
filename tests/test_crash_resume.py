"""kill -9 at every step of a round, then `calkit resume`: nothing lost, nothing duplicated,
and the same labeled set and numbers as a run that was never interrupted."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.conftest import make_blobs, save_npz
from tests.helpers import calkit, comparable, crash_then_resume, labeled_set, metrics

RUN_FLAGS = [
    "--model", "mlp:16", "--policy", "warm", "--acquisition", "entropy", "--initial", "20",
    "--round-size", "10", "--rounds", "5", "--epochs", "4", "--batch-size", "8", "--seed", "7",
]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    return save_npz(make_blobs(n_pool=400), tmp_path_factory.mktemp("data") / "blobs.npz")


@pytest.fixture(scope="module")
def uninterrupted(data_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    done = calkit("run", "--dataset", str(data_file), *RUN_FLAGS, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def assert_same_as_uninterrupted(run_dir: Path, reference: Path) -> None:
    facts = labeled_set(run_dir)
    assert len({f[0] for f in facts}) == len(facts) == 60, "every item labeled exactly once"
    assert facts == labeled_set(reference)
    assert comparable(metrics(run_dir)) == comparable(metrics(reference))


# One point of each kind (the initial round's training is special: no history, no start), to keep
# the suite's time; the lookahead, shared-start and distributed tests kill at others.
@pytest.mark.parametrize("fault", ["query:1", "labels:2", "train:0", "train:2", "checkpoint:2"])
def test_kill_at_each_step_then_resume(fault, data_file, uninterrupted, tmp_path):
    out = tmp_path / "run"
    resumed = crash_then_resume(out, "--dataset", str(data_file), *RUN_FLAGS, fault=fault)
    assert "done: 60 labels" in resumed.stdout
    assert_same_as_uninterrupted(out, uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.15])
def test_kill_at_an_arbitrary_moment(delay, data_file, uninterrupted, tmp_path):
    out = tmp_path / "run"
    flags = [f if f != "4" else "40" for f in RUN_FLAGS]  # longer rounds: a wider window to hit
    proc = calkit("run", "--dataset", str(data_file), *flags, "--out", str(out), wait=False)
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").exists() or len((out / "metrics.jsonl").read_text().splitlines()) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    resumed = calkit("resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    reference = out.parent / "reference"
    ref = calkit("run", "--dataset", str(data_file), *flags, "--out", str(reference))
    assert ref.returncode == 0, ref.stderr
    assert_same_as_uninterrupted(out, reference)
