"""People as the oracle, through plain files: write the pending query out, read answers back.

Ingest is all-or-nothing: the whole file is parsed and checked first (unknown ids, ids that
were not asked, invalid labels, contradictions inside the file), and only a file with no
problem is written, in one ledger transaction. Re-ingesting the same answers adds nothing.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calkit.data.dataset import Dataset
from calkit.errors import IngestError, LedgerError
from calkit.ledger import LabelFact, Ledger

QUERY_FIELDS = ("item_id", "round", "rank", "score", "label")


def pending_round(ledger: Ledger) -> int | None:
    """The last query's round while some of its items lack labels, else None."""
    last = ledger.last_query_round()
    if last is None or len(ledger.unanswered(last)) == 0:
        return None
    return last


def write_query(ledger: Ledger, out_dir: Path, dataset: Dataset | None = None) -> tuple[Path, Path, int]:
    """Write the pending query as CSV (to fill in) and JSONL; returns both paths and the count.

    Items already answered are left out, so the files always list exactly what is still asked.
    """
    t = pending_round(ledger)
    if t is None:
        raise LedgerError("no query is pending: every asked item has a label")
    query = ledger.query(t)
    assert query is not None
    waiting = set(ledger.unanswered(t).tolist())
    rows = []
    for rank, (item_id, score) in enumerate(zip(query.ids.tolist(), query.scores.tolist())):
        if item_id in waiting:
            row = {"item_id": item_id, "round": t, "rank": rank, "score": round(score, 6), "label": ""}
            if dataset is not None and dataset.texts is not None:
                row["text"] = dataset.texts[int(dataset.positions(np.array([item_id]))[0])]
            rows.append(row)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, jsonl_path = out_dir / f"round-{t:04d}.csv", out_dir / f"round-{t:04d}.jsonl"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()) if rows else list(QUERY_FIELDS))
    writer.writeheader()
    writer.writerows(rows)
    csv_path.write_text(buf.getvalue())
    jsonl_path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "label"}) + "\n" for r in rows))
    return csv_path, jsonl_path, len(rows)


@dataclass(frozen=True)
class IngestResult:
    added: int
    already_present: int
    blank: int
    still_pending: int


def ingest(
    ledger: Ledger, path: Path, class_names: list[str], annotator: str | None = None, guideline: str | None = None
) -> IngestResult:
    """Check every row of an answers file, then store all of it or nothing."""
    rows, blank = _read_answers(path)
    facts = _to_facts(ledger, rows, class_names, annotator, guideline)
    t = ledger.last_query_round()
    try:
        added, present = ledger.add_labels(facts)
    except LedgerError as exc:
        raise IngestError(f"{path}: {exc}; nothing was written") from exc
    still = len(ledger.unanswered(t)) if t is not None else 0
    return IngestResult(added, present, blank, still)


def _read_answers(path: Path) -> tuple[list[tuple[int, dict]], int]:
    """(line number, row) pairs with a non-blank label, and how many rows were left blank."""
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                if not reader.fieldnames or "item_id" not in reader.fieldnames or "label" not in reader.fieldnames:
                    raise IngestError(f"{path}: a CSV of answers needs the columns item_id and label")
                raw = [(i + 2, row) for i, row in enumerate(reader)]
        elif suffix in (".jsonl", ".json"):
            raw = []
            for i, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise IngestError(f"{path}: line {i} is not valid JSON ({exc.msg}); nothing was written") from exc
                if not isinstance(row, dict) or "item_id" not in row:
                    raise IngestError(f"{path}: line {i} needs an object with item_id and label; nothing was written")
                raw.append((i, row))
        else:
            raise IngestError(f"{path}: answers must be a .csv or .jsonl file")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the answers as UTF-8") from exc
    answered = [(line, row) for line, row in raw if str(row.get("label") if row.get("label") is not None else "").strip()]
    return answered, len(raw) - len(answered)


def _to_facts(
    ledger: Ledger, rows: list[tuple[int, dict]], class_names: list[str], annotator: str | None, guideline: str | None
) -> list[LabelFact]:
    problems: list[str] = []
    parsed: list[tuple[int, int, str | None]] = []
    for line, row in rows:
        item_id = _as_int(row.get("item_id"))
        label = _label_index(row.get("label"), class_names)
        if item_id is None:
            problems.append(f"line {line}: item_id {row.get('item_id')!r} is not an integer")
        elif label is None:
            problems.append(f"line {line}: item {item_id}: label {row.get('label')!r} is not one of {class_names}")
        else:
            who = str(row.get("annotator") or "").strip() or annotator
            parsed.append((item_id, label, who))
    ids = [p[0] for p in parsed]
    unknown = sorted(set(ids) - ledger.known_items(ids))
    if unknown:
        problems.append(f"unknown item ids: {_short(unknown)}")
    asked = ledger.query_round_of(ids)
    not_asked = sorted(set(ids) - set(unknown) - asked.keys())
    if not_asked:
        problems.append(f"items that were never queried: {_short(not_asked)}")
    problems += _contradictions(parsed)
    problems += _answers_to_closed_rounds(ledger, parsed, asked)
    if problems:
        raise IngestError("answers rejected, nothing was written:\n  " + "\n  ".join(problems))
    return [LabelFact(i, y, source="ingest", annotator=who, guideline_version=guideline) for i, y, who in parsed]


def _contradictions(parsed: list[tuple[int, int, str | None]]) -> list[str]:
    seen: dict[tuple[int, str | None], int] = {}
    out = []
    for item_id, label, who in parsed:
        key = (item_id, who)
        if key in seen and seen[key] != label:
            out.append(f"item {item_id} has two different labels in this file")
        seen[key] = label
    return out


def _answers_to_closed_rounds(ledger: Ledger, parsed: list[tuple[int, int, str | None]], asked: dict[int, int]) -> list[str]:
    """A round is closed once a model trained on it; exact repeats of its answers are fine.

    Until then a complete answer can still be corrected (the latest fact wins).
    """
    trained = ledger.trained_rounds()
    current = ledger.current_labels([p[0] for p in parsed])
    out = []
    for item_id, label, _ in parsed:
        rnd = asked.get(item_id)
        if rnd is None or rnd not in trained:
            continue
        if current.get(item_id) != label:
            out.append(
                f"item {item_id} was answered in round {rnd}, which a model has been trained on; "
                f"a different label ({label}) cannot be added there"
            )
    return out


def _label_index(value: object, class_names: list[str]) -> int | None:
    """A class name, or a class index when no class is named like that."""
    text = str(value).strip()
    if text in class_names:
        return class_names.index(text)
    idx = _as_int(text)
    if idx is not None and 0 <= idx < len(class_names):
        return idx
    return None


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        as_float = float(str(value).strip())
    except ValueError:
        return None
    return int(as_float) if as_float.is_integer() else None


def _short(values: list[int], limit: int = 20) -> str:
    head = ", ".join(map(str, values[:limit]))
    return head + (f" and {len(values) - limit} more" if len(values) > limit else "")
