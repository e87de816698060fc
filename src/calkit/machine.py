"""One line naming the machine a measurement ran on, for every benchmark table."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

import numpy as np
import torch


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def machine_info() -> str:
    """Date, processor, cores, library versions and torch threads."""
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (
        f"{dt.date.today().isoformat()}, {cpu_model()}, {nproc} cores{gpu}, PyTorch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}, numpy {np.__version__}"
    )
