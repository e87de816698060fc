"""Helpers shared by several test modules: reading a run's records and ledger, running the CLI in
a child process (for kill -9 and concurrency tests), and user models that are not calkit's own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import torch
from torch import nn

from calkit.ledger import Ledger
from calkit.report import read_metrics


def labeled_set(run_dir) -> list[tuple[int, int, int]]:
    """Every label fact of a run as (item, label, round), sorted."""
    ledger = Ledger.open(run_dir / "ledger.sqlite")
    try:
        return sorted((f["item_id"], f["label"], f["round"]) for f in ledger.label_facts())
    finally:
        ledger.close()


def metrics(run_dir) -> list[dict]:
    return read_metrics(run_dir)


def comparable(records: list[dict]) -> list[tuple]:
    """The machine-independent part of the metrics (wall seconds differ between runs)."""
    keys = ("round", "labeled", "test_accuracy", "test_macro_f1", "sample_gradients", "optimizer_steps", "epochs")
    return [tuple(r[k] for k in keys) for r in records]


def calkit(*args: str, fault: str | None = None, wait: bool = True, **popen):
    """`python -m calkit ARGS` in a child process; ``fault`` makes it die at that point
    (CALKIT_FAULT_AT); ``wait=False`` returns the running process."""
    env = dict(os.environ)
    env.pop("CALKIT_FAULT_AT", None)
    if fault:
        env["CALKIT_FAULT_AT"] = fault
    cmd = [sys.executable, "-m", "calkit", *args]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def crash_then_resume(out, *run_args: str, fault: str) -> subprocess.CompletedProcess:
    """`calkit run ARGS --out OUT` killed at ``fault``, then `calkit resume OUT`; returns the resume."""
    crashed = calkit("run", *run_args, "--out", str(out), fault=fault)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    resumed = calkit("resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    return resumed


class UserNet(nn.Module):
    """A user model, not a calkit BodyHead: Linear-ReLU-Linear, logits only (no embed method)."""

    def __init__(self, n_features: int = 6, n_classes: int = 3, hidden: int = 5):
        super().__init__()
        self.hidden = nn.Linear(n_features, hidden)
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


class UserNetWithEmbed(UserNet):
    """The same network (same weights under the same seed) with an ``embed`` of its own that is
    nothing like its hidden layer (ten times the first two raw features), counting its calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.embed_calls = 0

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        self.embed_calls += 1
        return 10.0 * x[:, :2]


def make_legacy(run_dir, settings: dict) -> None:
    """Make a run look as calkit 0.2 wrote it: ``settings`` (defaults unset, ``resolved`` false)
    in config.yaml and in the ledger's record of the config it was created with."""
    import sqlite3

    import yaml

    (run_dir / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    conn = sqlite3.connect(run_dir / "ledger.sqlite")
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(settings),))
    conn.close()
