"""Round checkpoints, written so that a crash never leaves a half-written file behind.

Each file is written to a temporary name, flushed to disk, then renamed over the final name;
a reader sees either the previous complete state or the new one.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import torch

_NAME = re.compile(r"round-(\d{4,})\.pt")


def checkpoint_path(directory: Path, round_index: int) -> Path:
    return directory / f"round-{round_index:04d}.pt"


def save_checkpoint(directory: Path, round_index: int, payload: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return save_payload(checkpoint_path(directory, round_index), payload)


def save_payload(final: Path, payload: dict) -> Path:
    """``torch.save`` to ``final`` atomically and durably."""
    tmp = final.with_suffix(".pt.tmp")
    with open(tmp, "wb") as fh:
        torch.save(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return final


def latest_checkpoint(directory: Path) -> tuple[int, Path] | None:
    found = [(int(m.group(1)), p) for p in directory.glob("round-*.pt") if (m := _NAME.fullmatch(p.name))]
    return max(found) if found else None


def load_checkpoint(path: Path) -> dict:
    # Our own files, holding numpy arrays and RNG states as well as tensors.
    return torch.load(path, map_location="cpu", weights_only=False)


def prune_checkpoints(directory: Path, keep_round: int) -> None:
    """Delete every round checkpoint except ``keep_round``'s."""
    for p in directory.glob("round-*.pt"):
        m = _NAME.fullmatch(p.name)
        if m and int(m.group(1)) != keep_round:
            p.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # a writer's own
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
