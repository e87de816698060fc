"""The files of a run directory, and the only code that writes them (besides the ledger's own).

Checkpoints and metrics.jsonl are replaced atomically (temporary file, fsync, rename), so a crash
leaves the previous complete state or the new one, never half of a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from calkit.checkpoint import (
    atomic_write_text,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    save_payload,
)
from calkit.errors import ConfigError, LedgerError
from calkit.ledger import Ledger


class RunDirectory:
    """A run's folder: names of its files, and reading and writing the non-ledger ones."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.ledger = self.path / "ledger.sqlite"
        self.metrics = self.path / "metrics.jsonl"
        self.checkpoints = self.path / "checkpoints"
        self.queries = self.path / "queries"
        self.start = self.path / "start.pt"  #: a trained initial round taken over from another run

    def exists(self) -> bool:
        return self.ledger.exists()

    def claim(self) -> None:
        """Make the folder this process's to create a run in: the first to claim it wins."""
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(self.path / ".created", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            raise LedgerError(f"{self.path}: another process is creating a run here (or a creation was "
                              "interrupted: remove the folder and start again)") from None

    # -- checkpoints ------------------------------------------------------------------------
    def save_round(self, t: int, payload: dict) -> None:
        save_checkpoint(self.checkpoints, t, payload)

    def prune(self, t: int) -> None:
        """Delete every round checkpoint but round ``t``'s (``--keep-checkpoints last``)."""
        prune_checkpoints(self.checkpoints, t)

    def round_payload(self, t: int) -> dict:
        return load_checkpoint(checkpoint_path(self.checkpoints, t))

    def latest_round(self) -> tuple[int, dict] | None:
        """The newest checkpointed round and its payload, if any."""
        found = latest_checkpoint(self.checkpoints)
        return None if found is None else (found[0], load_checkpoint(found[1]))

    # -- metrics ----------------------------------------------------------------------------
    def publish_metrics(self, records: list[dict]) -> None:
        """Rewrite metrics.jsonl whole from the ledger's records, so a crash never duplicates a line."""
        atomic_write_text(self.metrics, "".join(json.dumps(r) + "\n" for r in records))

    # -- a start taken over from another run ----------------------------------------------------
    def write_start(self, start: dict) -> None:
        save_payload(self.start, start)

    def read_start(self) -> dict | None:
        return load_checkpoint(self.start) if self.start.exists() else None


def read_start_of(path: Path, key: dict) -> dict:
    """The trained initial round of the run at ``path``, if it was made as ``key`` says
    (calkit.loop.start_key): same data, seed, model, optimizer and initial rule."""
    run = RunDirectory(path)
    source = checkpoint_path(run.checkpoints, 0)
    if not source.exists():
        raise LedgerError(f"cannot start from {path}: it has no trained initial round ({source} is missing)")
    payload = load_checkpoint(source)
    theirs = payload.get("start_key") or {}
    differ = sorted(k for k in key if theirs.get(k) != key[k])
    if differ:
        shown = "; ".join(f"{k}: {theirs.get(k)!r} there, {key[k]!r} here" for k in differ)
        raise ConfigError(f"cannot start from {path}: its initial round was made differently ({shown})")
    with Ledger.open(run.ledger) as ledger:
        query = ledger.query(0)
    assert query is not None
    return {name: payload[name] for name in ("model", "optimizer", "meter", "metrics")} | {
        "query_ids": np.asarray(query.ids), "source": str(path.resolve()), "start_key": key,
    }
