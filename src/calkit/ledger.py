"""The run's SQLite store: the single source of truth for what was asked and what was answered.

Labels are facts. The ``labels`` table is append-only (triggers refuse UPDATE and DELETE); an
item may collect several labels (annotators, corrections), and the label a model trains on is
the adjudicated view ``current_labels`` over those facts. Each write that must not be half-done
(a query, one ingest) is a single transaction, so a crash leaves either all of it or none.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from calkit.errors import LedgerError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    item_id INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS queries (
    round INTEGER PRIMARY KEY,
    acquisition TEXT NOT NULL,
    n_items INTEGER NOT NULL,
    cost TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS query_items (
    round INTEGER NOT NULL REFERENCES queries(round),
    item_id INTEGER NOT NULL UNIQUE REFERENCES items(item_id),
    rank INTEGER NOT NULL,
    score REAL,
    PRIMARY KEY (round, item_id)
);
CREATE TABLE IF NOT EXISTS labels (
    label_id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items(item_id),
    label INTEGER NOT NULL,
    round INTEGER NOT NULL,
    source TEXT NOT NULL,
    annotator TEXT,
    acquisition TEXT,
    score REAL,
    guideline_version TEXT,
    model TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_by_item ON labels(item_id);
CREATE TABLE IF NOT EXISTS metrics (
    round INTEGER PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS labels_no_update BEFORE UPDATE ON labels
BEGIN SELECT RAISE(ABORT, 'labels are append-only'); END;
CREATE TRIGGER IF NOT EXISTS labels_no_delete BEFORE DELETE ON labels
BEGIN SELECT RAISE(ABORT, 'labels are append-only'); END;
-- The label a model trains on: for now the latest fact per item. Majority votes or
-- adjudication by a reviewer will replace this view without touching the facts.
CREATE VIEW IF NOT EXISTS current_labels AS
    SELECT l.item_id, l.label, l.round
    FROM labels l
    JOIN (SELECT item_id, MAX(label_id) AS last_id FROM labels GROUP BY item_id) m
      ON l.label_id = m.last_id;
"""


@dataclass(frozen=True)
class LabelFact:
    """One answer for one item, as it will be stored."""

    item_id: int
    label: int
    source: str
    annotator: str | None = None
    guideline_version: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class Query:
    """The items asked in one round, in rank order, with their acquisition scores."""

    round: int
    acquisition: str
    ids: np.ndarray
    scores: np.ndarray
    cost: dict = field(default_factory=dict)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Ledger:
    """A connection to ``RUN_DIR/ledger.sqlite``."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self._conn = conn

    @classmethod
    def create(cls, path: str | Path, item_ids: Iterable[int], meta: dict[str, object]) -> "Ledger":
        path = Path(path)
        if path.exists():
            raise LedgerError(f"{path} already exists")
        ledger = cls(path, _connect(path))
        with ledger._conn:
            ledger._conn.executescript(_SCHEMA)
            ledger._conn.executemany("INSERT INTO items(item_id) VALUES (?)", ((int(i),) for i in item_ids))
            ledger._conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [("schema_version", json.dumps(SCHEMA_VERSION))] + [(k, json.dumps(v)) for k, v in meta.items()],
            )
        return ledger

    @classmethod
    def open(cls, path: str | Path) -> "Ledger":
        path = Path(path)
        if not path.exists():
            raise LedgerError(f"no ledger at {path}: is this a calkit run directory?")
        try:
            conn = _connect(path)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{path}: not a calkit ledger ({exc})") from exc
        ledger = cls(path, conn)
        try:
            version = ledger.meta("schema_version", None)
        except Exception:
            conn.close()
            raise
        if version != SCHEMA_VERSION:
            conn.close()
            raise LedgerError(f"{path}: ledger schema version {version!r}, this calkit reads {SCHEMA_VERSION}")
        return ledger

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- metadata -------------------------------------------------------------------------
    def meta(self, key: str, default: object = ...) -> object:
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path}: not a calkit ledger ({exc})") from exc
        if row is None:
            if default is ...:
                raise LedgerError(f"{self.path}: missing metadata {key!r}")
            return default
        return json.loads(row[0])

    # -- queries --------------------------------------------------------------------------
    def add_query(self, query: Query) -> None:
        """Store a round's query atomically; an item can be asked only once per run."""
        rows = [(query.round, int(i), rank, float(s)) for rank, (i, s) in enumerate(zip(query.ids, query.scores))]
        try:
            with self._conn:
                self._conn.execute(
                    "INSERT INTO queries(round, acquisition, n_items, cost, created_at) VALUES (?, ?, ?, ?, ?)",
                    (query.round, query.acquisition, len(rows), json.dumps(query.cost), utc_now()),
                )
                self._conn.executemany(
                    "INSERT INTO query_items(round, item_id, rank, score) VALUES (?, ?, ?, ?)", rows
                )
        except sqlite3.IntegrityError as exc:
            raise LedgerError(f"query for round {query.round} conflicts with the ledger: {exc}") from exc

    def query(self, round_index: int) -> Query | None:
        head = self._conn.execute(
            "SELECT acquisition, cost FROM queries WHERE round = ?", (round_index,)
        ).fetchone()
        if head is None:
            return None
        rows = self._conn.execute(
            "SELECT item_id, score FROM query_items WHERE round = ? ORDER BY rank", (round_index,)
        ).fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        scores = np.array([r[1] for r in rows], dtype=np.float64)
        return Query(round_index, head[0], ids, scores, json.loads(head[1]))

    def last_query_round(self) -> int | None:
        return self._conn.execute("SELECT MAX(round) FROM queries").fetchone()[0]

    def queried_ids(self, before_round: int | None = None) -> np.ndarray:
        """Ids asked in rounds ``< before_round`` (all rounds when None), in round and rank order."""
        sql = "SELECT item_id FROM query_items"
        args: tuple = ()
        if before_round is not None:
            sql += " WHERE round < ?"
            args = (before_round,)
        rows = self._conn.execute(sql + " ORDER BY round, rank", args).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def unanswered(self, round_index: int) -> np.ndarray:
        rows = self._conn.execute(
            "SELECT q.item_id FROM query_items q WHERE q.round = ? AND NOT EXISTS "
            "(SELECT 1 FROM labels l WHERE l.item_id = q.item_id) ORDER BY q.rank",
            (round_index,),
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def query_round_of(self, item_ids: Iterable[int]) -> dict[int, int]:
        """The round in which each given item was asked (items never asked are absent)."""
        out: dict[int, int] = {}
        for item_id, rnd in self._iter_in("SELECT item_id, round FROM query_items WHERE item_id IN", item_ids):
            out[int(item_id)] = int(rnd)
        return out

    def known_items(self, item_ids: Iterable[int]) -> set[int]:
        return {int(r[0]) for r in self._iter_in("SELECT item_id FROM items WHERE item_id IN", item_ids)}

    # -- labels ---------------------------------------------------------------------------
    def add_labels(self, facts: list[LabelFact]) -> tuple[int, int]:
        """Append facts for queried items in one transaction; returns (added, already present).

        A fact identical to a stored one (same item, label, source and annotator) is skipped,
        which makes replaying the same answers idempotent.
        """
        rounds = self.query_round_of(f.item_id for f in facts)
        missing = sorted({f.item_id for f in facts} - rounds.keys())
        if missing:
            raise LedgerError(f"items were never queried: {missing[:20]}")
        added = skipped = 0
        with self._conn:
            for f in facts:
                if self._has_fact(f):
                    skipped += 1
                    continue
                rnd = rounds[f.item_id]
                acq, score = self._conn.execute(
                    "SELECT q.acquisition, qi.score FROM query_items qi JOIN queries q ON q.round = qi.round "
                    "WHERE qi.item_id = ?",
                    (f.item_id,),
                ).fetchone()
                self._conn.execute(
                    "INSERT INTO labels(item_id, label, round, source, annotator, acquisition, score, "
                    "guideline_version, model, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (f.item_id, f.label, rnd, f.source, f.annotator, acq, score, f.guideline_version, f.model, utc_now()),
                )
                added += 1
        return added, skipped

    def _has_fact(self, f: LabelFact) -> bool:
        return (
            self._conn.execute(
                "SELECT 1 FROM labels WHERE item_id = ? AND label = ? AND source = ? AND annotator IS ?",
                (f.item_id, f.label, f.source, f.annotator),
            ).fetchone()
            is not None
        )

    def current_labels(self, item_ids: np.ndarray | None = None) -> dict[int, int]:
        """Adjudicated label per labeled item (optionally only for ``item_ids``)."""
        if item_ids is None:
            rows = self._conn.execute("SELECT item_id, label FROM current_labels").fetchall()
        else:
            rows = list(self._iter_in("SELECT item_id, label FROM current_labels WHERE item_id IN", item_ids))
        return {int(i): int(y) for i, y in rows}

    def label_facts(self) -> list[dict]:
        cur = self._conn.execute("SELECT * FROM labels ORDER BY label_id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def label_count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM labels").fetchone()[0]

    # -- metrics --------------------------------------------------------------------------
    def record_metrics(self, round_index: int, record: dict) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO metrics(round, record) VALUES (?, ?)", (round_index, json.dumps(record))
            )

    def trained_rounds(self) -> set[int]:
        """Rounds whose training finished (their metrics are recorded)."""
        return {int(r[0]) for r in self._conn.execute("SELECT round FROM metrics")}

    def metrics(self) -> list[dict]:
        rows = self._conn.execute("SELECT record FROM metrics ORDER BY round").fetchall()
        return [json.loads(r[0]) for r in rows]

    def _iter_in(self, sql_prefix: str, values: Iterable[int]) -> Iterator[tuple]:
        """Runs ``sql_prefix (?, ?, ...)`` in chunks below SQLite's parameter limit."""
        values = [int(v) for v in values]
        for start in range(0, len(values), 900):
            chunk = values[start : start + 900]
            marks = ",".join("?" * len(chunk))
            yield from self._conn.execute(f"{sql_prefix} ({marks})", chunk)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level="DEFERRED")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn
