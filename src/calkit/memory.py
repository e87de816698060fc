"""Keeping a long pass over a large pool from growing the process: large blocks off the heap.

glibc's malloc serves a block from the heap unless it is at least its mmap threshold, and it
raises that threshold (up to 32 MB) each time a mapped block is freed. After the first scoring
batch, batches and activations therefore come from the heap; the small blocks that outlive a
batch sit between them, the heap cannot shrink below them, and a pass over a large pool leaves
the process gigabytes larger, more or less at random (measured in BENCHMARKS.md: a peak of 1.7 GB
instead of 0.75 GB for a 1,000,000 x 784 pool). A fixed threshold (which also turns the
raising off) maps every large block and gives it back when freed, at the price of fresh pages for
each: a few per cent of scoring time.
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  #: mallopt's parameter number, from glibc's malloc.h
LARGE_BLOCK = 4 * 2**20

_done = False


def map_large_blocks(threshold: int = LARGE_BLOCK) -> bool:
    """Have malloc map blocks of ``threshold`` bytes or more (for the whole process, once).

    Returns whether it took effect: False where the C library is not glibc.
    """
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, the C library's among them (no lookup process)
        _done = bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False
    return _done
