"""People as the oracle, through plain files: write the pending query out, read answers back.

Ingest is all-or-nothing: the file is parsed and checked (unreadable rows, invalid labels), then
the ledger checks the rest (unknown ids, ids not in the open query, contradictions inside the
file) in the transaction that writes; one problem and nothing is written. Re-ingesting the same
answers adds nothing.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING, Sequence

from calkit.errors import IngestError, LabelError, LedgerError
from calkit.ledger import LabelFact, Ledger

if TYPE_CHECKING:
    from calkit.run import Item

QUERY_FIELDS = ("item_id", "round", "rank", "score", "label")


def pending_round(ledger: Ledger) -> int | None:
    """The open round while some of its items lack an agreed label, else None."""
    t = ledger.open_round()
    if t is None or len(ledger.unanswered(t)) == 0:
        return None
    return t


def write_query(items: Sequence[Item], out_dir: Path, overwrite: bool = False) -> tuple[Path, Path, int]:
    """Write pending items (calkit.Run.pending) as CSV (to fill in) and JSONL; returns both paths
    and the count. A text item's text goes in a ``text`` column, so people see what they label.

    A CSV that already holds answers is not replaced unless ``overwrite``: someone may be filling
    it in, and their work would be lost.
    """
    if not items:
        raise LedgerError("no query is pending: every asked item has a label")
    t = items[0].round
    filled = _filled_rows(out_dir / f"round-{t:04d}.csv", {item.id for item in items})
    if filled and not overwrite:
        raise LedgerError(f"{out_dir / f'round-{t:04d}.csv'} already holds {filled} answers not yet ingested: ingest it first "
                          "(`calkit ingest`), or write anew with --overwrite")
    with_text = any(isinstance(item.display, str) for item in items)
    rows = []
    for item in items:
        row = {"item_id": item.id, "round": item.round, "rank": item.rank, "score": round(item.score, 6), "label": ""}
        if with_text:
            row["text"] = item.display if isinstance(item.display, str) else ""
        rows.append(row)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, jsonl_path = out_dir / f"round-{t:04d}.csv", out_dir / f"round-{t:04d}.jsonl"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
    writer.writeheader()
    writer.writerows(rows)
    csv_path.write_text(buf.getvalue())
    jsonl_path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "label"}) + "\n" for r in rows))
    return csv_path, jsonl_path, len(rows)


def _filled_rows(path: Path, pending: set[int]) -> int:
    """Rows of an existing query CSV whose label someone filled in and that are not ingested yet."""
    if not path.exists():
        return 0
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return sum(1 for row in csv.DictReader(fh)
                       if str(row.get("label") or "").strip() and _as_int(row.get("item_id")) in pending)
    except (OSError, UnicodeDecodeError, csv.Error):
        return 0


@dataclass(frozen=True)
class IngestResult:
    added: int  #: new answers, and changed answers that supersede the annotator's earlier one
    already_present: int  #: rows repeating the annotator's current answer
    blank: int
    still_pending: int


def ingest(
    ledger: Ledger, path: Path, class_names: list[str], annotator: str | None = None, guideline: str | None = None
) -> IngestResult:
    """Check every row of an answers file, then store all of it or nothing (one transaction)."""
    rows, blank = _read_answers(path)
    facts, problems = _to_facts(rows, class_names, annotator, guideline)
    if problems:
        raise IngestError(f"{path}: answers rejected, nothing was written:\n  " + "\n  ".join(problems))
    try:
        result = ledger.submit(facts, n_classes=len(class_names))
    except LabelError as exc:
        lines = [f"item {item}: {why}" for item, why in exc.problems.items()]
        raise IngestError(f"{path}: answers rejected, nothing was written:\n  " + "\n  ".join(lines)) from exc
    t = ledger.open_round()
    still = len(ledger.unanswered(t)) if t is not None else 0
    return IngestResult(result.written, result.unchanged, blank, still)


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
                except RecursionError:
                    raise IngestError(f"{path}: line {i} is JSON nested too deeply to read; nothing was written") from None
                except ValueError as exc:  # an integer literal too long to convert
                    raise IngestError(f"{path}: line {i} is unreadable JSON ({str(exc)[:100]}); nothing was written") from None
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
    rows: list[tuple[int, dict]], class_names: list[str], annotator: str | None, guideline: str | None
) -> tuple[list[LabelFact], list[str]]:
    """The file's rows as facts, and the problems only the file can name (by line).

    Whether an item exists and is in the open query is the ledger's check, made in the
    transaction that writes.
    """
    problems: list[str] = []
    facts: list[LabelFact] = []
    for line, row in rows:
        item_id = _as_int(row.get("item_id"))
        label, why = class_index(row.get("label"), class_names)
        if item_id is None:
            problems.append(f"line {line}: item_id {row.get('item_id')!r} is not an integer")
        elif label is None:
            problems.append(f"line {line}: item {item_id}: {why}")
        else:
            who = str(row.get("annotator") or "").strip() or annotator
            why_not = None if who is None else annotator_problem(who)
            if why_not:
                problems.append(f"line {line}: {why_not}")
            else:
                facts.append(LabelFact(item_id, label, source="ingest", annotator=who, guideline_version=guideline))
    return facts, problems


#: Reserved for the simulated oracle's facts.
SIMULATED_ANNOTATOR = "simulated"


def annotator_problem(name: str) -> str | None:
    """Why a name cannot be an annotator's (None when it can): printable text up to 200
    characters, and not the simulated oracle's name."""
    if not name.strip():
        return "an annotator needs a non-empty name"
    if len(name) > 200 or not name.isprintable():
        return f"annotator {name[:40]!r} must be printable text of at most 200 characters"
    if name.strip() == SIMULATED_ANNOTATOR:
        return f"{SIMULATED_ANNOTATOR!r} is the simulated oracle's name"
    return None


def class_index(value: object, class_names: Sequence[str]) -> tuple[int | None, str | None]:
    """A class given by name or by index, and why not when it is neither.

    A name always wins. Where some class names are numbers ("1", "2", "3"), an index would be
    ambiguous (is 1 the class "1" or the second one?), so only names are taken.
    """
    text = str(value).strip()
    if text in class_names:
        return list(class_names).index(text), None
    numeric_names = has_numeric_names(class_names)
    index = None if isinstance(value, bool) else _as_int(value)
    if index is not None and numeric_names:
        return None, f"class {value!r} is not one of {list(class_names)} (these names are numbers: give the name)"
    if index is not None and not 0 <= index < len(class_names):
        return None, f"class {value!r} is out of range (0..{len(class_names) - 1})"
    if index is None:
        return None, f"class {value!r} is not one of {list(class_names)} or an index of them"
    return index, None


def has_numeric_names(class_names: Sequence[str]) -> bool:
    """Whether some class is named by a number, which makes indices ambiguous."""
    return any(_as_number(name) is not None for name in class_names)


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
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


