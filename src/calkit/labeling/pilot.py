"""A pilot with an agreement gate (DMOps step 5): before labeling scales up, every annotator
labels the same few items, blind to the others; scale-up opens when Krippendorff's alpha reaches
a threshold, or when the lead opens it with a written reason.

The gate is a rule in the run's database, not only in the screen: while the newest pilot is
running or failed, a trigger refuses every label fact on an item outside it, from whatever
writer (the desk, the API, an answers file). The raters are fixed when the pilot starts, so
"everyone has answered" has one meaning; each pilot item needs all their answers before its
round can close. After a guideline change the lead starts another pilot, on fresh items.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass

from calkit import agreement
from calkit.labeling.refusal import Refused
from calkit.labeling.rounds import open_round
from calkit.labeling.schema import ensure_desk_tables
from calkit.ledger import utc_now

#: Items in a pilot unless the lead says otherwise (DMOps: "about ten").
DEFAULT_PILOT_ITEMS = 10
#: Krippendorff's alpha at which the gate opens by itself (Krippendorff: rely on data with
#: alpha >= 0.8; 0.667 at the lowest for tentative conclusions).
DEFAULT_THRESHOLD = 0.8
#: The newest pilot's states under which only its items take answers.
GATE_CLOSED = ("running", "failed")



@dataclass(frozen=True)
class Pilot:
    pilot_id: int
    round: int
    raters: list[str]
    items: list[int]
    threshold: float
    guideline_version: str | None
    started_by: str
    started_at: str
    state: str
    alpha: float | None
    decided_by: str | None
    decided_at: str | None
    reason: str | None

    @property
    def gate_closed(self) -> bool:
        return self.state in GATE_CLOSED

    def to_dict(self) -> dict:
        return {**asdict(self), "gate_closed": self.gate_closed}


def start(run, started_by: str, n_items: int = DEFAULT_PILOT_ITEMS, threshold: float = DEFAULT_THRESHOLD,
          raters: list[str] | None = None) -> Pilot:
    """Start a pilot on the first ``n_items`` unanswered items of the open round, for every
    active annotator (or the named ``raters``). Leases of the round are dropped, so that
    everyone's next item is a pilot item."""
    if isinstance(n_items, bool) or not isinstance(n_items, int) or not 2 <= n_items <= 1000:
        raise Refused(422, "bad_pilot_size", "a pilot has 2 to 1000 items")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1.0 <= threshold <= 1.0:
        raise Refused(422, "bad_threshold", "the agreement threshold is an alpha between -1 and 1")
    ensure_desk_tables(run._ledger)
    with run._ledger.transaction() as conn:
        if conn.execute("SELECT 1 FROM pilots WHERE state = 'running'").fetchone():
            raise Refused(409, "pilot_running", "a pilot is running: wait for its answers, or open the gate")
        round_index = open_round(conn)
        if round_index is None:
            raise Refused(409, "no_open_round", "no round is open (one is training): start the pilot when the "
                             "next round's items are out")
        chosen = _raters(conn, raters, run.path)
        free = [r[0] for r in conn.execute(
            "SELECT item_id FROM query_items WHERE round = ? AND item_id NOT IN (SELECT item_id FROM labels) "
            "AND item_id NOT IN (SELECT item_id FROM adjudications) AND item_id NOT IN (SELECT item_id FROM skips) "
            "ORDER BY rank LIMIT ?", (round_index, n_items))]
        if len(free) < n_items:
            raise Refused(409, "too_few_items", f"round {round_index} has {len(free)} items nobody answered or skipped yet; "
                             f"a pilot of {n_items} needs that many")
        run._ledger.require_answers_in(conn, {item: len(chosen) for item in free})
        version = conn.execute("SELECT MAX(version) FROM guidelines").fetchone()[0]
        cur = conn.execute("INSERT INTO pilots(round, raters, threshold, guideline_version, started_by, started_at) "
                           "VALUES (?, ?, ?, ?, ?, ?)", (round_index, json.dumps(chosen), float(threshold),
                                                         None if version is None else f"v{version}", started_by,
                                                         utc_now()))
        conn.executemany("INSERT INTO pilot_items(pilot_id, item_id) VALUES (?, ?)",
                         [(cur.lastrowid, item) for item in free])
        conn.execute("DELETE FROM leases WHERE round = ?", (round_index,))
        return _read(conn, cur.lastrowid)


def newest(conn: sqlite3.Connection, settle: bool = False) -> Pilot | None:
    """The newest pilot; with ``settle`` (inside a write transaction), decided first if it is
    running and every rater has answered every item of it."""
    row = conn.execute("SELECT MAX(pilot_id) FROM pilots").fetchone()
    if row[0] is None:
        return None
    pilot = _read(conn, row[0])
    if settle and pilot.state == "running" and _complete(conn, pilot):
        _settle(conn, pilot)
        pilot = _read(conn, pilot.pilot_id)
    return pilot


def open_gate(run, lead: str, reason: object) -> Pilot:
    """The lead opens scale-up without the agreement the threshold asks for, for a written
    reason that the pilot keeps. Pilot items then need one answer like any other."""
    if not isinstance(reason, str) or not reason.strip():
        raise Refused(422, "bad_reason", "opening the gate needs a written reason")
    ensure_desk_tables(run._ledger)
    with run._ledger.transaction() as conn:
        pilot = newest(conn, settle=True)
        if pilot is None or not pilot.gate_closed:
            raise Refused(409, "gate_open", "no pilot holds the gate closed")
        alpha = agreement.krippendorff_alpha(answers(conn, pilot))
        conn.execute("UPDATE pilots SET state = 'opened', alpha = ?, decided_by = ?, decided_at = ?, reason = ? "
                     "WHERE pilot_id = ?", (alpha, lead, utc_now(), reason.strip()[:2000], pilot.pilot_id))
        _release(conn, pilot)
        return _read(conn, pilot.pilot_id)


def answers(conn: sqlite3.Connection, pilot: Pilot) -> dict[int, dict[str, int]]:
    """Each rater's current answer on each pilot item (answers of non-raters are left out)."""
    found: dict[int, dict[str, int]] = {item: {} for item in pilot.items}
    marks = ",".join("?" * len(pilot.items))
    for item, who, label in conn.execute(f"SELECT item_id, annotator, label FROM labels WHERE item_id IN ({marks}) "
                                         "ORDER BY revision", pilot.items):
        if who in pilot.raters:
            found[item][who] = label
    return found


def report(run, pilot_id: int | None = None) -> dict | None:
    """A pilot in full: its state, each rater's progress, the agreement (alpha, Fleiss' kappa,
    pairwise Cohen's kappa, raw agreement), and every disputed item with each answer and every
    question asked on it."""
    ensure_desk_tables(run._ledger)
    with run._ledger.transaction() as conn:
        pilot = newest(conn, settle=True) if pilot_id is None else _read(conn, pilot_id)
        if pilot is None:
            return None
        given = answers(conn, pilot)
        active = _active_raters(conn, pilot)
        earlier = _summaries(conn, before=pilot.pilot_id)
        questions = conn.execute(
            f"SELECT item_id, annotator, text, answer FROM questions WHERE item_id IN "
            f"({','.join('?' * len(pilot.items))}) ORDER BY question_id", pilot.items).fetchall()
    names = run.class_names
    stats = agreement.summary(given, len(names))
    disputed = [{"item_id": item, "answers": {who: names[y] for who, y in sorted(given[item].items())},
                 "questions": [{"annotator": a, "text": t, "answer": ans} for i, a, t, ans in questions if i == item]}
                for item in pilot.items if item in set(stats.disputed)]  # in rank order
    progress = {who: sum(who in votes for votes in given.values()) for who in pilot.raters}
    return {**pilot.to_dict(), "agreement": stats.to_dict(), "answered": progress, "disputed_items": disputed,
            "revoked_raters": sorted(set(pilot.raters) - set(active)), "earlier": earlier}


def running_items(conn: sqlite3.Connection) -> frozenset[int]:
    """The items of the pilot running now (none when no pilot runs)."""
    rows = conn.execute("SELECT item_id FROM pilot_items WHERE pilot_id = (SELECT MAX(pilot_id) FROM pilots) "
                        "AND (SELECT state FROM pilots ORDER BY pilot_id DESC LIMIT 1) = 'running'").fetchall()
    return frozenset(r[0] for r in rows)


def gate_note(run) -> str | None:
    """One line on a closed gate for commands that know nothing of pilots (status, query), or
    None when labeling is open. Reads only: it creates no table."""
    conn = run._ledger._conn
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'pilots'").fetchone() is None:
        return None
    with run._ledger.snapshot() as snap:
        pilot = newest(snap)
    if pilot is None or not pilot.gate_closed:
        return None
    if pilot.state == "failed":
        return (f"pilot {pilot.pilot_id} failed its agreement gate (alpha {_shown(pilot.alpha)} < {pilot.threshold:g}): "
                f"nothing can be labeled until the lead starts another pilot or opens the gate "
                f"(calkit pilot {run.path} open --reason ...)")
    return (f"pilot {pilot.pilot_id} is running: only its {len(pilot.items)} items take answers, from "
            f"{', '.join(pilot.raters)}, until its agreement gate opens (calkit pilot {run.path} status)")


def _shown(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def history(run) -> list[dict]:
    """Every pilot, newest first: state, alpha, who decided and why."""
    ensure_desk_tables(run._ledger)
    with run._ledger.snapshot() as conn:
        return _summaries(conn)


def _summaries(conn: sqlite3.Connection, before: int | None = None) -> list[dict]:
    """The pilots (those before pilot ``before``), newest first, each as :func:`_summary`."""
    ids = [r[0] for r in conn.execute("SELECT pilot_id FROM pilots WHERE ? IS NULL OR pilot_id < ? "
                                      "ORDER BY pilot_id DESC", (before, before))]
    return [_summary(_read(conn, i)) for i in ids]


def _summary(pilot: Pilot) -> dict:
    return {key: getattr(pilot, key) for key in ("pilot_id", "round", "state", "alpha", "threshold",
                                                 "guideline_version", "decided_by", "decided_at", "reason")} | {
        "items": len(pilot.items), "raters": pilot.raters}


def _raters(conn: sqlite3.Connection, raters: list[str] | None, run_path) -> list[str]:
    active = [r[0] for r in conn.execute("SELECT name FROM annotators WHERE role = 'annotator' AND revoked_at IS NULL "
                                         "ORDER BY name")]
    if raters is not None:
        unknown = sorted(set(raters) - set(active))
        if unknown:
            raise Refused(422, "unknown_rater", f"not an active annotator: {', '.join(unknown)}")
        active = sorted(set(raters))
    if len(active) < 2:
        raise Refused(409, "too_few_raters", "a pilot needs at least two active annotators (add them with "
                      f"`calkit annotators add {run_path} NAME`)")
    return active


def _active_raters(conn: sqlite3.Connection, pilot: Pilot) -> list[str]:
    """The pilot's raters whose accounts are still active (a revoked rater no longer holds it up)."""
    active = {r[0] for r in conn.execute("SELECT name FROM annotators WHERE revoked_at IS NULL")}
    return [who for who in pilot.raters if who in active]


def _complete(conn: sqlite3.Connection, pilot: Pilot) -> bool:
    waiting_for = _active_raters(conn, pilot)
    return all(all(who in votes for who in waiting_for) for votes in answers(conn, pilot).values())


def _settle(conn: sqlite3.Connection, pilot: Pilot) -> None:
    """Decide a pilot whose answers are all in: alpha at the threshold passes. Where alpha is
    undefined because every answer was one and the same class, nobody disagreed: it passes too
    (raw agreement 1), and the report says alpha is undefined. Pilot items then need one
    answer like any other (they have theirs)."""
    given = answers(conn, pilot)
    alpha = agreement.krippendorff_alpha(given)
    unanimous = alpha is None and agreement.raw_agreement(given) == 1.0
    state = "passed" if unanimous or (alpha is not None and alpha >= pilot.threshold) else "failed"
    conn.execute("UPDATE pilots SET state = ?, alpha = ?, decided_by = 'agreement', decided_at = ? WHERE pilot_id = ?",
                 (state, alpha, utc_now(), pilot.pilot_id))
    _release(conn, pilot)


def _release(conn: sqlite3.Connection, pilot: Pilot) -> None:
    """A decided pilot's items need one answer like any other, and nobody holds them any more
    (three live leases on an item that now needs one answer would give it three)."""
    conn.executemany("UPDATE query_items SET needed = 1 WHERE item_id = ?", [(i,) for i in pilot.items])
    conn.executemany("DELETE FROM leases WHERE item_id = ?", [(i,) for i in pilot.items])


def _read(conn: sqlite3.Connection, pilot_id: int) -> Pilot:
    row = conn.execute("SELECT pilot_id, round, raters, threshold, guideline_version, started_by, started_at, state, "
                       "alpha, decided_by, decided_at, reason FROM pilots WHERE pilot_id = ?", (pilot_id,)).fetchone()
    if row is None:
        raise Refused(404, "unknown_pilot", f"no pilot {pilot_id}")
    items = [r[0] for r in conn.execute("SELECT p.item_id FROM pilot_items p JOIN query_items q USING (item_id) "
                                        "WHERE p.pilot_id = ? ORDER BY q.rank", (pilot_id,))]
    return Pilot(row[0], row[1], json.loads(row[2]), items, *row[3:])

