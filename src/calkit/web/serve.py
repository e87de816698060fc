"""`calkit serve`: the web application and, beside it, the worker process that trains.

The worker runs as a child process (``python -m calkit worker RUN``) and is started again if it
dies (a crash, kill -9): training resumes from the run's last checkpoint, and labeling goes on
meanwhile. Stopping the server (Ctrl-C) stops the worker.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from calkit.errors import CalkitError, ConfigError
from calkit.labeling.worker import serve_dir

DEFAULT_HOST = "127.0.0.1"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_PORT = 8765
#: A worker that keeps dying is started again at most this often.
RESTART_BACKOFF_S = (1, 2, 5, 10, 30)


def base_url(run_path: str | Path) -> str:
    """Where the run is (or was last) served, for sign-in links."""
    try:
        return (Path(run_path) / "serve" / "url").read_text().strip()
    except OSError:
        return f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


def signin_link(url: str, token: str) -> str:
    # After '#': browsers neither send it to the server nor put it in a Referer.
    return f"{url}/signin#token={token}"


def check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        if host != "localhost":
            raise ConfigError(f"--host must be an IP address (127.0.0.1, or 0.0.0.0 for every interface), got {host!r}"
                              ) from exc


def check_port_free(host: str, port: int) -> None:
    """Fail before anything is written when another program (another `serve`) has the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); is `calkit serve` already running "
                              "there? Choose another with --port") from exc


class WorkerSupervisor:
    """Keeps one worker process running until the run is complete or the server stops."""

    def __init__(self, run_path: Path, log=print):
        self.run_path = run_path
        self.log = log
        self.process: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="calkit-worker-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _spawn(self) -> subprocess.Popen:
        out = open(serve_dir(self.run_path) / "worker.out", "ab")
        try:
            # its own session: a Ctrl-C in the terminal reaches only `serve`, which then stops it
            return subprocess.Popen([sys.executable, "-m", "calkit", "worker", str(self.run_path)],
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            out.close()

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self.process = self._spawn()
            code = self.process.wait()
            if self._stop.is_set():
                return
            if code == 0:
                self.log("worker: the run is complete")
                return
            wait = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
            failures += 1
            self.log(f"worker exited with {code}; starting it again in {wait} s "
                     f"(its output: {serve_dir(self.run_path) / 'worker.out'})")
            self._stop.wait(wait)

    def stop(self) -> None:
        self._stop.set()
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def serve(run_path: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, worker: bool = True,
          lease_seconds: float | None = None, stop_below: float | None = None, overlap: float | None = None,
          log=print) -> int:
    """Serve a run's labeling application until interrupted; returns an exit status. ``overlap``
    changes the share of later rounds that two annotators label (kept in the run)."""
    import uvicorn
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    from calkit.labeling.accounts import Accounts
    from calkit.web.app import create_app

    check_host(host)
    if overlap is not None and not 0.0 <= overlap <= 1.0:
        raise CalkitError(f"--overlap is a share between 0 and 1, got {overlap}")
    check_port_free(host, port)
    kwargs = {k: v for k, v in (("lease_seconds", lease_seconds), ("stop_below", stop_below)) if v is not None}
    app = create_app(run_path, **kwargs)
    if overlap is not None:
        app.state.desk.set_overlap(overlap)
    if host in LOOPBACK:
        # Only this machine's names: a web page elsewhere cannot reach the application by
        # rebinding its own host name to 127.0.0.1 (DNS rebinding).
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"])
    run = app.state.run
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown_host}:{port}"
    accounts: Accounts = app.state.accounts
    (serve_dir(run.path) / "url").write_text(url + "\n")
    leads = [a for a in accounts.list() if a.is_lead and a.active]
    if not leads:
        token = accounts.add("lead", role="lead")
        log(f"lead's sign-in link (shown once): {signin_link(url, token)}")
    else:
        log(f"leads: {', '.join(a.name for a in leads)}; a new link: calkit annotators reset {run.path} NAME")
    if not any(a.active and not a.is_lead for a in accounts.list()):
        log(f"add annotators with: calkit annotators add {run.path} NAME")
    if host not in LOOPBACK:
        log(f"warning: serving on {host}, reachable from other machines, over plain HTTP")
    supervisor = WorkerSupervisor(run.path, log) if worker else None
    if supervisor:
        supervisor.start()
    log(f"serving {run.path} at {url} (Ctrl-C stops)")
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    # uvicorn shuts down on SIGTERM, then raises the signal again with the handler it found: let
    # that be one that unwinds (SystemExit), so the `finally` below stops the worker.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.Server(config).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if supervisor:
            supervisor.stop()
    return 0
