"""The in-memory dataset type every other part of calkit reads from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calkit.data.rows import RowStore, hash_rows, row_chunks
from calkit.errors import DataError

#: Pool features: in memory, or rows on disk read a batch at a time (calkit.data.rows).
Features = np.ndarray | RowStore


@dataclass(frozen=True)
class Dataset:
    """A labeled (or partly unlabeled) pool plus optional validation and test splits.

    ``ids`` are stable global item ids for the pool: they name an item in the ledger, in
    query files and in reports, and never change when items are labeled. Positions in the
    arrays are fixed too, but only ids leave this object.

    ``y_train`` is ``None`` when the pool's labels are unknown (people are the oracle).
    Features are float32 with shape ``(n, d)`` for vectors or ``(n, C, H, W)`` for images, in
    memory or, for pools larger than memory, a :class:`~calkit.data.rows.RowStore` of ``.npy``
    files that is read a batch at a time (``is_on_disk``).

    The validation split is for choosing settings (tuning, defaults); the test split is for the
    numbers a run reports. Neither is ever selectable by acquisition: both live outside the pool.
    """

    name: str
    x_train: Features
    y_train: np.ndarray | None
    class_names: tuple[str, ...]
    ids: np.ndarray
    x_test: Features | None = None
    y_test: np.ndarray | None = None
    texts: tuple[str, ...] | None = field(default=None, repr=False)
    files: tuple[str, ...] | None = field(default=None, repr=False)  #: an image file per pool item, for display
    x_val: Features | None = None
    y_val: np.ndarray | None = None

    def __post_init__(self) -> None:
        validate_dataset(self)

    @property
    def pool_size(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def is_on_disk(self) -> bool:
        """True when the pool's features are read from disk a batch at a time."""
        return isinstance(self.x_train, RowStore)

    @property
    def has_pool_labels(self) -> bool:
        return self.y_train is not None

    @property
    def has_test(self) -> bool:
        return self.x_test is not None and self.y_test is not None

    @property
    def has_val(self) -> bool:
        return self.x_val is not None and self.y_val is not None

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Array positions of the given global ids (raises on unknown ids)."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self._sorted_ids, ids)
        pos = np.clip(pos, 0, len(self._sorted_ids) - 1)
        bad = self._sorted_ids[pos] != ids
        if bad.any():
            raise DataError(f"unknown item ids: {ids[bad][:10].tolist()}")
        return self._sort_order[pos]

    @property
    def _sorted_ids(self) -> np.ndarray:
        return self._index()[0]

    @property
    def _sort_order(self) -> np.ndarray:
        return self._index()[1]

    def _index(self) -> tuple[np.ndarray, np.ndarray]:
        cached = self.__dict__.get("_id_index")
        if cached is None:
            order = np.argsort(self.ids, kind="stable")
            cached = (self.ids[order], order)
            object.__setattr__(self, "_id_index", cached)
        return cached

    def display(self, item_id: int) -> str | Path | np.ndarray:
        """What a person is shown for one pool item: its text, its image file, else its features
        (an image is ``(C, H, W)``, a table row a vector)."""
        pos = int(self.positions(np.array([item_id]))[0])
        if self.texts is not None:
            return self.texts[pos]
        return Path(self.files[pos]) if self.files is not None else self.x_train[pos]

    def fingerprint(self) -> str:
        """A short hash of the data, stored in a run so `resume` refuses other data (computed once:
        a pool on disk is read whole for it)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is not None:
            return cached
        h = hashlib.sha256()
        splits = (self.x_train, self.y_train, self.ids, self.x_test, self.y_test)
        for arr in splits + ((self.x_val, self.y_val) if self.has_val else ()):
            if arr is None:
                h.update(b"none")
            else:
                h.update(str(arr.shape).encode())
                hash_rows(h, arr)  # a chunk at a time: same digest, bounded memory
        h.update("\x1f".join(self.class_names).encode())
        object.__setattr__(self, "_fingerprint", h.hexdigest()[:16])
        return self.__dict__["_fingerprint"]


def validate_dataset(ds: Dataset) -> None:
    """Raise :class:`DataError` naming the first inconsistency found."""
    x, y = ds.x_train, ds.y_train
    if not isinstance(x, (np.ndarray, RowStore)) or x.ndim < 2:
        raise DataError(f"{ds.name}: features must be an array of shape (n, ...), got {getattr(x, 'shape', type(x))}")
    if x.shape[0] == 0:
        raise DataError(f"{ds.name}: the pool is empty")
    if x.dtype != np.float32:
        raise DataError(f"{ds.name}: features must be float32, got {x.dtype}")
    if len(ds.class_names) < 2:
        raise DataError(f"{ds.name}: need at least 2 classes, got {len(ds.class_names)}")
    if len(set(ds.class_names)) != len(ds.class_names):
        raise DataError(f"{ds.name}: class names are not unique: {list(ds.class_names)}")
    _check_finite(ds.name, "pool", x)
    ids = ds.ids
    if ids.ndim != 1 or ids.shape[0] != x.shape[0]:
        raise DataError(f"{ds.name}: {ids.shape[0]} ids for {x.shape[0]} pool items")
    if ids.dtype != np.int64:
        raise DataError(f"{ds.name}: ids must be int64, got {ids.dtype}")
    if len(np.unique(ids)) != len(ids):
        raise DataError(f"{ds.name}: item ids are not unique")
    if y is not None:
        _check_labels(ds.name, "pool", x, y, len(ds.class_names))
    for split, xs, ys in (("test", ds.x_test, ds.y_test), ("validation", ds.x_val, ds.y_val)):
        _check_split(ds, split, xs, ys)
    if ds.texts is not None and len(ds.texts) != x.shape[0]:
        raise DataError(f"{ds.name}: {len(ds.texts)} texts for {x.shape[0]} pool items")
    if ds.files is not None and len(ds.files) != x.shape[0]:
        raise DataError(f"{ds.name}: {len(ds.files)} files for {x.shape[0]} pool items")


def _check_split(ds: Dataset, split: str, x: Features | None, y: np.ndarray | None) -> None:
    if (x is None) != (y is None):
        raise DataError(f"{ds.name}: a {split} split needs both features and labels")
    if x is None:
        return
    if x.shape[1:] != ds.x_train.shape[1:]:
        raise DataError(f"{ds.name}: {split} features have shape {x.shape[1:]} per item, pool has {ds.x_train.shape[1:]}")
    if x.dtype != np.float32:
        raise DataError(f"{ds.name}: {split} features must be float32, got {x.dtype}")
    _check_finite(ds.name, split, x)
    _check_labels(ds.name, split, x, y, len(ds.class_names))


def _check_finite(name: str, split: str, x: Features) -> None:
    """Every row finite; read a chunk at a time, so a pool on disk is never held in memory."""
    if isinstance(x, RowStore) and (x.stored_dtype.kind != "f" or x.finite_checked):
        return  # integers are finite; the loader checked the files, and named file rows
    bad_parts, offset = [], 0
    for chunk in row_chunks(x):
        finite = np.isfinite(chunk.reshape(chunk.shape[0], -1)).all(axis=1)
        bad_parts.append(np.flatnonzero(~finite) + offset)
        offset += chunk.shape[0]
    bad = np.concatenate(bad_parts) if bad_parts else np.zeros(0, dtype=np.int64)
    if bad.size:
        raise DataError(
            f"{name}: {bad.size} {split} rows have NaN or infinite features (first rows: {bad[:5].tolist()})"
        )


def _check_labels(name: str, split: str, x: np.ndarray, y: np.ndarray, n_classes: int) -> None:
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DataError(f"{name}: {split} has {x.shape[0]} rows but {y.reshape(-1).shape[0]} labels")
    if y.dtype != np.int64:
        raise DataError(f"{name}: {split} labels must be int64 class indices, got {y.dtype}")
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        raise DataError(
            f"{name}: {int(bad.sum())} {split} labels are outside 0..{n_classes - 1} "
            f"(first: {y[bad][:5].tolist()})"
        )
