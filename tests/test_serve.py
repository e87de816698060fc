"""`calkit serve`, `calkit worker` and `calkit annotators` as commands: the worker's supervisor,
the port check, and the messages a user meets."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest

pytest.importorskip("fastapi")

from calkit import Run  # noqa: E402
from calkit.errors import ConfigError  # noqa: E402
from calkit.web.serve import WorkerSupervisor, check_port_free  # noqa: E402
from calkit.cli import main  # noqa: E402

QUICK = dict(oracle="people", initial=8, round_size=4, rounds=2, epochs=1, model="mlp:8")


def _worker_pid(run_path, other_than=None, timeout=60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = json.loads((run_path / "serve" / "worker.json").read_text())
            if state.get("pid") not in (None, other_than) and state.get("state") == "idle":
                return state["pid"]
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError("no worker came up")


def test_a_worker_that_is_stopped_or_killed_is_started_again(tmp_path):
    Run.create(tmp_path / "run", dataset="digits", **QUICK).close()
    lines = []
    supervisor = WorkerSupervisor(tmp_path / "run", log=lines.append)
    supervisor.start()
    try:
        first = _worker_pid(tmp_path / "run")
        os.kill(first, signal.SIGTERM)
        second = _worker_pid(tmp_path / "run", other_than=first)
        os.kill(second, signal.SIGKILL)
        _worker_pid(tmp_path / "run", other_than=second)
    finally:
        supervisor.stop()
    assert not any("complete" in line for line in lines), lines
    assert sum("starting it again" in line for line in lines) == 2


def test_a_taken_port_is_refused_before_anything_is_written(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConfigError, match="--port"):
            check_port_free("127.0.0.1", taken.getsockname()[1])


def test_the_commands_explain_what_to_do(tmp_path, capsys):
    def calkit(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    Run.create(tmp_path / "sim", dataset="digits", **{**QUICK, "oracle": "simulated"}).close()
    code, _, err = calkit("serve", str(tmp_path / "sim"), "--port", "1")
    assert code == 2 and "--oracle people" in err
    assert "--oracle people" in calkit("annotators", "add", str(tmp_path / "sim"), "ana")[2]
    Run.create(tmp_path / "run", dataset="digits", **QUICK).close()
    code, out, err = calkit("annotators", "add", str(tmp_path / "run"), "ana")
    assert code == 0 and "/signin#token=" in out and "Bearer" in err
    code, _, err = calkit("annotators", "add", str(tmp_path / "run"), "ana")
    assert code == 2 and "annotators reset" in err
    assert calkit("annotators", "revoke", str(tmp_path / "run"), "ana")[0] == 0
    assert "was revoked" in calkit("annotators", "add", str(tmp_path / "run"), "ana")[2]
    code, out, _ = calkit("annotators", "list", str(tmp_path / "run"))
    assert code == 0 and "ana\tannotator\trevoked" in out
    code, _, err = calkit("serve", str(tmp_path / "run"), "--host", "example.com")
    assert code == 2 and "IP address" in err


def test_sigterm_to_serve_stops_its_worker(tmp_path):
    import subprocess
    import sys

    Run.create(tmp_path / "run", dataset="digits", **QUICK).close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve = subprocess.Popen([sys.executable, "-m", "calkit", "serve", str(tmp_path / "run"), "--port", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        worker = _worker_pid(tmp_path / "run")
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(worker, signal.SIGKILL)
            raise AssertionError("the worker outlived serve")
    finally:
        if serve.poll() is None:
            serve.kill()
