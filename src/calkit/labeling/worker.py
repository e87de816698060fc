"""The worker: the one process that trains a run people label, so that the web process never does.

It polls the ledger; once a round's labels are complete (and nobody is taking an answer back
with undo) it calls :meth:`calkit.Run.advance`, which trains the round and opens the next query.
What it does goes to ``RUN/serve/worker.json`` (state, round, epoch, an estimate of the time
left, a heartbeat), which every screen shows, and to ``RUN/serve/worker.log``. The run's own
training lock makes a second worker harmless, and a killed worker is resumed by the next one
from the last checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

from calkit.progress import Progress

#: The worker's exit status when it was stopped before the run was complete.
STOPPED = 5
#: Seconds between looks at the ledger while there is nothing to train.
POLL_SECONDS = 1.0


def serve_dir(run_path: str | Path) -> Path:
    path = Path(run_path) / "serve"
    path.mkdir(exist_ok=True)
    return path


def read_worker_status(run_path: str | Path) -> dict:
    """What the worker last wrote, with ``seen_seconds_ago``; ``state: "absent"`` if it never ran."""
    path = Path(run_path) / "serve" / "worker.json"
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"state": "absent"}
    status["seen_seconds_ago"] = max(0.0, time.time() - float(status.get("updated", 0)))
    return status


def tail_log(run_path: str | Path, lines: int = 50) -> list[str]:
    path = Path(run_path) / "serve" / "worker.log"
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


class WorkerStatus(Progress):
    """Training progress as a small JSON file, rewritten atomically (at most a few times a second)."""

    def __init__(self, run_path: str | Path):
        self.dir = serve_dir(run_path)
        self.state: dict = {"state": "starting", "pid": os.getpid()}
        self._round_start = 0.0
        self._last_write = 0.0

    def write(self, force: bool = True, **changes: object) -> None:
        self.state.update(changes)
        now = time.time()
        if not force and now - self._last_write < 0.25:
            return
        self.state["updated"] = now
        tmp = self.dir / f"worker.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.dir / "worker.json")
        self._last_write = now

    def log(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n"
        with open(self.dir / "worker.log", "a") as out:
            out.write(line)

    # Progress hooks, called by the training loop
    def round_started(self, round_index: int, n_rounds: int, labeled: int) -> None:
        self._round_start = time.time()
        self.write(state="training", round=round_index, rounds=n_rounds, labeled=labeled, epoch=0, max_epochs=None,
                   seconds_left=None, started=self._round_start)
        self.log(f"round {round_index}: training on {labeled} labels")

    def epoch_done(self, round_index: int, epoch: int, max_epochs: int, running_accuracy: float) -> None:
        elapsed = time.time() - self._round_start
        left = elapsed / epoch * (max_epochs - epoch) if epoch else None
        self.write(force=epoch == max_epochs, epoch=epoch, max_epochs=max_epochs, seconds_left=left,
                   running_accuracy=running_accuracy)

    def round_done(self, record: dict) -> None:
        accuracy = record.get("val_accuracy") if record.get("test_accuracy") is None else record.get("test_accuracy")
        self.write(state="idle", model_round=record["round"], last_accuracy=accuracy, seconds_left=None,
                   last_round_seconds=time.time() - self._round_start)
        shown = "-" if accuracy is None else f"{accuracy:.4f}"
        self.log(f"round {record['round']}: trained in {time.time() - self._round_start:.1f} s "
                 f"({record['epochs']} epochs), accuracy {shown}")


def suggest(run, desk, status_file: WorkerStatus) -> None:
    """Store the newest model's guess for each item of the open round (shown to annotators who
    ask for it; off by default, since a shown guess pulls answers towards it)."""
    trained = run._ledger.trained_rounds()
    if not trained:
        return
    missing = desk.items_without_suggestion(max(trained))
    if missing:
        probabilities, model_round = run.predict(missing)
        desk.store_suggestions(missing, probabilities, model_round)


def review_asked(run) -> bool:
    from calkit.labeling.review_queue import requested

    return bool(run._ledger.trained_rounds()) and requested(run._ledger._conn) is not None


def review(run, status_file: WorkerStatus) -> None:
    """The label review the lead asked for, stored as their queue (trains a few small models)."""
    from calkit.labeling import review_queue

    status_file.write(state="reviewing", waiting_for=None)
    status_file.log("label review: training the cross-validation models")
    kept = review_queue.store(run, run.review_labels("crossval"), "crossval")
    status_file.log(f"label review: {kept} suspects stored for the lead")
    status_file.write(state="idle")


def work(run_path: str | Path, poll: float = POLL_SECONDS, once: bool = False, stop=None, dataset=None,
         threads: int | None = None) -> int:
    """Train the run whenever a round's labels are complete. Returns 0 once the run is complete
    (or after one look, ``once``), STOPPED on SIGTERM, SIGINT or ``stop`` (a threading.Event):
    a supervisor starts a worker again unless it ended with 0."""
    from calkit.labeling.desk import Desk
    from calkit.run import Run

    if threads:
        import torch

        torch.set_num_threads(threads)
    status_file = WorkerStatus(run_path)
    stopping = []
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    run = Run.open(run_path, progress=status_file, dataset=dataset)
    try:
        desk = Desk(run)
        status_file.log(f"worker {os.getpid()} started")
        status_file.write(state="idle", model_round=len(run.metrics()) - 1, waiting_for=None)
        suggest(run, desk, status_file)
        while not stopping and not (stop is not None and stop.is_set()):
            status = run.status()
            if status.complete:
                status_file.write(state="complete")
                status_file.log("the run is complete")
                return 0
            undoing = desk.live_undo_leases() if status.state == "ready" else 0
            if status.state == "ready" and not undoing:
                status_file.log(f"round {status.round}: labels complete")
                try:
                    run.advance()
                except Exception as exc:  # shown to everyone, then retried: a worker must not vanish silently
                    status_file.write(state="error", error=f"{type(exc).__name__}: {exc}")
                    status_file.log(f"training failed: {type(exc).__name__}: {exc}")
                    raise
                status_file.write(state="idle", waiting_for=None)
                suggest(run, desk, status_file)
            elif review_asked(run):
                review(run, status_file)
            else:  # labels missing, or someone is taking an answer back (an undo lease ends with its time)
                status_file.write(force=False, state="idle", waiting_for="an undo" if undoing else status.state)
            if once:
                return 0
            time.sleep(poll)
        status_file.log(f"worker {os.getpid()} stopped")
        status_file.write(state="stopped")
        return STOPPED
    except KeyboardInterrupt:
        status_file.write(state="stopped")
        return STOPPED
    finally:
        run.close()
