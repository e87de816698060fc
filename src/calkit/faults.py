"""Crash-test hook: ``CALKIT_FAULT_AT=train:2`` kills the process at that point with SIGKILL.

It lets the tests prove that resume survives a kill -9 at each step of a round; the points are
``query:T``, ``labels:T``, ``train:T`` (after each epoch) and ``checkpoint:T``. On several
processes (torchrun) ``CALKIT_FAULT_RANK=R`` kills only rank R there; ``labels:T`` and
``checkpoint:T`` are reached by rank 0 only (it alone writes), so they fire for R = 0 only.
"""

from __future__ import annotations

import os
import signal


def fault_point(name: str) -> None:
    if os.environ.get("CALKIT_FAULT_AT") != name:
        return
    rank = os.environ.get("CALKIT_FAULT_RANK")
    if rank is None or rank == os.environ.get("RANK", "0"):
        os.kill(os.getpid(), signal.SIGKILL)
