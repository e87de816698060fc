"""Helpers shared by several test modules: reading a run's records and ledger, and running the
CLI in a child process (for kill -9 and concurrency tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from calkit.ledger import Ledger


def labeled_set(run_dir) -> list[tuple[int, int, int]]:
    """Every label fact of a run as (item, label, round), sorted."""
    ledger = Ledger.open(run_dir / "ledger.sqlite")
    try:
        return sorted((f["item_id"], f["label"], f["round"]) for f in ledger.label_facts())
    finally:
        ledger.close()


def metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


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
