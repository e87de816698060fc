"""What a person watching a run sees: a per-round table on stdout, live epoch progress on stderr."""

from __future__ import annotations

import sys
from typing import TextIO

COLUMNS = (
    ("round", "{:>5}", 5),
    ("labeled", "{:>7}", 7),
    ("val_accuracy", "{:>8.4f}", 8),
    ("test_accuracy", "{:>8.4f}", 8),
    ("test_macro_f1", "{:>8.4f}", 8),
    ("epochs", "{:>6}", 6),
    ("train_seconds", "{:>8.2f}", 8),
    ("select_seconds", "{:>8.2f}", 8),
    ("sample_gradients", "{:>12,}", 12),
)
HEADERS = ("round", "labeled", "val_acc", "test_acc", "macro_f1", "epochs", "train_s", "select_s", "sample_grads")


#: Shown after val_acc for runs with a validation set that people label (calkit holdout).
HOLDOUT_COLUMN = ("holdout_accuracy", "{:>8.4f}", 8)


def _columns(holdout: bool) -> tuple:
    return COLUMNS[:3] + (HOLDOUT_COLUMN,) + COLUMNS[3:] if holdout else COLUMNS


def format_header(holdout: bool = False) -> str:
    headers = HEADERS[:3] + ("held_acc",) + HEADERS[3:] if holdout else HEADERS
    return "  ".join(h.rjust(w) for h, (_, _, w) in zip(headers, _columns(holdout)))


def format_row(record: dict, holdout: bool = False) -> str:
    cells = []
    for key, fmt, width in _columns(holdout):
        value = record.get(key)
        cells.append("-".rjust(width) if value is None else fmt.format(value))
    return "  ".join(cells)


class Progress:
    """Silent by default; subclasses show what they like. The loop calls these hooks."""

    def round_started(self, round_index: int, n_rounds: int, labeled: int) -> None: ...

    def epoch_done(self, round_index: int, epoch: int, max_epochs: int, running_accuracy: float) -> None: ...

    def round_done(self, record: dict) -> None: ...


class ConsoleProgress(Progress):
    """Prints the round table; shows a live epoch line only when stderr is a terminal."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._live = hasattr(self.err, "isatty") and self.err.isatty()
        self._header_printed = False
        self._n_rounds = 0

    def round_started(self, round_index: int, n_rounds: int, labeled: int) -> None:
        self._n_rounds = n_rounds
        if not self._header_printed:
            print(format_header(), file=self.out, flush=True)
            self._header_printed = True

    def epoch_done(self, round_index: int, epoch: int, max_epochs: int, running_accuracy: float) -> None:
        if self._live:
            line = f"round {round_index + 1}/{self._n_rounds}  epoch {epoch}/{max_epochs}  train acc {running_accuracy:.3f}"
            print("\r" + line.ljust(60), end="", file=self.err, flush=True)

    def round_done(self, record: dict) -> None:
        if self._live:
            print("\r" + " " * 60 + "\r", end="", file=self.err, flush=True)
        print(format_row(record), file=self.out, flush=True)
