"""User ``.csv`` files with numeric feature columns and a label column (a ``text`` column makes it a text file)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from calkit.data.assemble import _build, _encode_strings
from calkit.data.dataset import Dataset
from calkit.errors import DataError

# --------------------------------------------------------------------------- csv


def _csv_has_text_column(path: Path) -> bool:
    """Whether a .csv holds labeled texts (a ``text`` column) rather than numeric features."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next((r for r in csv.reader(fh) if r), [])
    except (UnicodeDecodeError, csv.Error, OSError):
        return False  # the numeric reader reports the problem
    return "text" in (h.strip() for h in header)


def _read_csv_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, stripped cells) for every non-blank data row."""
    rows: list[tuple[int, list[str]]] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next((r for r in reader if r), None)
            if header is None:
                raise DataError(f"{path}: empty file; a header row is required")
            header = [h.strip() for h in header]
            for cells in reader:
                if any(c.strip() for c in cells):
                    rows.append((reader.line_num, [c.strip() for c in cells]))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from None
    return header, rows


#: Values of a ``split`` column and the split each names (blank means the pool).
SPLIT_NAMES = {"": "pool", "pool": "pool", "train": "pool", "val": "val", "validation": "val", "test": "test"}


def split_of(path: Path, line: int, value: str) -> str:
    """The split a ``split`` cell names: pool, val or test."""
    split = SPLIT_NAMES.get(value.strip().lower())
    if split is None:
        raise DataError(f"{path}: line {line}, column 'split': {value!r} is not one of train, val, test (or blank)")
    return split


def _csv_columns(path: Path, header: list[str], label_column: str) -> tuple[int, int | None, int | None, list[int]]:
    """(label index, id index, split index, feature indices) from the header, validated.

    Columns named ``id`` and ``split`` are not features."""
    for i, name in enumerate(header):
        if not name:
            raise DataError(
                f"{path}: column {i + 1} has no name in the header (an index column written by pandas? "
                "save with index=False)"
            )
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{path}: duplicate column names in the header: {dupes}")
    if label_column not in header:
        raise DataError(
            f"{path}: no label column {label_column!r} in the header (columns: {header[:10]}); "
            "the first row must be a header, and label_column names the label column"
        )
    label_idx = header.index(label_column)
    id_idx = header.index("id") if "id" in header and label_column != "id" else None
    split_idx = header.index("split") if "split" in header and label_column != "split" else None
    features = [i for i in range(len(header)) if i not in (label_idx, id_idx, split_idx)]
    if not features:
        raise DataError(f"{path}: no feature columns besides {label_column!r}")
    return label_idx, id_idx, split_idx, features


def _parse_cells(path: Path, header: list[str], rows: list[tuple[int, list[str]]], features: list[int]) -> np.ndarray:
    """Feature matrix as float64; the first non-numeric cell is reported by line and column."""
    table = [[cells[j] for j in features] for _, cells in rows]
    try:
        return np.array(table, dtype=str).astype(np.float64)
    except ValueError:
        pass  # find the offending cell (and accept anything Python's float accepts)
    out = np.empty((len(rows), len(features)), dtype=np.float64)
    for r, (line, cells) in enumerate(rows):
        for c, j in enumerate(features):
            try:
                out[r, c] = float(cells[j])
            except ValueError:
                raise DataError(
                    f"{path}: line {line}, column {header[j]!r}: not a number: {cells[j]!r}"
                ) from None
    return out


def _csv_features(path: Path, header: list[str], rows: list[tuple[int, list[str]]], features: list[int]) -> np.ndarray:
    """float32 features with every value finite, errors naming the line and column."""
    x = _parse_cells(path, header, rows, features).astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = (int(v[0]) for v in np.nonzero(bad))
        raise DataError(
            f"{path}: line {rows[r][0]}, column {header[features[c]]!r}: "
            f"value {rows[r][1][features[c]]!r} is NaN, infinite or too large for float32"
        )
    return x


def _csv_ids(path: Path, rows: list[tuple[int, list[str]]], id_idx: int | None) -> np.ndarray:
    """ids from the id column (integers, unique), or row numbers when there is none."""
    if id_idx is None:
        return np.arange(len(rows), dtype=np.int64)
    ids: list[int] = []
    seen: dict[int, int] = {}
    for line, cells in rows:
        try:
            value = int(cells[id_idx])
        except ValueError:
            raise DataError(f"{path}: line {line}, column 'id': not an integer: {cells[id_idx]!r}") from None
        if value in seen:
            raise DataError(f"{path}: line {line}: id {value} already used on line {seen[value]}")
        seen[value] = line
        ids.append(value)
    return np.array(ids, dtype=np.int64)


def _csv_class_names(labels: list[str]) -> tuple[str, ...]:
    """Sorted distinct labels; numeric order when all are integers (so "10" follows "9")."""
    distinct = set(labels)
    try:
        return tuple(sorted(distinct, key=lambda s: (int(s), s)))
    except ValueError:
        return tuple(sorted(distinct))


def _load_csv(path: Path, label_column: str, test_fraction: float) -> Dataset:
    """A Dataset from a CSV file (layout documented on :func:`load_dataset`)."""
    header, rows = _read_csv_rows(path)
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    for line, cells in rows:
        if len(cells) != len(header):
            raise DataError(f"{path}: line {line} has {len(cells)} cells but the header has {len(header)} columns")
    label_idx, id_idx, split_idx, features = _csv_columns(path, header, label_column)
    for line, cells in rows:
        if not cells[label_idx]:
            raise DataError(f"{path}: line {line}: empty label in column {label_column!r}")
    x = _csv_features(path, header, rows, features)
    labels = [cells[label_idx] for _, cells in rows]
    class_names = _csv_class_names(labels)
    y = _encode_strings(str(path), np.array(labels, dtype=str), class_names)
    splits = np.array(["pool" if split_idx is None else split_of(path, line, cells[split_idx]) for line, cells in rows])
    pool = splits == "pool"
    if not pool.any():
        raise DataError(f"{path}: every row is in the val or test split; the pool needs rows")
    ids = _csv_ids(path, rows, id_idx)
    held = {s: (x[splits == s], y[splits == s]) if (splits == s).any() else (None, None) for s in ("test", "val")}
    return _build(path.stem, x[pool], y[pool], class_names, ids[pool], test_fraction, *held["test"], *held["val"])
