"""Steps every loader shares: the fixed holdout split, assembling a Dataset, checking ids and labels.

Test splits are deliberately fixed (seed :data:`SPLIT_SEED`, independent of the run seed): every
run on the same data is scored on the same test set, so curves from different seeds and
strategies are comparable.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from calkit.data.dataset import Dataset
from calkit.errors import DataError

#: Seed of every holdout split made here (fixed so the test set never depends on the run).
SPLIT_SEED = 0

# --------------------------------------------------------------------------- shared helpers


def _holdout(y: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (pool, test) row indices; stratified unless a class is too small for it."""
    rows = np.arange(len(y))
    try:
        pool, test = train_test_split(rows, test_size=fraction, random_state=SPLIT_SEED, stratify=y)
    except ValueError:
        try:
            pool, test = train_test_split(rows, test_size=fraction, random_state=SPLIT_SEED)
        except ValueError as exc:
            raise DataError(f"cannot hold out test_fraction={fraction} of {len(y)} rows: {exc}") from None
    return np.sort(pool), np.sort(test)


def _build(
    name: str,
    x: np.ndarray,
    y: np.ndarray | None,
    class_names: tuple[str, ...],
    ids: np.ndarray,
    test_fraction: float,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
) -> Dataset:
    """Hold out a test split when the data has none (and has labels), then validate."""
    if x_test is None and y is not None and test_fraction > 0:
        pool, test = _holdout(y, test_fraction)
        x_test, y_test = x[test], y[test]
        x, y, ids = x[pool], y[pool], ids[pool]
    return Dataset(name=name, x_train=x, y_train=y, class_names=class_names, ids=ids, x_test=x_test, y_test=y_test)


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


