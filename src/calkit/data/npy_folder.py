"""A folder of ``.npy`` files as a dataset whose pool stays on disk (memory-mapped, read in batches).

Layout (``x`` may be one file or shards named ``x-*.npy``, concatenated in name order with numbers
compared as numbers, so ``x-2`` comes before ``x-10``; the same holds for every feature and label
file)::

    pool/
      x.npy | x-00000.npy x-00001.npy ...   pool features, shape (n, ...), any real dtype
      y.npy                                 pool labels (class indices or strings); omit for people to label
      ids.npy                               item ids (default 0..n-1)
      classes.txt                           class names, one per line (needed without y)
      x_test.npy  y_test.npy                a test split (else one is cut from a labeled pool)
      x_val.npy   y_val.npy                 a validation split (else one is carved, see load_dataset)

Features are read as float32 *as stored*: no scaling. Labels and ids are small and read into memory.
Splits cut from the pool are lazy row selections, so nothing the size of the pool is copied.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from calkit.data.assemble import _build, _check_ids
from calkit.data.dataset import Dataset
from calkit.data.npz_files import _check_label_rows, _encode_labels
from calkit.data.rows import RowStore
from calkit.errors import DataError


def is_npy_folder(path: Path) -> bool:
    return path.is_dir() and bool(_files(path, "x"))


def load_npy_folder(path: Path, test_fraction: float) -> Dataset:
    where = str(path)
    x = RowStore(_files(path, "x"))
    _check_not_empty(where, "x", x)
    x.check_finite("pool features")
    names = _class_names(path)
    y = _small(path, "y")
    if y is None and names is None:
        raise DataError(f"{where}: no labels: add y.npy, or classes.txt (one class name per line) for an "
                        "unlabeled pool that people label")
    labels: dict[str, np.ndarray] = {}
    if y is not None:
        _check_label_rows(where, "x", x, "y", y)
        labels["y"] = y
    splits = {split: _split(path, split, x, labels) for split in ("test", "val")}
    encoded, names = _encode_labels(where, labels, names)
    raw_ids = _small(path, "ids")
    ids = np.arange(len(x), dtype=np.int64) if raw_ids is None else _check_ids(where, raw_ids, len(x))
    return _build(path.name, x, encoded.get("y"), names, ids, test_fraction,
                  splits["test"], encoded.get("y_test"), splits["val"], encoded.get("y_val"))


def _files(path: Path, stem: str) -> list[Path]:
    """``stem.npy``, or its shards ``stem-*.npy`` in name order; both at once is ambiguous."""
    single = path / f"{stem}.npy"
    shards = sorted(path.glob(f"{stem}-*.npy"), key=_natural)  # x-2 before x-10; a broken link fails on open
    if single.is_file() and shards:
        raise DataError(f"{path}: both {single.name} and shards {shards[0].name}... present; keep one")
    return [single] if single.is_file() else shards


def _natural(path: Path) -> list:
    """Name order with numbers compared as numbers: x-2.npy before x-10.npy, padded or not."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _small(path: Path, stem: str) -> np.ndarray | None:
    """A labels or ids array read into memory (its shards concatenated), or None when absent."""
    files = _files(path, stem)
    if not files:
        return None
    parts = []
    for f in files:
        try:
            parts.append(np.load(f, allow_pickle=False))
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{f}: not a readable .npy file (strings must be a unicode array): {exc}") from None
    if any(p.ndim != 1 for p in parts):
        raise DataError(f"{path}: {stem} must be 1-D, one entry per item")
    if len({"text" if p.dtype.kind in "US" else "number" for p in parts}) > 1:
        raise DataError(f"{path}: the {stem} shards mix strings and numbers; use one or the other")
    return np.concatenate(parts)


def _class_names(path: Path) -> tuple[str, ...] | None:
    file = path / "classes.txt"
    if not file.is_file():
        return None
    try:
        text = file.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{file}: not readable as UTF-8 text: {exc}") from None
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise DataError(f"{file}: no class names in it (one per line)")
    return names


def _split(path: Path, split: str, x: RowStore, labels: dict[str, np.ndarray]) -> RowStore | None:
    """``x_<split>`` as a store (its labels go into ``labels``), or None when the folder has none."""
    x_files, y = _files(path, f"x_{split}"), _small(path, f"y_{split}")
    if bool(x_files) != (y is not None):
        raise DataError(f"{path}: a {split} split needs both x_{split}.npy and y_{split}.npy")
    if not x_files:
        return None
    features = RowStore(x_files)
    _check_not_empty(str(path), f"x_{split}", features)
    features.check_finite(f"{split} features")
    if features.shape[1:] != x.shape[1:]:
        raise DataError(f"{path}: x_{split} items have shape {features.shape[1:]}, x items have {x.shape[1:]}")
    _check_label_rows(str(path), f"x_{split}", features, f"y_{split}", y)
    labels[f"y_{split}"] = y
    return features


def _check_not_empty(where: str, key: str, x: RowStore) -> None:
    if len(x) == 0:
        raise DataError(f"{where}: {key} has no rows")
    if int(np.prod(x.shape[1:])) == 0:
        raise DataError(f"{where}: {key} has no features per item (shape {x.shape})")
