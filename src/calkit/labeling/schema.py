"""The labeling desk's tables, kept in the run's ledger (ledger.sqlite) beside the label facts.

They are created on first use (CREATE ... IF NOT EXISTS inside a write transaction), so a run
made before the desk existed gains them when a desk first opens it. Nothing here is read by
training: what trains is still the ledger's adjudicated view of the label facts.
"""

from __future__ import annotations

from calkit.ledger import Ledger, sql_statements

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
    item_id INTEGER NOT NULL REFERENCES items(item_id),
    annotator TEXT NOT NULL,
    round INTEGER NOT NULL,
    undo INTEGER NOT NULL DEFAULT 0,
    leased_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (item_id, annotator)
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
-- Settings a lead changes while people label (the overlap share), as JSON values.
CREATE TABLE IF NOT EXISTS desk_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- What the desk decided when it first served a round (how many items need two answers).
CREATE TABLE IF NOT EXISTS round_setup (
    round INTEGER PRIMARY KEY,
    overlap_share REAL NOT NULL,
    overlap_items INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
-- Pilots (calkit.labeling.pilot): while the newest is running or failed, only its items take answers.
CREATE TABLE IF NOT EXISTS pilots (
    pilot_id INTEGER PRIMARY KEY AUTOINCREMENT,
    round INTEGER NOT NULL,
    raters TEXT NOT NULL,
    threshold REAL NOT NULL,
    guideline_version TEXT,
    started_by TEXT NOT NULL,
    started_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'passed', 'failed', 'opened')),
    alpha REAL,
    decided_by TEXT,
    decided_at TEXT,
    reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_running_pilot ON pilots(state) WHERE state = 'running';
CREATE TABLE IF NOT EXISTS pilot_items (
    pilot_id INTEGER NOT NULL REFERENCES pilots(pilot_id),
    item_id INTEGER NOT NULL REFERENCES items(item_id),
    PRIMARY KEY (pilot_id, item_id)
);
CREATE TRIGGER IF NOT EXISTS pilot_gate_v2 BEFORE INSERT ON labels
WHEN (SELECT state FROM pilots ORDER BY pilot_id DESC LIMIT 1) IN ('running', 'failed')
 AND (NEW.item_id NOT IN (SELECT item_id FROM pilot_items WHERE pilot_id = (SELECT MAX(pilot_id) FROM pilots))
      OR NEW.annotator NOT IN (SELECT value FROM json_each((SELECT raters FROM pilots ORDER BY pilot_id DESC LIMIT 1)))
      OR NEW.annotator IN (SELECT name FROM annotators WHERE revoked_at IS NOT NULL))
BEGIN SELECT RAISE(ABORT, 'the pilot''s agreement gate is closed: only its items take answers, from its raters, until it passes or the lead opens it'); END;
-- The stored label review (calkit.labeling.review_queue), most suspect first.
CREATE TABLE IF NOT EXISTS review_queue (
    item_id INTEGER PRIMARY KEY REFERENCES items(item_id),
    rank INTEGER NOT NULL,
    round INTEGER NOT NULL,
    given INTEGER NOT NULL,
    likely INTEGER NOT NULL,
    self_confidence REAL NOT NULL,
    confident INTEGER NOT NULL,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL
);
-- A running pilot measures its raters: no decision may settle one of its items before they answered.
CREATE TRIGGER IF NOT EXISTS pilot_items_undecided BEFORE INSERT ON adjudications
WHEN (SELECT state FROM pilots ORDER BY pilot_id DESC LIMIT 1) = 'running'
 AND NEW.item_id IN (SELECT item_id FROM pilot_items WHERE pilot_id = (SELECT MAX(pilot_id) FROM pilots))
BEGIN SELECT RAISE(ABORT, 'a running pilot''s items are decided by its raters'' answers: wait for the pilot, or open the gate'); END;
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
        for statement in sql_statements(_DESK_TABLES):
            conn.execute(statement)
        # desks of the first 0.4 development builds
        columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
        if "request" not in columns:
            conn.execute("ALTER TABLE requests ADD COLUMN request TEXT NOT NULL DEFAULT ''")
        conn.execute("DROP TRIGGER IF EXISTS pilot_gate")  # the first gate let anyone answer pilot items
        lease_key = [row[1] for row in conn.execute("PRAGMA table_info(leases)") if row[5]]
        if lease_key == ["item_id"]:  # one lease per item: pilots and overlap lease an item to several
            conn.execute("DROP TABLE leases")  # leases are not facts: at worst someone asks again
            conn.execute(next(s for s in sql_statements(_DESK_TABLES) if "TABLE IF NOT EXISTS leases" in s))
        columns = {row[1] for row in conn.execute("PRAGMA table_info(questions)")}
        for name in ("guideline_version", "answer", "answered_by", "answered_at"):
            if name not in columns:
                conn.execute(f"ALTER TABLE questions ADD COLUMN {name} TEXT")
