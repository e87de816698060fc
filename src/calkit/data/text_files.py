"""User text files (.jsonl, .tsv, .csv with a text column): read, embed once with MiniLM, cache."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from calkit.data import embed
from calkit.data.dataset import Dataset
from calkit.errors import DataError

Record = tuple[int, str, str, str | None, str]  # (line, text, label, id or None, split cell)


def _jsonl_records(path: Path, fh: Any, label_column: str) -> list[Record]:
    """Records of a JSON-lines file: one object per line, blank lines skipped."""
    rows: list[Record] = []
    for line_no, line in enumerate(fh, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {line_no}: not JSON: {exc}") from None
        if not isinstance(rec, dict) or "text" not in rec or label_column not in rec:
            found = sorted(rec) if isinstance(rec, dict) else type(rec).__name__
            raise DataError(f"{path}: line {line_no}: needs keys 'text' and {label_column!r}, has {found}")
        label, item_id = rec[label_column], rec.get("id")
        rows.append((line_no, str(rec["text"]), "" if label is None else str(label),
                     None if item_id is None else str(item_id), str(rec.get("split") or "")))
    return rows


def _table_records(path: Path, fh: Any, label_column: str) -> list[Record]:
    """Records of a .tsv/.csv file with a header naming ``text``, the label and maybe ``id``."""
    reader = csv.DictReader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    header = [h.strip() for h in reader.fieldnames or []]
    if "text" not in header or label_column not in header:
        raise DataError(f"{path}: the header needs columns 'text' and {label_column!r}, has {header}")
    reader.fieldnames = header
    rows: list[Record] = []
    for rec in reader:
        if any(isinstance(v, str) and v.strip() for v in rec.values()):
            rows.append((reader.line_num, rec["text"] or "", (rec[label_column] or "").strip(),
                         (rec.get("id") or "").strip() or None, rec.get("split") or ""))
    return rows


def _read_text_records(path: Path, label_column: str) -> list[Record]:
    """Records of a labeled-text file, with decoding and CSV errors turned into DataError."""
    read = _jsonl_records if path.suffix.lower() == ".jsonl" else _table_records
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return read(path, fh, label_column)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed {path.suffix} file: {exc}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None


def load_text_file(path: str | os.PathLike, test_fraction: float = 0.2, label_column: str = "label") -> Dataset:
    """A Dataset from labeled texts (``.jsonl``, ``.tsv`` or ``.csv`` with ``text``, ``label``, optional ``id``).

    Features are cached MiniLM embeddings; class names are the sorted distinct labels
    (numeric order when all are integers); the texts are kept for display. An optional
    ``split`` field (train, val, test, or blank for the pool) gives the data's own splits.
    """
    from calkit.data.assemble import _build, _encode_strings
    from calkit.data.csv_files import _csv_class_names, split_of

    path = Path(path)
    rows = _read_text_records(path, label_column)
    if not rows:
        raise DataError(f"{path}: no records")
    for line, text, label, _, _ in rows:
        if not text.strip():
            raise DataError(f"{path}: line {line}: empty text")
        if not label:
            raise DataError(f"{path}: line {line}: empty label in {label_column!r}")
    ids = np.arange(len(rows), dtype=np.int64)
    if any(r[3] is not None for r in rows):
        seen: dict[int, int] = {}
        for i, (line, _, _, raw_id, _) in enumerate(rows):
            try:
                value = int(raw_id)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise DataError(f"{path}: line {line}: id must be an integer, got {raw_id!r}") from None
            if value in seen:
                raise DataError(f"{path}: line {line}: id {value} already used on line {seen[value]}")
            seen[value], ids[i] = line, value
    texts = [r[1] for r in rows]
    labels = [r[2] for r in rows]
    class_names = _csv_class_names(labels)
    if len(class_names) < 2:
        raise DataError(f"{path}: need at least 2 distinct labels, found {list(class_names)}")
    y = _encode_strings(str(path), np.array(labels, dtype=str), class_names)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)[:40] or "texts"
    x = embed.cached_embeddings(texts, f"file-{slug}")
    splits = np.array([split_of(path, r[0], r[4]) for r in rows])
    if not (splits == "pool").any():
        raise DataError(f"{path}: every record is in the val or test split; the pool needs records")
    pool = np.flatnonzero(splits == "pool")
    held = {s: (x[splits == s], y[splits == s]) if (splits == s).any() else (None, None) for s in ("test", "val")}
    return _build(path.stem, x[pool], y[pool], class_names, ids[pool], test_fraction, *held["test"], *held["val"],
                  texts=[texts[i] for i in pool])


