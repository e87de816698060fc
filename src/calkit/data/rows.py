"""Feature rows that stay on disk: one or more ``.npy`` files read a batch at a time.

A pool of millions of items does not fit in memory, let alone on a GPU. A :class:`RowStore`
keeps only file names and a row index; a read maps the files, copies the rows it needs and
unmaps them again, so the process's resident memory holds the batch, not the pool (pages the
mapping touched leave the process with it; the kernel's page cache keeps them for the next
read). Reads of a few rows at a time at random (training steps) may keep their mappings instead
(``keep_mapped``): mapping costs more than reading a few rows, and only the rows read stay
resident, the labeled ones. Selecting rows (``store[rows]``, a slice) gives another store, lazily, which is how test
and validation splits and pool subsets are cut from data on disk without copying it.

Stored values may be any real dtype (``uint8`` images take a quarter of the space); reads
return float32 as is, with no scaling.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calkit.errors import DataError

#: Files modified this recently are checked again at every load (their times may not change on a rewrite).
RECENT_S = 3.0
#: Shards a store keeps mapped for random reads at most (each mapping holds a file descriptor).
KEPT_MAPPINGS = 32
#: Rows per read when a whole store is walked (checks, fingerprints): about 64 MB of float32 at 784 features.
CHUNK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class _Shard:
    path: Path
    rows: int
    item_shape: tuple[int, ...]
    dtype: np.dtype
    offset: int  #: where the data starts, after the .npy header

    @classmethod
    def open(cls, path: Path) -> "_Shard":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable .npy file: {exc}") from None
        try:
            if not isinstance(arr, np.ndarray) or arr.ndim < 2:
                raise DataError(f"{path}: features must have shape (n, ...) with at least 2 dimensions, "
                                f"got {getattr(arr, 'shape', type(arr))}")
            if arr.dtype.kind not in "biuf":
                raise DataError(f"{path}: features must be numeric, got dtype {arr.dtype}")
            if not arr.flags.c_contiguous:
                raise DataError(f"{path}: stored in Fortran order; save it with numpy.save of a C-ordered array")
            return cls(path, int(arr.shape[0]), tuple(int(s) for s in arr.shape[1:]), arr.dtype, int(arr.offset))
        finally:
            del arr  # unmaps

    def map(self) -> tuple[mmap.mmap, np.ndarray]:
        """The file mapped, and the array over it (drop the array before closing the map)."""
        with open(self.path, "rb") as fh:
            mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        count = self.rows * int(np.prod(self.item_shape))
        return mapping, np.frombuffer(mapping, self.dtype, count, self.offset).reshape(self.rows, *self.item_shape)


class RowStore:
    """Rows of ``.npy`` files (shards, concatenated in the given order), read on demand as float32."""

    def __init__(self, paths: Sequence[str | os.PathLike], rows: np.ndarray | None = None):
        if not paths:
            raise DataError("a row store needs at least one .npy file")
        self._shards = tuple(_Shard.open(Path(p)) for p in paths)
        self._init(rows)

    def _init(self, rows: np.ndarray | None) -> None:
        first = self._shards[0]
        for shard in self._shards[1:]:
            if shard.item_shape != first.item_shape:
                raise DataError(f"{shard.path}: items have shape {shard.item_shape}, but {first.path}'s have "
                                f"{first.item_shape}; every shard must hold items of one shape")
            if shard.dtype != first.dtype:
                raise DataError(f"{shard.path}: dtype {shard.dtype}, but {first.path}'s is {first.dtype}; every "
                                "shard must have one dtype")
        self._starts = np.cumsum([0] + [s.rows for s in self._shards])
        self._rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self._kept: dict[int, tuple[mmap.mmap, np.ndarray]] = {}  #: mappings kept by keep_mapped reads
        self.finite_checked = False  #: set by a loader that checked every row of the files for NaN

    # -- what it looks like ---------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        n = int(self._starts[-1]) if self._rows is None else len(self._rows)
        return (n, *self._shards[0].item_shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def stored_dtype(self) -> np.dtype:
        return self._shards[0].dtype

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(s.path for s in self._shards)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * 4

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        files = self._shards[0].path.name + (f" and {len(self._shards) - 1} more" if len(self._shards) > 1 else "")
        return f"RowStore({files}, shape={self.shape})"

    # -- selecting and reading ------------------------------------------------------------
    def __getitem__(self, key):
        """An int gives that row (an array); a slice or an index array gives a lazy store of those rows."""
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            n = len(self)
            if not -n <= key < n:
                raise IndexError(f"row {key} out of range for {n} rows")
            return self.read(np.array([key % n]))[0]
        if isinstance(key, tuple):
            raise IndexError("a row store selects rows only: one index, not a tuple")
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        index = np.asarray(key)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise IndexError(f"a boolean mask must have one entry per row ({len(self)}), got shape {index.shape}")
            index = np.flatnonzero(index)
        if index.ndim != 1:
            raise IndexError("rows are selected with an int, a slice, a 1-D integer array or a boolean mask")
        return self.take(index)

    def take(self, positions: np.ndarray) -> "RowStore":
        """A store of these rows (positions in this store), in this order, without reading them."""
        positions = self._check_positions(positions)
        out = object.__new__(RowStore)
        out._shards = self._shards
        out._init(positions if self._rows is None else self._rows[positions])
        out.finite_checked = self.finite_checked
        return out

    def check_finite(self, what: str = "features") -> None:
        """Raise DataError naming the first shard and rows with NaN or infinity (file rows).

        A file found finite is remembered by path, size and modification time in the cache
        (``finite-files.json``), so later loads (`calkit status`, every rank of a job) skip the
        pass over it; rewriting the file makes it checked again.
        """
        known = _finite_files()
        for shard in self._shards:
            if shard.dtype.kind != "f" or _file_key(shard.path) in known:
                continue  # integers are finite; a file checked before, unchanged since
            single = RowStore([shard.path])
            offset = 0
            for chunk in single.chunks():
                finite = np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
                if not finite.all():
                    bad = np.flatnonzero(~finite) + offset
                    raise DataError(f"{shard.path}: {what} have NaN or infinite values in rows {bad[:5].tolist()} "
                                    "(0-based, in this file) and maybe more")
                offset += len(chunk)
            _remember_finite(shard.path)
        self.finite_checked = True

    def read(self, positions: np.ndarray, keep_mapped: bool = False) -> np.ndarray:
        """The rows at these positions, in this order, as a float32 array in memory.

        ``keep_mapped``: keep the files mapped for the next read (small random reads, such as
        training steps); by default each read unmaps what it mapped, for passes over the pool.
        """
        rows = self._global(self._check_positions(positions))
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.float32)
        shard_of = np.searchsorted(self._starts, rows, side="right") - 1
        for s in np.unique(shard_of):
            where = np.flatnonzero(shard_of == s)
            local = rows[where] - self._starts[s]
            if keep_mapped:
                out[where] = _gather(self._kept_map(int(s)), local)
                continue
            mapping, array = self._shards[s].map()
            try:
                out[where] = _gather(array, local)
            finally:
                del array
                mapping.close()  # unmap: the pages leave this process's resident set
        return out

    def _kept_map(self, s: int) -> np.ndarray:
        """Shard ``s`` mapped for random reads, kept for the next (the least recently used of more
        than :data:`KEPT_MAPPINGS` is closed: each holds a file descriptor)."""
        if s in self._kept:
            self._kept[s] = self._kept.pop(s)  # most recently used last
        else:
            if len(self._kept) >= KEPT_MAPPINGS:
                oldest = next(iter(self._kept))
                mapping, array = self._kept.pop(oldest)
                del array
                mapping.close()
            mapping, array = self._shards[s].map()
            if hasattr(mmap, "MADV_RANDOM"):
                mapping.madvise(mmap.MADV_RANDOM)  # no read-around: only the rows read become resident
            self._kept[s] = (mapping, array)
        return self._kept[s][1]

    def chunks(self, rows_per_chunk: int | None = None) -> Iterator[np.ndarray]:
        """Every row, in order, a chunk at a time (float32, in memory)."""
        step = rows_per_chunk or chunk_rows(self.shape)
        if step < 1:
            raise ValueError(f"rows per chunk must be positive, got {step}")
        for start in range(0, len(self), step):
            yield self.read(np.arange(start, min(start + step, len(self))))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """All rows in memory: for small stores only (np.asarray, torch.as_tensor)."""
        data = self.read(np.arange(len(self)))
        return data if dtype is None else data.astype(dtype)

    # -- pickling: a DataLoader worker gets file names, not data ------------------------------
    def __getstate__(self) -> dict:
        return {"shards": self._shards, "rows": self._rows, "checked": self.finite_checked}  # not the kept mappings

    def __setstate__(self, state: dict) -> None:
        self._shards = state["shards"]
        self._init(state["rows"])
        self.finite_checked = state["checked"]

    def _global(self, positions: np.ndarray) -> np.ndarray:
        return positions if self._rows is None else self._rows[positions]

    def _check_positions(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions)
        if positions.ndim != 1 or (positions.size and positions.dtype.kind not in "iu"):
            raise IndexError("rows are selected with a 1-D integer array")
        positions = positions.astype(np.int64, copy=False)
        n = len(self)
        if positions.size and (positions.min() < -n or positions.max() >= n):
            raise IndexError(f"row positions out of range for {n} rows")
        return np.where(positions < 0, positions + n, positions)


def _file_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _finite_files() -> set[str]:
    from calkit.data.cache import cache_path

    try:
        return set(json.loads(cache_path("finite-files.json").read_text()))
    except (OSError, ValueError, TypeError):
        return set()


def _remember_finite(path: Path) -> None:
    """Add a checked file to the cache (best effort: a race between writers only loses entries).

    A file modified in the last few seconds is not remembered: file times are coarse, and a file
    rewritten within the same tick would keep its key (git's "racily clean" problem).
    """
    from calkit.data.cache import atomic_path, cache_dir

    try:
        if time.time() - path.stat().st_mtime < RECENT_S:
            return
        dest = cache_dir() / "finite-files.json"
        known = sorted(_finite_files() | {_file_key(path)})[-100_000:]
        with atomic_path(dest) as tmp:
            tmp.write_text(json.dumps(known))
    except OSError:
        pass


def _gather(mapped: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Rows of a mapped shard; a run of consecutive rows is one sequential read."""
    if len(local) and local[-1] - local[0] == len(local) - 1 and np.all(np.diff(local) == 1):
        return mapped[local[0] : local[-1] + 1]
    return mapped[local]


def chunk_rows(shape: tuple[int, ...]) -> int:
    """Rows of float32 items of this shape that fit in :data:`CHUNK_BYTES`."""
    per_row = 4 * int(np.prod(shape[1:]))
    return max(1, CHUNK_BYTES // max(per_row, 1))


def row_chunks(x: "np.ndarray | RowStore") -> Iterator[np.ndarray]:
    """An array's or a store's rows in order, a bounded chunk at a time."""
    if isinstance(x, RowStore):
        yield from x.chunks()
        return
    step = chunk_rows(x.shape)
    for start in range(0, x.shape[0], step):
        yield x[start : start + step]


#: Rows of a store on disk that its fingerprint reads (evenly spaced), instead of every row.
FINGERPRINT_ROWS = 65_536


def hash_rows(h: "hashlib._Hash", x: "np.ndarray | RowStore") -> None:
    """Feed the rows' bytes into ``h`` chunk by chunk: the same digest as hashing them at once.

    A store on disk larger than :data:`FINGERPRINT_ROWS` rows feeds its files' sizes and dtype
    and that many evenly spaced rows: every command that opens its run checks the fingerprint,
    and a pass over terabytes each time would cost hours. A change to other rows goes unseen.
    """
    if isinstance(x, RowStore) and len(x) > FINGERPRINT_ROWS:
        h.update(f"{x.stored_dtype}|{[p.stat().st_size for p in x.paths]}".encode())
        rows = np.linspace(0, len(x) - 1, FINGERPRINT_ROWS).round().astype(np.int64)
        for start in range(0, len(rows), 4096):
            h.update(x.read(rows[start : start + 4096]).tobytes())
        return
    for chunk in row_chunks(x):
        h.update(np.ascontiguousarray(chunk).tobytes())
