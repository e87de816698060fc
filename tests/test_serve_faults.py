"""kill -9 of the server, and of the worker, while annotators label: every acknowledged label is
in the ledger, none twice, no item leased to two at once, and the run completes. This runs the
load benchmark itself (benchmarks/serve_load.py), small."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_killing_the_server_or_the_worker_loses_no_acknowledged_label(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "serve_load.py"), "--faults", "server,worker", "--annotators", "4",
         "--dataset", "digits", "--pool-size", "600", "--initial", "40", "--round-size", "30", "--rounds", "4",
         "--think", "0.02", "0.05", "--max-seconds", "150", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["fault"] for r in rows] == ["server", "worker"]
    for r in rows:
        assert r["complete"] and r["lost"] == 0 and r["duplicates"] == 0 and r["double_leases"] == 0
        assert r["overlap_items"] == 3 * 3  # 10 % of each later round goes to two annotators
        assert r["labels"] == 40 + 3 * 30 + r["overlap_items"]
    assert "killed the server" in done.stderr and "killed the worker" in done.stderr
