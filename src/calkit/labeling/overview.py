"""What the lead sees of a labeling project: progress per round and per annotator, the learning
curve, skips, questions and disputes; and the labels exported with their provenance."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

#: Pace counts the answers of this many most recent minutes.
PACE_MINUTES = 10
EXPORT_FIELDS = ("item_id", "label", "label_index", "annotator", "created_at", "round", "revision", "current",
                 "agreed_label", "source", "guideline_version", "acquisition", "score", "reason")


def annotators(run) -> list[dict]:
    """Per account: answers (all, open round), skips, questions, pace, last answer."""
    conn = run._ledger._conn
    open_round = run._ledger.open_round()
    since = (datetime.now(timezone.utc) - timedelta(minutes=PACE_MINUTES)).isoformat(timespec="milliseconds")
    rows = conn.execute(
        "SELECT a.name, a.role, a.revoked_at, "
        "(SELECT COUNT(*) FROM current_answers c WHERE c.annotator = a.name), "
        "(SELECT COUNT(*) FROM current_answers c WHERE c.annotator = a.name AND c.round = ?), "
        "(SELECT COUNT(*) FROM labels l WHERE l.annotator = a.name AND l.created_at >= ?), "
        "(SELECT MAX(created_at) FROM labels l WHERE l.annotator = a.name), "
        "(SELECT COUNT(*) FROM skips s WHERE s.annotator = a.name), "
        "(SELECT COUNT(*) FROM questions q WHERE q.annotator = a.name) "
        "FROM annotators a ORDER BY a.created_at, a.name", (open_round, since)).fetchall()
    return [{"name": r[0], "role": r[1], "active": r[2] is None, "answers": r[3], "this_round": r[4],
             "per_minute": r[5] / PACE_MINUTES, "last_answer": r[6], "skips": r[7], "questions": r[8]} for r in rows]


def rounds(run) -> list[dict]:
    """Per round: size, state, agreed labels, and once trained the accuracy (the learning curve)."""
    conn = run._ledger._conn
    metrics = {m["round"]: m for m in run.metrics()}
    out = []
    for t, size, state, created in conn.execute("SELECT round, n_items, state, created_at FROM queries ORDER BY round"):
        settled = conn.execute(
            "SELECT COUNT(*) FROM query_items q JOIN adjudicated_labels a ON a.item_id = q.item_id AND NOT a.disputed "
            "WHERE q.round = ?", (t,)).fetchone()[0]
        m = metrics.get(t, {})
        out.append({"round": t, "size": size, "state": state, "settled": settled, "opened": created,
                    "labeled": m.get("labeled"), "test_accuracy": m.get("test_accuracy"),
                    "val_accuracy": m.get("val_accuracy"), "holdout_accuracy": m.get("holdout_accuracy"),
                    "holdout_labels": m.get("holdout_labels"), "epochs": m.get("epochs"),
                    "train_seconds": m.get("train_seconds")})
    planned = run.plan
    for t in range(len(out), len(planned)):
        out.append({"round": t, "size": planned[t], "state": "planned", "settled": 0, "opened": None, "labeled": None,
                    "test_accuracy": None, "val_accuracy": None, "holdout_accuracy": None, "holdout_labels": None,
                    "epochs": None, "train_seconds": None})
    return out


def skips(run) -> list[dict]:
    rows = run._ledger._conn.execute(
        "SELECT s.item_id, s.annotator, s.round, s.reason, s.created_at, "
        "(SELECT label FROM adjudicated_labels a WHERE a.item_id = s.item_id AND NOT a.disputed) "
        "FROM skips s ORDER BY s.created_at DESC").fetchall()
    return [{"item_id": r[0], "annotator": r[1], "round": r[2], "reason": r[3], "at": r[4],
             "settled": r[5] is not None} for r in rows]


def unsettled_needing_lead(run) -> list[dict]:
    """Items that nobody can settle without the lead: held-out items whose answers tie, and items
    of the open round disputed once they have
    the answers they need (a pilot item waits for all of them), or skipped by every active
    annotator (leads aside) who has not answered them (when there is an active annotator at all)."""
    conn = run._ledger._conn
    t = run._ledger.open_round()
    held = [{"item_id": int(i), "disputed": True, "holdout": True, "answers": run._ledger.current_answers(int(i))}
            for i in run._ledger.holdout_disputed()]
    if t is None:
        return held
    rows = conn.execute(
        "SELECT q.item_id, COALESCE(a.disputed, 0) FROM query_items q "
        "LEFT JOIN adjudicated_labels a ON a.item_id = q.item_id "
        "WHERE q.round = ? AND (a.item_id IS NULL OR a.disputed) "
        "AND ((COALESCE(a.disputed, 0) AND (SELECT COUNT(DISTINCT annotator) FROM labels l "
        "      WHERE l.item_id = q.item_id) >= q.needed) OR (EXISTS (SELECT 1 FROM annotators "
        "  WHERE revoked_at IS NULL AND role = 'annotator') AND NOT EXISTS ("
        "  SELECT 1 FROM annotators n WHERE n.revoked_at IS NULL AND n.role = 'annotator' "
        "  AND NOT EXISTS (SELECT 1 FROM skips s WHERE s.item_id = q.item_id AND s.annotator = n.name)"
        "  AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.item_id = q.item_id AND l.annotator = n.name))))"
        "ORDER BY q.rank", (t,)).fetchall()
    return [{"item_id": r[0], "disputed": bool(r[1]), "holdout": False, "answers": run._ledger.current_answers(r[0])}
            for r in rows] + held


def export_rows(run) -> list[dict]:
    """Every label fact with its provenance and whether it is the annotator's current answer, then
    every lead's decision (source ``adjudication``, with its reason)."""
    names = run.class_names
    conn = run._ledger._conn
    current = {(r[0], r[1]) for r in conn.execute("SELECT item_id, revision FROM current_answers")}
    agreed = dict(conn.execute("SELECT item_id, label FROM adjudicated_labels WHERE NOT disputed").fetchall())
    out = []
    for fact in run._ledger.label_facts():
        out.append({
            "item_id": fact["item_id"], "label": names[fact["label"]], "label_index": fact["label"],
            "annotator": fact["annotator"], "created_at": fact["created_at"], "round": fact["round"],
            "revision": fact["revision"], "current": (fact["item_id"], fact["revision"]) in current,
            "agreed_label": None if fact["item_id"] not in agreed else names[agreed[fact["item_id"]]],
            "source": fact["source"], "guideline_version": fact["guideline_version"],
            "acquisition": fact["acquisition"], "score": fact["score"], "reason": None,
        })
    rounds = dict(conn.execute("SELECT item_id, round FROM query_items WHERE item_id IN "
                               "(SELECT item_id FROM adjudications)").fetchall())
    latest = {r[0] for r in conn.execute("SELECT MAX(adjudication_id) FROM adjudications GROUP BY item_id")}
    for number, item, label, who, reason, at in conn.execute(
            "SELECT adjudication_id, item_id, label, decided_by, reason, created_at FROM adjudications "
            "ORDER BY adjudication_id"):
        out.append({"item_id": item, "label": names[label], "label_index": label, "annotator": who, "created_at": at,
                    "round": rounds.get(item), "revision": None, "current": number in latest,
                    "agreed_label": None if item not in agreed else names[agreed[item]], "source": "adjudication",
                    "guideline_version": None, "acquisition": None, "score": None, "reason": reason})
    return out


def export_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_safe(v) for k, v in row.items()})
    return out.getvalue()


def export_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def _csv_safe(value: object) -> object:
    """Cells a spreadsheet would run as formulas get a leading quote (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
