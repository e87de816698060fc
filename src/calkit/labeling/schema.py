"""The labeling desk's tables, kept in the run's ledger (ledger.sqlite) beside the label facts.

They are created on first use (CREATE ... IF NOT EXISTS inside a write transaction), so a run
made before the desk existed gains them when a desk first opens it. Nothing here is read by
training: what trains is still the ledger's adjudicated view of the label facts.
"""

from __future__ import annotations

from calkit.ledger import Ledger

_DESK_TABLES = """
-- The desk reads one round's answers at a time (the ledger's views scan every label).
CREATE INDEX IF NOT EXISTS labels_by_round ON labels(round);
CREATE TABLE IF NOT EXISTS annotators (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('lead', 'annotator')),
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    session_hash TEXT PRIMARY KEY,
    annotator TEXT NOT NULL REFERENCES annotators(name),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    item_id INTEGER PRIMARY KEY REFERENCES items(item_id),
    annotator TEXT NOT NULL,
    round INTEGER NOT NULL,
    undo INTEGER NOT NULL DEFAULT 0,
    leased_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    annotator TEXT NOT NULL,
    request_id TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (annotator, request_id)
);
CREATE TABLE IF NOT EXISTS skips (
    skip_id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items(item_id),
    annotator TEXT NOT NULL,
    round INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (item_id, annotator)
);
CREATE TABLE IF NOT EXISTS suggestions (
    item_id INTEGER PRIMARY KEY REFERENCES items(item_id),
    label INTEGER NOT NULL,
    probability REAL NOT NULL,
    model_round INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS guidelines (
    version INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    author TEXT NOT NULL,
    note TEXT
);
CREATE TABLE IF NOT EXISTS questions (
    question_id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items(item_id),
    annotator TEXT NOT NULL,
    round INTEGER,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    guideline_version TEXT,
    answer TEXT,
    answered_by TEXT,
    answered_at TEXT
);
"""


def ensure_desk_tables(ledger: Ledger) -> None:
    """Create the desk's tables if this run has none yet (idempotent, safe from several processes)."""
    with ledger.transaction() as conn:
        for statement in _DESK_TABLES.split(";"):
            if statement.strip():
                conn.execute(statement)
        # desks of the first 0.4 development builds
        columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
        if "request" not in columns:
            conn.execute("ALTER TABLE requests ADD COLUMN request TEXT NOT NULL DEFAULT ''")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(questions)")}
        for name in ("guideline_version", "answer", "answered_by", "answered_at"):
            if name not in columns:
                conn.execute(f"ALTER TABLE questions ADD COLUMN {name} TEXT")
