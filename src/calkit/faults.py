"""Crash-test hook: ``CALKIT_FAULT_AT=train:2`` kills the process at that point with SIGKILL.

It lets the tests prove that resume survives a kill -9 at each step of a round; the points are
``query:T``, ``labels:T``, ``train:T`` (after each epoch) and ``checkpoint:T``.
"""

from __future__ import annotations

import os
import signal


def fault_point(name: str) -> None:
    if os.environ.get("CALKIT_FAULT_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
