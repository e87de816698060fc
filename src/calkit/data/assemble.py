"""Steps every loader shares: the fixed holdout splits, assembling a Dataset, checking ids and labels.

Test and validation splits are deliberately fixed (seeds :data:`SPLIT_SEED` and
:data:`VAL_SPLIT_SEED`, independent of the run seed): every run on the same data is tuned on the
same validation set and scored on the same test set, so curves from different seeds and
strategies are comparable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from calkit.data.dataset import Dataset
from calkit.errors import DataError

#: Seed of every test holdout made here (fixed so the test set never depends on the run).
SPLIT_SEED = 0
#: Seed of every validation split carved from a pool.
VAL_SPLIT_SEED = 1
#: Share of a labeled pool carved out as the validation split unless the data brings its own.
DEFAULT_VAL_FRACTION = 0.2

# --------------------------------------------------------------------------- shared helpers


def _holdout(y: np.ndarray, fraction: float, seed: int = SPLIT_SEED, what: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Sorted (kept, held-out) row indices; stratified unless a class is too small for it."""
    rows = np.arange(len(y))
    try:
        pool, test = train_test_split(rows, test_size=fraction, random_state=seed, stratify=y)
    except ValueError:
        try:
            pool, test = train_test_split(rows, test_size=fraction, random_state=seed)
        except ValueError as exc:
            raise DataError(f"cannot hold out {what}_fraction={fraction} of {len(y)} rows: {exc}") from None
    return np.sort(pool), np.sort(test)


def carve_validation(ds: Dataset, fraction: float) -> Dataset:
    """Move a fixed, stratified share of a labeled pool into the validation split.

    The items leave the pool, so acquisition can never select them and no policy trains on them.
    Data that brings its own validation split, an unlabeled pool and ``fraction == 0`` are left
    as they are.
    """
    if fraction <= 0 or ds.has_val or not ds.has_pool_labels:
        return ds
    assert ds.y_train is not None
    keep, val = _holdout(ds.y_train, fraction, VAL_SPLIT_SEED, "val")
    if len(keep) == 0:
        raise DataError(f"{ds.name}: val_fraction={fraction} leaves no pool")
    return dataclasses.replace(
        ds, x_train=ds.x_train[keep], y_train=ds.y_train[keep], ids=ds.ids[keep],
        texts=None if ds.texts is None else tuple(ds.texts[i] for i in keep),
        files=None if ds.files is None else tuple(ds.files[i] for i in keep),
        x_val=ds.x_train[val], y_val=ds.y_train[val],
    )


def split_off_test(y: np.ndarray, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (pool, test) row indices of data that has no test split of its own: every row and
    none when ``test_fraction <= 0``, else the fixed stratified holdout every loader shares."""
    if test_fraction <= 0:
        return np.arange(len(y)), np.arange(0)
    return _holdout(y, test_fraction)


def _build(
    name: str,
    x: np.ndarray,
    y: np.ndarray | None,
    class_names: tuple[str, ...],
    ids: np.ndarray,
    test_fraction: float,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    *,
    texts: Sequence[str] | None = None,
    files: Sequence[str] | None = None,
) -> Dataset:
    """The Dataset of a pool (with its ``texts``, if any) and the splits the data brings; a labeled
    pool without a test split gets one from :func:`split_off_test`."""
    if x_test is None and y is not None:
        pool, test = split_off_test(y, test_fraction)
        if len(test):
            x_test, y_test = x[test], y[test]
            x, y, ids = x[pool], y[pool], ids[pool]
            texts = None if texts is None else [texts[i] for i in pool]
            files = None if files is None else [files[i] for i in pool]
    return Dataset(name=name, x_train=x, y_train=y, class_names=class_names, ids=ids, x_test=x_test, y_test=y_test,
                   x_val=x_val, y_val=y_val, texts=None if texts is None else tuple(texts),
                   files=None if files is None else tuple(files))


def _check_finite_rows(where: str, key: str, x: np.ndarray) -> None:
    """Name the offending rows as they are numbered in the file (before any split)."""
    finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(
            f"{where}: {key} has NaN or infinite values (or values too large for float32) "
            f"in {bad.size} rows (first rows, 0-based: {bad[:5].tolist()})"
        )


def _check_ids(where: str, ids: np.ndarray, n_rows: int) -> np.ndarray:
    """Item ids as int64, after checking shape, type and uniqueness."""
    if ids.ndim != 1 or ids.shape[0] != n_rows:
        raise DataError(f"{where}: ids has shape {ids.shape}, expected ({n_rows},) to match X")
    if ids.dtype.kind not in "iu":
        raise DataError(f"{where}: ids must be integers, got {ids.dtype}")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{where}: ids are not unique (repeated: {uniq[counts > 1][:5].tolist()})")
    return ids.astype(np.int64)


def _encode_strings(where: str, labels: np.ndarray, class_names: tuple[str, ...]) -> np.ndarray:
    """Map string labels to indices into class_names; unknown labels are an error."""
    lookup = {name: i for i, name in enumerate(class_names)}
    uniq, inverse = np.unique(labels.astype(str), return_inverse=True)
    unknown = [u for u in uniq.tolist() if u not in lookup]
    if unknown:
        raise DataError(f"{where}: labels not among the class names {list(class_names)}: {unknown[:5]}")
    codes = np.array([lookup[u] for u in uniq.tolist()], dtype=np.int64)
    return codes[inverse.reshape(-1)]


