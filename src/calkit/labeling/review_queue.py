"""The label review as a queue for the lead: suspects stored by whoever computed them (the
worker, when the lead asks, or ``calkit review RUN --queue``), read by the lead's page, and
corrected there as new facts (adjudications; training reads them from the next round).

Computing the review trains models, so the web process only asks for it: the request is a row
in ``desk_settings`` that the worker takes up while people label.
"""

from __future__ import annotations

import json
import sqlite3

from calkit.labeling.schema import ensure_desk_tables
from calkit.ledger import utc_now

#: Suspects kept per review (the lead's page shows them in order).
DEFAULT_QUEUE_LENGTH = 50
_REQUEST = "review_requested"


def store(run, suspects, source: str, length: int = DEFAULT_QUEUE_LENGTH) -> int:
    """Replace the queue with the first ``length`` suspects; returns how many were kept."""
    ensure_desk_tables(run._ledger)
    kept = list(suspects)[:length]
    now = utc_now()
    with run._ledger.transaction() as conn:
        conn.execute("DELETE FROM review_queue")
        conn.executemany(
            "INSERT INTO review_queue(item_id, rank, round, given, likely, self_confidence, confident, source, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(s.item_id, rank, s.round, s.given, s.likely, s.self_confidence, int(s.confident), source, now)
             for rank, s in enumerate(kept)])
        conn.execute("DELETE FROM desk_settings WHERE key = ?", (_REQUEST,))
    return len(kept)


def read(run) -> dict:
    """The queue, most suspect first, each with its label now (after any correction)."""
    names = run.class_names
    conn = run._ledger._conn
    rows = conn.execute(
        "SELECT r.item_id, r.round, r.given, r.likely, r.self_confidence, r.confident, r.source, r.created_at, "
        "(SELECT a.label FROM adjudicated_labels a WHERE a.item_id = r.item_id AND NOT a.disputed), "
        "(SELECT MAX(d.created_at) FROM adjudications d WHERE d.item_id = r.item_id AND d.created_at > r.created_at) "
        "FROM review_queue r ORDER BY r.rank").fetchall()
    items = [{"item_id": r[0], "round": r[1], "given": names[r[2]], "likely": names[r[3]], "self_confidence": r[4],
              "confident": bool(r[5]), "label_now": None if r[8] is None else names[r[8]], "corrected_at": r[9]}
             for r in rows]
    return {"computed_at": rows[0][7] if rows else None, "source": rows[0][6] if rows else None,
            "requested": requested(conn), "items": items}


def request(run) -> None:
    """Ask the worker for a fresh review (it trains models, so the web process must not)."""
    ensure_desk_tables(run._ledger)
    with run._ledger.transaction() as conn:
        conn.execute("INSERT INTO desk_settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
                     (_REQUEST, json.dumps(utc_now())))


def requested(conn: sqlite3.Connection) -> str | None:
    """When a review was asked for and not made yet, or None."""
    row = conn.execute("SELECT value FROM desk_settings WHERE key = ?", (_REQUEST,)).fetchone()
    return None if row is None else json.loads(row[0])
