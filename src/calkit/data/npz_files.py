"""User ``.npz`` files: features and integer or string labels, optional ids, class names and test split."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from calkit.data.assemble import _build, _check_finite_rows, _check_ids, _encode_strings
from calkit.data.dataset import Dataset
from calkit.errors import DataError

# --------------------------------------------------------------------------- npz


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an .npz archive, without ever unpickling (untrusted files are safe)."""
    try:
        # Own the file handle: np.load leaks it when the zip directory is corrupt.
        with open(path, "rb") as fh:
            archive = np.load(fh, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DataError(f"{path}: not an .npz archive (write it with numpy.savez)")
            with archive:
                return {key: archive[key] for key in archive.files}
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(
                f"{path}: holds Python objects (e.g. an object array of strings) or is not an .npz archive; "
                "save strings as a unicode array, e.g. np.array(labels, dtype=str)"
            ) from None
        raise DataError(f"{path}: not a valid .npz archive: {exc}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a valid .npz archive: {exc}") from None


def _pick(where: str, arrays: dict[str, np.ndarray], keys: tuple[str, ...]) -> np.ndarray | None:
    """The array stored under one of ``keys`` (alternative spellings); both is ambiguous."""
    present = [k for k in keys if k in arrays]
    if len(present) > 1:
        raise DataError(f"{where}: both {present[0]!r} and {present[1]!r} present; keep one")
    return arrays[present[0]] if present else None


def _npz_features(where: str, key: str, x: np.ndarray) -> np.ndarray:
    """Numeric features with shape (n, ...) as float32, checked for NaN/inf."""
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: {key} must be numeric, got dtype {x.dtype}")
    if x.ndim < 2:
        raise DataError(
            f"{where}: {key} must have shape (n_items, n_features...) with at least 2 dimensions, "
            f"got shape {x.shape} (for one feature per item reshape to (n, 1))"
        )
    if x.shape[0] == 0:
        raise DataError(f"{where}: {key} has no rows")
    if int(np.prod(x.shape[1:])) == 0:
        raise DataError(f"{where}: {key} has no features per item (shape {x.shape})")
    x32 = x.astype(np.float32)
    _check_finite_rows(where, key, x32)
    return x32


def _npz_class_names(where: str, names: np.ndarray | None) -> tuple[str, ...] | None:
    """class_names as a tuple of str, or None when absent."""
    if names is None:
        return None
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(f"{where}: class_names must be a 1-D array of strings, got {names.dtype} {names.shape}")
    return tuple(str(n) for n in names.astype(str).tolist())


def _integer_labels(where: str, key: str, y: np.ndarray) -> np.ndarray:
    """Numeric labels as int64; floats must be whole numbers, nothing may be negative."""
    if y.dtype.kind == "f":
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            raise DataError(
                f"{where}: {key} holds non-integer labels (first: {y[~whole][:5].tolist()}); "
                "labels must be class indices or strings"
            )
    elif y.dtype.kind not in "biu":
        raise DataError(f"{where}: {key} must hold integer class indices or strings, got dtype {y.dtype}")
    out = y.astype(np.int64)
    if (out < 0).any():
        raise DataError(f"{where}: {key} has negative labels (first: {out[out < 0][:5].tolist()})")
    return out


def _encode_labels(
    where: str, labels: dict[str, np.ndarray], class_names: tuple[str, ...] | None
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Class indices for every present label array, plus the class names.

    String labels: names are ``class_names`` if given, else the sorted distinct strings
    (every split together, so all splits share one encoding). Integer labels: names
    are ``class_names`` if given (indices must be in range), else "0".."max".
    """
    stringy = {k: v.dtype.kind in "US" for k, v in labels.items()}
    if len(set(stringy.values())) > 1:
        raise DataError(f"{where}: {', '.join(labels)} must all be strings or all be integers")
    if any(stringy.values()):
        if class_names is None:
            class_names = tuple(sorted(set().union(*(np.unique(v.astype(str)).tolist() for v in labels.values()))))
        return {k: _encode_strings(f"{where}: {k}", v, class_names) for k, v in labels.items()}, class_names
    encoded = {k: _integer_labels(where, k, v) for k, v in labels.items()}
    if class_names is None:
        top = max(int(v.max()) for v in encoded.values())  # callers guarantee non-empty labels
        return encoded, tuple(str(i) for i in range(top + 1))
    for key, v in encoded.items():
        bad = v >= len(class_names)
        if bad.any():
            raise DataError(
                f"{where}: {key} has labels outside 0..{len(class_names) - 1} "
                f"({len(class_names)} class_names given; first bad: {v[bad][:5].tolist()})"
            )
    return encoded, class_names


def _check_label_rows(where: str, x_key: str, x: np.ndarray, y_key: str, y: np.ndarray) -> None:
    """Labels must be 1-D with one entry per feature row."""
    if y.ndim != 1:
        raise DataError(f"{where}: {y_key} must be 1-D, got shape {y.shape}")
    if y.shape[0] != x.shape[0]:
        raise DataError(f"{where}: {x_key} has {x.shape[0]} rows but {y_key} has {y.shape[0]} labels")


def _load_npz(path: Path, test_fraction: float) -> Dataset:
    """A Dataset from an .npz archive (layout documented on :func:`load_dataset`)."""
    where = str(path)
    arrays = _read_npz(path)
    x_raw = _pick(where, arrays, ("X", "x"))
    if x_raw is None:
        raise DataError(f"{where}: no features: expected key 'X' (or 'x'); found keys {sorted(arrays)}")
    x = _npz_features(where, "X", x_raw)
    y = arrays.get("y")
    class_names = _npz_class_names(where, arrays.get("class_names"))
    if y is None and class_names is None:
        raise DataError(
            f"{where}: no labels: add 'y', or add 'class_names' to load an unlabeled pool "
            f"(found keys {sorted(arrays)})"
        )
    labels: dict[str, np.ndarray] = {}
    if y is not None:
        _check_label_rows(where, "X", x, "y", y)
        labels["y"] = y
    splits = {split: _npz_split(where, arrays, split, x, labels) for split in ("test", "val")}
    encoded, class_names = _encode_labels(where, labels, class_names)
    ids_raw = arrays.get("ids")
    ids = np.arange(len(x), dtype=np.int64) if ids_raw is None else _check_ids(where, ids_raw, len(x))
    return _build(path.stem, x, encoded.get("y"), class_names, ids, test_fraction,
                  splits["test"], encoded.get("y_test"), splits["val"], encoded.get("y_val"))


def _npz_split(
    where: str, arrays: dict[str, np.ndarray], split: str, x: np.ndarray, labels: dict[str, np.ndarray]
) -> np.ndarray | None:
    """``X_<split>`` as checked features (its ``y_<split>`` goes into ``labels``), or None when absent."""
    x_key, y_key = f"X_{split}", f"y_{split}"
    raw = _pick(where, arrays, (x_key, x_key.lower()))
    y = arrays.get(y_key)
    if (raw is None) != (y is None):
        raise DataError(f"{where}: a {split} split needs both {x_key} and {y_key}")
    if raw is None:
        return None
    features = _npz_features(where, x_key, raw)
    _check_label_rows(where, x_key, features, y_key, y)
    if features.shape[1:] != x.shape[1:]:
        raise DataError(f"{where}: {x_key} items have shape {features.shape[1:]}, X items have {x.shape[1:]}")
    labels[y_key] = y
    return features
