"""The run's SQLite store: the single source of truth for what was asked and what was answered.

Several processes and threads write to one ledger at once (annotators through a web server, a
worker that trains), so every write is one short ``BEGIN IMMEDIATE`` transaction that validates
what it writes against what it reads; each thread gets its own connection; the database runs in
WAL mode with a busy timeout. An acknowledged write is a committed write (``synchronous=FULL``).

Labels are facts. The ``labels`` table is append-only (triggers refuse UPDATE and DELETE). Each
annotator has one current answer per item: the same answer again is a no-op, a changed answer is
a new fact with the next ``revision`` (UNIQUE per item and annotator) that supersedes the earlier
one, which stays. What training reads is the adjudicated view ``adjudicated_labels`` over the
current answers: the majority label, or ``disputed`` (kept out of training) when the top labels
tie.

A round moves through ``open`` (its query awaits answers) -> ``closed`` (its labels are frozen
for training; closing reads them in the same transaction) -> ``trained`` (its metrics are
recorded). At most one round is open, enforced by a partial UNIQUE index.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np

from calkit.errors import LabelError, LedgerError

SCHEMA_VERSION = 2
#: Who answered, when a channel does not say (answers files without an annotator column).
ANONYMOUS = "anonymous"
#: The round recorded with answers on held-out validation items (they belong to no round).
HOLDOUT_ROUND = -1
#: Seconds a writer waits for another's transaction before giving up.
BUSY_TIMEOUT_S = 60.0
#: Who decided the adjudications written when a calkit 0.2 ledger is upgraded.
UPGRADE = "calkit-0.2-upgrade"

_TABLES = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE items (
    item_id INTEGER PRIMARY KEY
);
CREATE TABLE queries (
    round INTEGER PRIMARY KEY,
    acquisition TEXT NOT NULL,
    n_items INTEGER NOT NULL,
    cost TEXT NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed', 'trained')),
    closed_at TEXT,
    trained_at TEXT
);
CREATE UNIQUE INDEX one_open_round ON queries(state) WHERE state = 'open';
CREATE TABLE query_items (
    round INTEGER NOT NULL REFERENCES queries(round),
    item_id INTEGER NOT NULL UNIQUE REFERENCES items(item_id),
    rank INTEGER NOT NULL,
    score REAL,
    needed INTEGER NOT NULL DEFAULT 1 CHECK (needed >= 1),
    PRIMARY KEY (round, item_id)
);
CREATE TABLE metrics (
    round INTEGER PRIMARY KEY,
    record TEXT NOT NULL
);
"""

#: Items set aside as a validation set that people label (for data without one): never asked in
#: a round, never trained on, only measured against.
_HOLDOUT = """
CREATE TABLE IF NOT EXISTS holdout (
    item_id INTEGER PRIMARY KEY REFERENCES items(item_id),
    rank INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS holdout_never_asked BEFORE INSERT ON query_items
WHEN NEW.item_id IN (SELECT item_id FROM holdout)
BEGIN SELECT RAISE(ABORT, 'a held-out validation item is never asked in a round'); END;
"""

_LABELS = """
CREATE TABLE labels (
    label_id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items(item_id),
    annotator TEXT NOT NULL,
    revision INTEGER NOT NULL,
    label INTEGER NOT NULL CHECK (label >= 0),
    round INTEGER NOT NULL,
    source TEXT NOT NULL,
    acquisition TEXT,
    score REAL,
    guideline_version TEXT,
    model TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (item_id, annotator, revision)
);
"""

_ADJUDICATIONS = """
CREATE TABLE adjudications (
    adjudication_id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items(item_id),
    label INTEGER NOT NULL CHECK (label >= 0),
    decided_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""

_RULES_AND_VIEWS = """
CREATE TRIGGER adjudications_no_update BEFORE UPDATE ON adjudications
BEGIN SELECT RAISE(ABORT, 'adjudications are append-only'); END;
CREATE TRIGGER adjudications_no_delete BEFORE DELETE ON adjudications
BEGIN SELECT RAISE(ABORT, 'adjudications are append-only'); END;
CREATE TRIGGER labels_no_update BEFORE UPDATE ON labels
BEGIN SELECT RAISE(ABORT, 'labels are append-only'); END;
CREATE TRIGGER labels_no_delete BEFORE DELETE ON labels
BEGIN SELECT RAISE(ABORT, 'labels are append-only'); END;
-- Each annotator's latest answer per item.
CREATE VIEW current_answers AS
    SELECT l.* FROM labels l
    JOIN (SELECT item_id, annotator, MAX(revision) AS revision FROM labels GROUP BY item_id, annotator) m
      USING (item_id, annotator, revision);
-- The majority of the current answers per item; a tie at the top is disputed.
CREATE VIEW majority_labels AS
    SELECT item_id,
           CASE WHEN COUNT(*) = 1 THEN MIN(label) END AS label,
           MAX(votes) AS votes,
           COUNT(*) > 1 AS disputed
    FROM (SELECT item_id, label, votes, RANK() OVER (PARTITION BY item_id ORDER BY votes DESC) AS place
          FROM (SELECT item_id, label, COUNT(*) AS votes FROM current_answers GROUP BY item_id, label))
    WHERE place = 1
    GROUP BY item_id;
-- What training reads: an item's latest adjudication where it has one, else its majority.
CREATE VIEW adjudicated_labels AS
    SELECT a.item_id, a.label, NULL AS votes, 0 AS disputed FROM adjudications a
    JOIN (SELECT item_id, MAX(adjudication_id) AS last_id FROM adjudications GROUP BY item_id) m
      ON a.adjudication_id = m.last_id
    UNION ALL
    SELECT item_id, label, votes, disputed FROM majority_labels
    WHERE item_id NOT IN (SELECT item_id FROM adjudications);
"""


@dataclass(frozen=True)
class LabelFact:
    """One answer for one item, as it will be stored."""

    item_id: int
    label: int
    source: str
    annotator: str | None = None  #: None is stored as ANONYMOUS
    guideline_version: str | None = None
    model: str | None = None

    @property
    def who(self) -> str:
        return self.annotator or ANONYMOUS


@dataclass(frozen=True)
class SubmitResult:
    """What one submission changed: new answers, repeats of current answers, changed answers."""

    added: int
    unchanged: int
    superseded: int

    @property
    def written(self) -> int:
        return self.added + self.superseded


@dataclass(frozen=True)
class Query:
    """The items asked in one round, in rank order, with their acquisition scores."""

    round: int
    acquisition: str
    ids: np.ndarray
    scores: np.ndarray
    cost: dict = field(default_factory=dict)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Ledger:
    """``RUN_DIR/ledger.sqlite``; safe to share between threads (one connection each)."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def create(cls, path: str | Path, item_ids: Iterable[int], meta: dict[str, object]) -> "Ledger":
        path = Path(path)
        if path.exists():
            raise LedgerError(f"{path} already exists")
        ledger = cls(path)
        with ledger._write() as conn:
            for script in (_TABLES, _HOLDOUT, _LABELS, _ADJUDICATIONS, _RULES_AND_VIEWS):
                for statement in sql_statements(script):
                    conn.execute(statement)
            conn.executemany("INSERT INTO items(item_id) VALUES (?)", ((int(i),) for i in item_ids))
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [("schema_version", json.dumps(SCHEMA_VERSION))] + [(k, json.dumps(v)) for k, v in meta.items()],
            )
        return ledger

    @classmethod
    def open(cls, path: str | Path) -> "Ledger":
        """Open a ledger, upgrading one written by calkit 0.2 (schema 1) in place."""
        path = Path(path)
        if not path.exists():
            raise LedgerError(f"no ledger at {path}: is this a calkit run directory?")
        ledger = cls(path)
        try:
            version = ledger.meta("schema_version", None)
            if version == 1:
                _upgrade_from_v1(ledger)
                version = ledger.meta("schema_version", None)
            if version == SCHEMA_VERSION:
                _add_later_parts(ledger)
        except Exception:
            ledger.close()
            raise
        if version != SCHEMA_VERSION:
            ledger.close()
            raise LedgerError(f"{path}: ledger schema version {version!r}, this calkit reads {SCHEMA_VERSION}")
        return ledger

    def close(self) -> None:
        """Close every thread's connection (call once no thread uses the ledger any more)."""
        with self._lock:
            for _, conn in self._all:
                conn.close()
            self._all.clear()
            self._closed = True
        self._local = threading.local()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connections and transactions -----------------------------------------------------
    @property
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise LedgerError(f"{self.path}: this ledger was closed")
            try:
                conn = _connect(self.path)
            except sqlite3.DatabaseError as exc:
                raise LedgerError(f"{self.path}: not a calkit ledger ({exc})") from exc
            self._local.conn = conn
            with self._lock:
                # Threads come and go (a web server's workers): close the connections of the
                # ones that ended, so that file descriptors do not pile up.
                for thread, old in [pair for pair in self._all if not pair[0].is_alive()]:
                    old.close()
                self._all = [pair for pair in self._all if pair[0].is_alive()]
                self._all.append((threading.current_thread(), conn))
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that holds the write lock from its first statement."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def transaction(self) -> "contextlib.AbstractContextManager[sqlite3.Connection]":
        """A write transaction for modules that keep their own tables in the run's database
        (the labeling desk): BEGIN IMMEDIATE, committed on success, rolled back on error."""
        return self._write()

    def snapshot(self) -> "contextlib.AbstractContextManager[sqlite3.Connection]":
        """Several reads that see one consistent state (for modules with their own tables)."""
        return self._snapshot()

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads that see one consistent state of the database."""
        conn = self._conn
        if conn.in_transaction:  # already inside a write or snapshot
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

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

    # -- queries and rounds ---------------------------------------------------------------
    def add_query(self, query: Query, ahead: bool = False) -> None:
        """Open round ``query.round`` with its items, atomically.

        Rounds open in order, one at a time: round 0 first, then each after the one before it
        was trained, or (``ahead``, the lookahead setting) closed: people label the next round
        while the previous one trains. An item can be asked only once per run.
        """
        rows = [(query.round, int(i), rank, float(s)) for rank, (i, s) in enumerate(zip(query.ids, query.scores))]
        try:
            with self._write() as conn:
                previous = conn.execute("SELECT round, state FROM queries ORDER BY round DESC LIMIT 1").fetchone()
                expected = 0 if previous is None else previous[0] + 1
                allowed = ("trained", "closed") if ahead else ("trained",)
                if query.round != expected or (previous is not None and previous[1] not in allowed):
                    why = "no round before it" if previous is None else f"round {previous[0]} is {previous[1]}"
                    raise LedgerError(f"cannot open round {query.round}: {why}")
                conn.execute(
                    "INSERT INTO queries(round, acquisition, n_items, cost, created_at) VALUES (?, ?, ?, ?, ?)",
                    (query.round, query.acquisition, len(rows), json.dumps(query.cost), utc_now()),
                )
                conn.executemany("INSERT INTO query_items(round, item_id, rank, score) VALUES (?, ?, ?, ?)", rows)
        except sqlite3.IntegrityError as exc:
            raise LedgerError(f"query for round {query.round} conflicts with the ledger: {exc}") from exc

    def query(self, round_index: int) -> Query | None:
        with self._snapshot() as conn:
            head = conn.execute("SELECT acquisition, cost FROM queries WHERE round = ?", (round_index,)).fetchone()
            if head is None:
                return None
            rows = conn.execute(
                "SELECT item_id, score FROM query_items WHERE round = ? ORDER BY rank", (round_index,)
            ).fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        scores = np.array([r[1] for r in rows], dtype=np.float64)
        return Query(round_index, head[0], ids, scores, json.loads(head[1]))

    def last_query_round(self) -> int | None:
        return self._conn.execute("SELECT MAX(round) FROM queries").fetchone()[0]

    def round_state(self, round_index: int) -> str | None:
        """``open``, ``closed``, ``trained``, or None for a round not asked yet."""
        row = self._conn.execute("SELECT state FROM queries WHERE round = ?", (round_index,)).fetchone()
        return None if row is None else row[0]

    def open_round(self) -> int | None:
        """The round whose query awaits answers, if any."""
        row = self._conn.execute("SELECT round FROM queries WHERE state = 'open'").fetchone()
        return None if row is None else int(row[0])

    def close_round(self, round_index: int) -> dict[int, int] | None:
        """Close round ``round_index`` if every item of it has an agreed label, and return the
        labels of every item asked up to it, read in the same transaction; None while some are
        missing or disputed. A round already closed (by a process that then died) returns its
        labels again: nothing can change them once closed.
        """
        with self._write() as conn:
            state = conn.execute("SELECT state FROM queries WHERE round = ?", (round_index,)).fetchone()
            if state is None:
                raise LedgerError(f"round {round_index} has no query")
            if state[0] == "open":
                if self._unsettled(conn, round_index):
                    return None
                conn.execute("UPDATE queries SET state = 'closed', closed_at = ? WHERE round = ?",
                             (utc_now(), round_index))
            rows = conn.execute(
                "SELECT a.item_id, a.label FROM adjudicated_labels a JOIN query_items q USING (item_id) "
                "WHERE q.round <= ? AND NOT a.disputed", (round_index,)
            ).fetchall()
        return {int(i): int(y) for i, y in rows}

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
        """Items of the round without an agreed label (unanswered or disputed), in rank order."""
        return np.array(self._unsettled(self._conn, round_index), dtype=np.int64)

    def disputed(self, round_index: int | None = None) -> np.ndarray:
        """Items whose current answers tie at the top (of one round, or of the whole run)."""
        sql = "SELECT a.item_id FROM adjudicated_labels a JOIN query_items q USING (item_id) WHERE a.disputed"
        args: tuple = ()
        if round_index is not None:
            sql += " AND q.round = ?"
            args = (round_index,)
        return np.array([r[0] for r in self._conn.execute(sql + " ORDER BY q.round, q.rank", args)], dtype=np.int64)

    @staticmethod
    def _unsettled(conn: sqlite3.Connection, round_index: int) -> list[int]:
        """Items of the round without an agreed label: unanswered, disputed, or (unless a lead
        decided them) answered by fewer annotators than they need (pilot and overlap items)."""
        rows = conn.execute(
            "SELECT q.item_id FROM query_items q LEFT JOIN adjudicated_labels a USING (item_id) "
            "WHERE q.round = ? AND (a.label IS NULL OR (q.needed > 1 "
            "AND q.item_id NOT IN (SELECT item_id FROM adjudications) "
            "AND (SELECT COUNT(DISTINCT annotator) FROM labels l WHERE l.item_id = q.item_id) < q.needed)) "
            "ORDER BY q.rank", (round_index,)
        ).fetchall()
        return [int(r[0]) for r in rows]

    def short_of_answers(self) -> set[int]:
        """Items of the open round answered by fewer annotators than they need (a running
        pilot's items, overlap items waiting for their second answer)."""
        rows = self._conn.execute(
            "SELECT q.item_id FROM query_items q JOIN queries r USING (round) WHERE r.state = 'open' AND q.needed > "
            "(SELECT COUNT(DISTINCT annotator) FROM labels l WHERE l.item_id = q.item_id)").fetchall()
        return {int(r[0]) for r in rows}

    def require_answers(self, needed: Mapping[int, int]) -> None:
        """Ask for ``needed[item]`` annotators' answers on items of the open round before it may
        close (a pilot asks every annotator, overlap two); a lead's decision settles an item
        whatever it has."""
        with self._write() as conn:
            self.require_answers_in(conn, needed)

    def require_answers_in(self, conn: sqlite3.Connection, needed: Mapping[int, int]) -> None:
        """:meth:`require_answers` inside a write transaction the caller holds."""
        row = conn.execute("SELECT round FROM queries WHERE state = 'open'").fetchone()
        asked = dict(select_in(conn, "SELECT item_id, round FROM query_items WHERE item_id IN", needed))
        bad = {int(i): "not in the open query" for i in needed if row is None or asked.get(int(i)) != row[0]}
        bad.update({int(i): f"needs at least one answer, not {n}" for i, n in needed.items() if int(n) < 1})
        if bad:
            raise LabelError(bad)
        conn.executemany("UPDATE query_items SET needed = ? WHERE item_id = ?",
                         [(int(n), int(i)) for i, n in needed.items()])

    # -- a validation set that people label ----------------------------------------------------
    def add_holdout(self, count: int, seed: int, keep: int = 0) -> np.ndarray:
        """Set ``count`` more random items aside as a validation set for people to label: drawn
        (seeded) from the items never asked, they are never asked in a round and never train.
        ``keep``: never-asked items the rounds still to come need (refused if fewer would remain)."""
        with self._write() as conn:
            taken = conn.execute("SELECT COUNT(*) FROM holdout").fetchone()[0]
            free = np.array([r[0] for r in conn.execute(
                "SELECT item_id FROM items WHERE item_id NOT IN (SELECT item_id FROM query_items) "
                "AND item_id NOT IN (SELECT item_id FROM holdout) ORDER BY item_id")], dtype=np.int64)
            if not 0 < count <= len(free) - keep:
                raise LedgerError(f"cannot hold out {count} items: {len(free)} were never asked, and the rounds "
                                  f"still to come need {keep} of them")
            chosen = np.random.default_rng([seed, taken, 7]).choice(free, size=count, replace=False)
            now = utc_now()
            conn.executemany("INSERT INTO holdout(item_id, rank, created_at) VALUES (?, ?, ?)",
                             [(int(i), taken + k, now) for k, i in enumerate(chosen)])
        return chosen

    def holdout_ids(self) -> np.ndarray:
        """The held-out validation items, in the order they were drawn."""
        rows = self._conn.execute("SELECT item_id FROM holdout ORDER BY rank").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def holdout_labels(self) -> dict[int, int]:
        """The agreed labels of the held-out items answered so far."""
        rows = self._conn.execute("SELECT a.item_id, a.label FROM adjudicated_labels a JOIN holdout h USING (item_id) "
                                  "WHERE NOT a.disputed").fetchall()
        return {int(i): int(y) for i, y in rows}

    def holdout_disputed(self) -> np.ndarray:
        """Held-out items whose answers tie at the top (a lead decides them)."""
        rows = self._conn.execute("SELECT a.item_id FROM adjudicated_labels a JOIN holdout h USING (item_id) "
                                  "WHERE a.disputed ORDER BY h.rank").fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def unavailable_ids(self) -> np.ndarray:
        """Items acquisition may not choose: asked in a round already, or held out."""
        return np.union1d(self.queried_ids(), self.holdout_ids())

    def query_round_of(self, item_ids: Iterable[int]) -> dict[int, int]:
        """The round in which each given item was asked (items never asked are absent)."""
        rows = select_in(self._conn, "SELECT item_id, round FROM query_items WHERE item_id IN", item_ids)
        return {int(i): int(r) for i, r in rows}

    def known_items(self, item_ids: Iterable[int]) -> set[int]:
        return {int(r[0]) for r in select_in(self._conn, "SELECT item_id FROM items WHERE item_id IN", item_ids)}

    # -- labels ---------------------------------------------------------------------------
    def submit(
        self, facts: list[LabelFact], n_classes: int | None = None, problems: Mapping[int, str] | None = None
    ) -> SubmitResult:
        """Validate and store answers in one transaction: all of them, or none and a LabelError.

        An answer is accepted for an item of the open round; for an item of a closed round only
        when it repeats the annotator's current answer (a harmless replay). The check and the
        write happen under one write lock, so a concurrent close cannot slip between them.
        ``problems`` found by the caller before (a class name it could not read) join the ones
        found here, so the error names every bad entry.
        """
        with self._write() as conn:
            return self.submit_in(conn, facts, n_classes, problems)

    def submit_in(
        self, conn: sqlite3.Connection, facts: list[LabelFact], n_classes: int | None = None,
        problems: Mapping[int, str] | None = None,
    ) -> SubmitResult:
        """:meth:`submit` inside a write transaction the caller holds (``transaction()``), so
        that other writes (a lease released, a request id recorded) commit with the answers."""
        found, plan = self._plan_facts(conn, facts, n_classes)
        found = {**(problems or {}), **found}
        if found:
            raise LabelError(found)
        added = superseded = 0
        now = utc_now()
        for fact, current, (rnd, acquisition, score) in plan:
            if current == fact.label:
                continue
            try:
                conn.execute(
                    "INSERT INTO labels(item_id, annotator, revision, label, round, source, acquisition, score, "
                    "guideline_version, model, created_at) "
                    "SELECT ?, ?, COALESCE(MAX(revision) + 1, 0), ?, ?, ?, ?, ?, ?, ?, ? "
                    "FROM labels WHERE item_id = ? AND annotator = ?",
                    (fact.item_id, fact.who, fact.label, rnd, fact.source, acquisition, score,
                     fact.guideline_version, fact.model, now, fact.item_id, fact.who),
                )
            except sqlite3.IntegrityError as exc:  # a rule kept in the database (a pilot's gate)
                raise LabelError({fact.item_id: str(exc)}) from exc
            added += current is None
            superseded += current is not None
        return SubmitResult(added, len(facts) - added - superseded, superseded)

    def _plan_facts(
        self, conn: sqlite3.Connection, facts: list[LabelFact], n_classes: int | None
    ) -> tuple[dict[int, str], list[tuple[LabelFact, int | None, tuple]]]:
        """Every problem with ``facts`` (item id -> reason), and for each distinct good fact the
        annotator's current answer and where the item was asked (round, acquisition, score)."""
        ids = [f.item_id for f in facts]
        row = conn.execute("SELECT round FROM queries WHERE state = 'open'").fetchone()
        open_round = None if row is None else row[0]
        asked = {int(r[0]): tuple(r[1:]) for r in select_in(
            conn, "SELECT qi.item_id, qi.round, q.acquisition, qi.score FROM query_items qi "
                  "JOIN queries q USING (round) WHERE qi.item_id IN", ids)}
        asked.update({int(r[0]): (HOLDOUT_ROUND, "holdout", None) for r in select_in(
            conn, "SELECT item_id FROM holdout WHERE item_id IN", ids)})
        known = {int(r[0]) for r in select_in(conn, "SELECT item_id FROM items WHERE item_id IN", ids)}
        problems: dict[int, str] = {}
        plan = []
        seen: dict[tuple[int, str], int] = {}
        for fact in facts:
            reason = _fact_problem(fact, known, asked, n_classes)
            key = (fact.item_id, fact.who)
            if reason is None and key in seen:
                if seen[key] != fact.label:
                    problems.setdefault(fact.item_id, "two different labels from one annotator in one submission")
                continue  # the same answer twice in one submission counts once
            current = None if reason else _current_answer(conn, fact)
            answerable = asked.get(fact.item_id, (None,))[0] in (open_round, HOLDOUT_ROUND)
            if reason is None and not answerable and current != fact.label:
                reason = f"not in the open query (asked in round {asked[fact.item_id][0]}, which is closed)"
            if reason is not None:
                problems.setdefault(fact.item_id, reason)
                continue
            seen[key] = fact.label
            plan.append((fact, current, asked[fact.item_id]))
        return problems, plan

    def adjudicate(self, decisions: Mapping[int, int], decided_by: str, reason: str | Mapping[int, str],
                   corrections: bool = False) -> None:
        """Settle items by decision: the latest decision on an item overrides its majority; the
        answers all stay. Items of the open round only (a lead resolving a dispute), unless
        ``corrections``: then items of any asked round (a lead fixing a label found in review),
        which training reads from the next round it trains. ``reason``: one for all, or one per item;
        all the decisions are written in one transaction, or none.
        """
        with self._write() as conn:
            row = conn.execute("SELECT round FROM queries WHERE state = 'open'").fetchone()
            asked = dict(select_in(conn, "SELECT item_id, round FROM query_items WHERE item_id IN", decisions))
            held = {int(r[0]) for r in select_in(conn, "SELECT item_id FROM holdout WHERE item_id IN", decisions)}
            if corrections:
                bad = {int(i): "never asked in this run" for i in decisions if int(i) not in asked and int(i) not in held}
            else:  # held-out items are always open to a decision
                bad = {int(i): "not in the open query" for i in decisions
                       if int(i) not in held and (row is None or asked.get(int(i)) != row[0])}
            if bad:
                raise LabelError(bad)
            now = utc_now()
            try:
                conn.executemany(
                    "INSERT INTO adjudications(item_id, label, decided_by, reason, created_at) VALUES (?, ?, ?, ?, ?)",
                    [(int(i), int(y), decided_by, reason if isinstance(reason, str) else reason[i], now)
                     for i, y in decisions.items()],
                )
            except sqlite3.IntegrityError as exc:  # a rule kept in the database (a running pilot)
                raise LabelError({"decision": str(exc)}) from exc

    def adjudicated(self, item_ids: Iterable[int] | None = None) -> dict[int, int]:
        """The agreed label of every item that has one (disputed items are left out)."""
        sql = "SELECT item_id, label FROM adjudicated_labels WHERE NOT disputed"
        if item_ids is None:
            rows: Iterable[tuple] = self._conn.execute(sql)
        else:
            rows = select_in(self._conn, sql + " AND item_id IN", item_ids)
        return {int(i): int(y) for i, y in rows}

    def current_answers(self, item_id: int) -> dict[str, int]:
        """Each annotator's current answer for one item."""
        rows = self._conn.execute("SELECT annotator, label FROM current_answers WHERE item_id = ?", (int(item_id),))
        return {str(a): int(y) for a, y in rows}

    def label_facts(self) -> list[dict]:
        cur = self._conn.execute("SELECT * FROM labels ORDER BY label_id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def label_count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM labels").fetchone()[0]

    # -- metrics --------------------------------------------------------------------------
    def record_metrics(self, round_index: int, record: dict) -> None:
        """Record a trained round's metrics and mark it trained, in one transaction.

        Recording again (resume republishes the last checkpoint's record) replaces the row.
        """
        with self._write() as conn:
            state = conn.execute("SELECT state FROM queries WHERE round = ?", (round_index,)).fetchone()
            if state is None or state[0] == "open":
                raise LedgerError(f"round {round_index} cannot be trained: it is {state[0] if state else 'not asked'}")
            conn.execute("INSERT OR REPLACE INTO metrics(round, record) VALUES (?, ?)",
                         (round_index, json.dumps(record)))
            if state[0] == "closed":
                conn.execute("UPDATE queries SET state = 'trained', trained_at = ? WHERE round = ?",
                             (utc_now(), round_index))

    def trained_rounds(self) -> set[int]:
        return {int(r[0]) for r in self._conn.execute("SELECT round FROM queries WHERE state = 'trained'")}

    def metrics(self) -> list[dict]:
        rows = self._conn.execute("SELECT record FROM metrics ORDER BY round").fetchall()
        return [json.loads(r[0]) for r in rows]


def _fact_problem(fact: LabelFact, known: set[int], asked: dict[int, tuple], n_classes: int | None) -> str | None:
    if fact.item_id not in known:
        return "unknown item"
    if fact.item_id not in asked:
        return "not in the open query (never asked)"
    if isinstance(fact.label, bool) or not isinstance(fact.label, (int, np.integer)) or fact.label < 0 or (
        n_classes is not None and fact.label >= n_classes
    ):
        limit = f"0..{n_classes - 1}" if n_classes else "a non-negative integer"
        return f"class {fact.label!r} is out of range ({limit})"
    return None


def _current_answer(conn: sqlite3.Connection, fact: LabelFact) -> int | None:
    row = conn.execute(
        "SELECT label FROM labels WHERE item_id = ? AND annotator = ? ORDER BY revision DESC LIMIT 1",
        (fact.item_id, fact.who),
    ).fetchone()
    return None if row is None else int(row[0])


def sql_statements(script: str) -> list[str]:
    return [s.strip() + ";" for s in _split_sql(script) if s.strip()]


def _split_sql(script: str) -> list[str]:
    """Split on the semicolons that end statements (trigger bodies hold inner ones)."""
    out, buf = [], []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        buf.append(line)
        joined = "\n".join(buf)
        if sqlite3.complete_statement(joined):
            out.append(joined.rstrip().rstrip(";"))
            buf = []
    return out


def select_in(conn: sqlite3.Connection, sql_prefix: str, values: Iterable[int]) -> Iterator[tuple]:
    """Runs ``sql_prefix (?, ?, ...)`` in chunks below SQLite's parameter limit."""
    values = [int(v) for v in values if _INT64_MIN <= int(v) <= _INT64_MAX]  # others match nothing
    for start in range(0, len(values), 900):
        chunk = values[start : start + 900]
        marks = ",".join("?" * len(chunk))
        yield from conn.execute(f"{sql_prefix} ({marks})", chunk)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """WAL mode, waiting for other connections: switching a database (one written by an older
    calkit) needs it to itself, and SQLite answers "locked" at once instead of calling the busy
    handler. Already in WAL, this is immediate."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    _switch_to_wal(conn)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _add_later_parts(ledger: Ledger) -> None:
    """Ledgers written before pilots, overlap and held-out items lack ``query_items.needed``
    (answers an item needs) and the ``holdout`` table: add them, once, with the old meaning
    (one answer each; nothing held out)."""
    def missing(conn: sqlite3.Connection) -> bool:
        needed = any(row[1] == "needed" for row in conn.execute("PRAGMA table_info(query_items)"))
        holdout = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'holdout'").fetchone() is not None
        return not (needed and holdout)

    if not missing(ledger._conn):
        return
    with ledger._write() as conn:
        if not any(row[1] == "needed" for row in conn.execute("PRAGMA table_info(query_items)")):
            conn.execute("ALTER TABLE query_items ADD COLUMN needed INTEGER NOT NULL DEFAULT 1 CHECK (needed >= 1)")
        for statement in sql_statements(_HOLDOUT):
            conn.execute(statement)


def _upgrade_from_v1(ledger: Ledger) -> None:
    """Bring a calkit 0.2 ledger to schema 2 in one transaction, keeping every fact.

    Schema 1 took the latest fact per item; anonymous facts become ANONYMOUS, each annotator's
    facts on an item get revisions in the order they were written, and rounds with metrics are
    trained (the others stay open, to be closed by the next advance).
    """
    with ledger._write() as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or json.loads(row[0]) != 1:  # another process upgraded it meanwhile
            return
        old_view = dict(conn.execute(  # what trained rounds trained on; open rounds may still change
            "SELECT c.item_id, c.label FROM current_labels c JOIN query_items q USING (item_id) "
            "WHERE q.round IN (SELECT round FROM metrics)").fetchall())
        for old in ("labels_no_update", "labels_no_delete"):
            conn.execute(f"DROP TRIGGER IF EXISTS {old}")
        conn.execute("DROP VIEW IF EXISTS current_labels")
        conn.execute("DROP INDEX IF EXISTS labels_by_item")
        conn.execute("ALTER TABLE labels RENAME TO labels_v1")
        conn.execute(_LABELS)
        conn.execute(
            "INSERT INTO labels(label_id, item_id, annotator, revision, label, round, source, acquisition, score, "
            "guideline_version, model, created_at) "
            "SELECT label_id, item_id, COALESCE(annotator, ?), "
            "ROW_NUMBER() OVER (PARTITION BY item_id, COALESCE(annotator, ?) ORDER BY label_id) - 1, "
            "label, round, source, acquisition, score, guideline_version, model, created_at FROM labels_v1",
            (ANONYMOUS, ANONYMOUS),
        )
        conn.execute("DROP TABLE labels_v1")
        for column in ("state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed', 'trained'))",
                       "closed_at TEXT", "trained_at TEXT"):
            conn.execute(f"ALTER TABLE queries ADD COLUMN {column}")
        conn.execute("UPDATE queries SET state = 'trained' WHERE round IN (SELECT round FROM metrics)")
        conn.execute("CREATE UNIQUE INDEX one_open_round ON queries(state) WHERE state = 'open'")
        conn.execute(_ADJUDICATIONS)
        for statement in sql_statements(_RULES_AND_VIEWS):
            conn.execute(statement)
        # Schema 1 trained on the latest fact per item; where the majority view reads otherwise
        # (several annotators on one item), an adjudication keeps the label it trained on.
        majority = dict(conn.execute("SELECT item_id, label FROM majority_labels").fetchall())
        now = utc_now()
        conn.executemany(
            "INSERT INTO adjudications(item_id, label, decided_by, reason, created_at) VALUES (?, ?, ?, ?, ?)",
            [(item, label, UPGRADE, "the latest answer, which calkit 0.2 trained on", now)
             for item, label in sorted(old_view.items()) if majority.get(item) != label],
        )
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (json.dumps(SCHEMA_VERSION),))
