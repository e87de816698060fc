"""The labeling desk: who labels which item now, and what each answer did.

Every queued item is leased to one annotator at a time. A lease expires after
``lease_seconds``; an expired lease stays its holder's until someone else is given the item, so
a slow answer is still accepted when nobody was waiting for it. Every state-changing call
carries a request id: the first call's response is stored in the same transaction as its
effect, and a repeat returns it unchanged (a client retrying after a lost response changes
nothing). An answer is acknowledged only after that transaction committed.

Undo walks back through the annotator's answers in the open round: the item comes back to
them (leased, flagged as an undo) showing their answer, and a new answer supersedes it; the
earlier one stays in the ledger. While such a lease lives the worker does not close the round.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

from calkit.answers import class_index
from calkit.errors import LabelError
from calkit.labeling import pilot as pilots
from calkit.labeling.questions import QuestionLog
from calkit.labeling.refusal import Refused
from calkit.labeling.rounds import (DEFAULT_OVERLAP, Restriction, next_for, next_holdout, open_round,
                                   prepare_overlap, round_view)
from calkit.labeling.schema import ensure_desk_tables
from calkit.labeling.suggestions import Suggestions
from calkit.ledger import HOLDOUT_ROUND, LabelFact, utc_now

#: Seconds an item stays leased to one annotator before it may go to another.
DEFAULT_LEASE_SECONDS = 300
#: Longest skip reason or question, in characters.
MAX_TEXT = 2000
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
#: Questions one annotator may ask per window (a flood would bury the others' in the lead's log).
MAX_QUESTIONS_PER_WINDOW = 30
QUESTION_WINDOW_MINUTES = 10
#: The source recorded with answers given at the desk (files say "file", the API "api").
SOURCE = "desk"


@dataclass(frozen=True)
class Lease:
    """An item leased to an annotator: show it, then answer, skip or let it expire."""

    item_id: int
    round: int
    rank: int
    expires_at: float
    undo: bool = False
    your_answer: int | None = None  #: on an undo: the answer being taken back


@dataclass(frozen=True)
class Progress:
    """How far labeling is: the open round, the whole budget, and one annotator's share."""

    round: int | None
    round_size: int
    round_settled: int
    budget: int
    labeled: int
    yours_total: int
    yours_round: int
    leased: int

    def to_dict(self) -> dict:
        return asdict(self)


class Desk:
    """Leases, answers, skips, undo and questions for one run (a :class:`calkit.Run`)."""

    def __init__(self, run, lease_seconds: float = DEFAULT_LEASE_SECONDS, clock=time.time):
        self.run = run
        self.ledger = run._ledger
        self.lease_seconds = float(lease_seconds)
        self.clock = clock
        ensure_desk_tables(self.ledger)
        self.questions = QuestionLog(self.ledger)
        self.suggestions = Suggestions(self.ledger, run.class_names)

    # -- leasing -------------------------------------------------------------------------------
    def next(self, annotator: str) -> Lease | None:
        """The item this annotator should label now, leased to them; None when there is none
        for them (see :meth:`why_none`). Asking again returns the same item while it is theirs.
        Held-out validation items come first (also while a round trains), then the open round's."""
        now = self.clock()
        with self.ledger.transaction() as conn:
            round_index = open_round(conn)
            conn.execute("DELETE FROM leases WHERE round != ? AND round != ?",  # rounds closed since
                         (HOLDOUT_ROUND if round_index is None else round_index, HOLDOUT_ROUND))
            mine = conn.execute("SELECT item_id FROM leases WHERE annotator = ? AND undo = 1 AND expires_at >= ?",
                                (annotator, now)).fetchone()
            if mine is not None:
                return self._lease_row(conn, mine[0], annotator)
            restriction = _restriction(conn)
            row, lease_round = (None if restriction else next_holdout(conn, annotator, now)), HOLDOUT_ROUND
            if row is None and round_index is not None:
                prepare_overlap(conn, round_index, self.overlap)
                row, lease_round = next_for(conn, round_index, annotator, now, restriction), round_index
            conn.execute("DELETE FROM leases WHERE annotator = ? AND (? IS NULL OR item_id != ?)",
                         (annotator, None if row is None else row[0], None if row is None else row[0]))
            if row is None:
                return None
            item_id, rank = row
            conn.execute("DELETE FROM leases WHERE item_id = ? AND annotator != ? AND expires_at < ?",
                         (item_id, annotator, now))  # whoever let it expire lost it
            conn.execute(
                "INSERT INTO leases(item_id, annotator, round, undo, leased_at, expires_at) VALUES (?, ?, ?, 0, ?, ?) "
                "ON CONFLICT(item_id, annotator) DO UPDATE SET round = excluded.round, undo = 0, "
                "leased_at = excluded.leased_at, expires_at = excluded.expires_at",
                (item_id, annotator, lease_round, now, now + self.lease_seconds))
            return Lease(int(item_id), lease_round, int(rank), now + self.lease_seconds)

    @property
    def overlap(self) -> float:
        """Share of each later round's top-ranked items that go to two annotators."""
        row = self.ledger._conn.execute("SELECT value FROM desk_settings WHERE key = 'overlap'").fetchone()
        return DEFAULT_OVERLAP if row is None else float(json.loads(row[0]))

    def set_overlap(self, share: float) -> None:
        """Change the overlap share for rounds not served yet (a round begun keeps its own)."""
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise Refused(422, "bad_overlap", f"the overlap is a share between 0 and 1, got {share!r}")
        with self.ledger.transaction() as conn:
            conn.execute("INSERT INTO desk_settings(key, value) VALUES ('overlap', ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (json.dumps(float(share)),))

    def why_none(self, annotator: str) -> str:
        """Why :meth:`next` has nothing for this annotator, in words for the screen."""
        with self.ledger.snapshot() as conn:
            round_index = open_round(conn)
            if round_index is None:
                trained = conn.execute("SELECT COUNT(*) FROM queries WHERE state = 'trained'").fetchone()[0]
                if trained >= len(self.run.plan):
                    return "The run is complete: every round is labeled and trained."
                return f"Round {trained} is training; its next items come when it is done."
            pilot = pilots.newest(conn)
            if pilot is not None and pilot.state == "failed":
                return (f"The pilot's agreement (alpha {_number(pilot.alpha)}) is below {pilot.threshold:g}: labeling "
                        "waits while the lead revises the guideline, starts another pilot or opens the gate.")
            if pilot is not None and pilot.state == "running":
                if annotator not in pilot.raters:
                    return "A pilot is running among the annotators who were there when it started; labeling opens after it."
                return ("You answered every pilot item. Labeling opens when everyone has, if the answers agree "
                        f"well enough (Krippendorff's alpha at least {pilot.threshold:g}).")
            view = round_view(conn, round_index)
            left = len(view.ranks) - len(view.settled)
            leased = conn.execute("SELECT COUNT(*) FROM leases WHERE round = ? AND annotator != ? AND expires_at >= ?",
                                  (round_index, annotator, self.clock())).fetchone()[0]
        if left == 0:
            return f"Round {round_index} has all its labels; the model trains on them next."
        if leased:
            return (f"The {left} items left in round {round_index} are with other annotators or were skipped by you; "
                    "an item comes back here if its lease expires.")
        return (f"You answered or skipped every item left in round {round_index} ({left} still "
                f"need{'s' if left == 1 else ''} an answer "
                "from someone else, or the lead's decision).")

    def pilot(self) -> pilots.Pilot | None:
        """The newest pilot (decided first if all its answers are in), or None."""
        with self.ledger.transaction() as conn:
            return pilots.newest(conn, settle=True)

    # -- answers ---------------------------------------------------------------------------------
    def submit(self, annotator: str, item_id: object, label: object, request_id: object,
               guideline_version: str | None = None) -> dict:
        """Answer a leased item; returns what was stored (repeated request ids return the first answer).
        The answer records ``guideline_version``, by default the run's current guideline version."""
        item = _item_id(item_id)

        def answer(conn: sqlite3.Connection) -> dict:
            self._require_lease(conn, annotator, item)
            index, why = class_index(label, self.run.class_names)
            if index is None:
                raise Refused(422, "bad_label", (why or "unknown class")[:300])
            followed = guideline_version or _current_guideline(conn)
            fact = LabelFact(item, index, source=SOURCE, annotator=annotator, guideline_version=followed)
            try:
                result = self.ledger.submit_in(conn, [fact], n_classes=len(self.run.class_names))
            except LabelError as exc:
                raise Refused(409, "not_accepted", "; ".join(str(v) for v in exc.problems.values()),
                              {str(k): v for k, v in exc.problems.items()}) from exc
            conn.execute("DELETE FROM leases WHERE item_id = ? AND annotator = ?", (item, annotator))
            pilots.newest(conn, settle=True)
            effect = "added" if result.added else "superseded" if result.superseded else "unchanged"
            return {"item_id": item, "label": self.run.class_names[index], "label_index": index,
                    "round": _round_of(conn, item), "stored": effect, "committed": True, "guideline": followed}

        return self._once(annotator, request_id, ["label", item, label], answer)

    def skip(self, annotator: str, item_id: object, reason: object, request_id: object) -> dict:
        """Pass on a leased item, with a reason; it goes to someone else, and the lead sees the reason."""
        item = _item_id(item_id)
        why = _text(reason, "reason")

        def record(conn: sqlite3.Connection) -> dict:
            lease = self._require_lease(conn, annotator, item)
            if item in pilots.running_items(conn):
                raise Refused(409, "pilot_item", "a pilot item needs every rater's answer: give your best guess "
                              "(and ask the lead a question with it if the guideline leaves you unsure)")
            if lease[2]:
                raise Refused(409, "undo_in_progress", "you are taking back your answer: choose a class to replace "
                              "it (skipping would keep it)")
            conn.execute("INSERT INTO skips(item_id, annotator, round, reason, created_at) VALUES (?, ?, ?, ?, ?) "
                         "ON CONFLICT(item_id, annotator) DO UPDATE SET reason = excluded.reason",
                         (item, annotator, lease[0], why, utc_now()))
            conn.execute("DELETE FROM leases WHERE item_id = ? AND annotator = ?", (item, annotator))
            return {"item_id": item, "skipped": True, "reason": why}

        return self._once(annotator, request_id, ["skip", item, why], record)

    def undo(self, annotator: str, request_id: object) -> Lease:
        """Bring back the annotator's previous answer in the open round (again: the one before).

        Refused once the round has all its labels: the worker then trains it, and a stream of
        undos could otherwise hold it open for ever (an undo lease already held ends with its time).
        """
        now = self.clock()

        def take_back(conn: sqlite3.Connection) -> dict:
            round_index = open_round(conn)
            if round_index is None:
                raise Refused(409, "nothing_to_undo", "no round is open: answers of a closed round cannot change")
            view = round_view(conn, round_index)
            if len(view.settled) == len(view.ranks):
                raise Refused(409, "round_complete", f"round {round_index} has all its labels and trains next; "
                              "ask the lead to correct an answer")
            held = conn.execute("SELECT item_id FROM leases WHERE annotator = ? AND undo = 1 AND round IN (?, ?)",
                                (annotator, round_index, HOLDOUT_ROUND)).fetchone()
            before = _first_answer_id(conn, held[0], annotator) if held else None
            row = conn.execute(
                "SELECT f.item_id, f.first_id FROM (SELECT item_id, MIN(label_id) AS first_id FROM labels "
                "WHERE annotator = ? AND round IN (?, ?) GROUP BY item_id) f WHERE (? IS NULL OR f.first_id < ?) "
                "ORDER BY f.first_id DESC LIMIT 1", (annotator, round_index, HOLDOUT_ROUND, before, before)).fetchone()
            if row is None:
                raise Refused(409, "nothing_to_undo", "you have no earlier answer in the open round")
            item = int(row[0])
            gate = _restriction(conn)
            if gate is not None and item not in gate.items:
                raise Refused(409, "nothing_to_undo", "while the pilot's gate is closed, only pilot answers can be "
                              "taken back, and you have no earlier one")
            other = conn.execute("SELECT annotator FROM leases WHERE item_id = ? AND annotator != ? AND expires_at >= ?",
                                 (item, annotator, now)).fetchone()
            if other is not None and view.needed.get(item, 1) == 1:
                raise Refused(409, "leased_to_another", f"item {item} is being labeled by someone else right now")
            conn.execute("DELETE FROM leases WHERE annotator = ?", (annotator,))
            conn.execute("INSERT INTO leases(item_id, annotator, round, undo, leased_at, expires_at) "
                         "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT(item_id, annotator) DO UPDATE SET "
                         "round = excluded.round, undo = 1, leased_at = excluded.leased_at, "
                         "expires_at = excluded.expires_at",
                         (item, annotator, round_index if item in view.ranks else HOLDOUT_ROUND, now,
                          now + self.lease_seconds))
            return asdict(self._lease_row(conn, item, annotator))

        return Lease(**self._once(annotator, request_id, ["undo"], take_back))

    def ask(self, annotator: str, item_id: object, text: object, request_id: object) -> dict:
        """Ask a question about an item; it goes to the lead's question log."""
        item = _item_id(item_id)
        question = _text(text, "question")

        def log(conn: sqlite3.Connection) -> dict:
            row = conn.execute("SELECT round FROM query_items WHERE item_id = ? UNION ALL "
                               "SELECT ? FROM holdout WHERE item_id = ?", (item, HOLDOUT_ROUND, item)).fetchone()
            if row is None:
                raise Refused(404, "unknown_item", f"item {item} was never asked in this run")
            if not _seen_by(conn, item, annotator):
                raise Refused(409, "not_yours", f"ask about an item you hold, answered or skipped; item {item} is none")
            recent = conn.execute("SELECT COUNT(*) FROM questions WHERE annotator = ? AND created_at >= ?",
                                  (annotator, _minutes_ago(QUESTION_WINDOW_MINUTES))).fetchone()[0]
            if recent >= MAX_QUESTIONS_PER_WINDOW:
                raise Refused(429, "too_many_questions", f"at most {MAX_QUESTIONS_PER_WINDOW} questions in "
                              f"{QUESTION_WINDOW_MINUTES} minutes; wait for the lead's answers")
            followed = _current_guideline(conn)
            cur = conn.execute("INSERT INTO questions(item_id, annotator, round, text, created_at, guideline_version) "
                               "VALUES (?, ?, ?, ?, ?, ?)", (item, annotator, row[0], question, utc_now(), followed))
            return {"question_id": cur.lastrowid, "item_id": item, "text": question, "guideline": followed}

        return self._once(annotator, request_id, ["ask", item, question], log)

    def answer_question(self, lead: str, question_id: object, text: object) -> dict:
        """A lead's answer to a question (calkit.labeling.questions)."""
        return self.questions.answer(lead, _item_id(question_id), _text(text, "answer"))

    def question(self, question_id: int) -> dict | None:
        return self.questions.get(question_id)

    def search_questions(self, words: str = "", limit: int = 50, viewer: str | None = None) -> list[dict]:
        """Questions whose text or answer holds every word (case-insensitive), newest first; an
        annotator ``viewer`` does not see others' questions on a running pilot's items."""
        return self.questions.search(words, limit, viewer)

    def release(self, annotator: str) -> None:
        """Give back whatever the annotator holds (signing out, closing the tab)."""
        with self.ledger.transaction() as conn:
            conn.execute("DELETE FROM leases WHERE annotator = ?", (annotator,))

    # -- reading ----------------------------------------------------------------------------------
    def progress(self, annotator: str | None = None) -> Progress:
        with self.ledger.snapshot() as conn:
            round_index = open_round(conn)
            size = settled = yours_round = 0
            if round_index is not None:
                view = round_view(conn, round_index)
                size, settled = len(view.ranks), len(view.settled)
                yours_round = sum(1 for votes in view.answers.values() if annotator in votes)
            closed = conn.execute("SELECT COALESCE(SUM(n_items), 0) FROM queries WHERE state != 'open'").fetchone()[0]
            yours = conn.execute("SELECT COUNT(DISTINCT item_id) FROM labels WHERE annotator = ?",
                                 (annotator,)).fetchone()[0]
            leased = conn.execute("SELECT COUNT(*) FROM leases WHERE expires_at >= ?", (self.clock(),)).fetchone()[0]
        return Progress(round_index, size, settled, sum(self.run.plan), closed + settled, yours, yours_round, leased)

    def suggestion(self, item_id: int) -> dict | None:
        """The newest model's guess for an item (calkit.labeling.suggestions), or None."""
        return self.suggestions.get(item_id)

    def store_suggestions(self, item_ids, probabilities, model_round: int) -> None:
        self.suggestions.store(item_ids, probabilities, model_round)

    def items_without_suggestion(self, model_round: int) -> list[int]:
        return self.suggestions.missing(model_round)

    def live_undo_leases(self) -> int:
        """Undo leases still running: the worker leaves the round open while there are any."""
        return self.ledger._conn.execute(
            "SELECT COUNT(*) FROM leases l JOIN queries q USING (round) WHERE l.undo = 1 AND l.expires_at >= ? "
            "AND q.state = 'open'", (self.clock(),)).fetchone()[0]

    def item_round(self, item_id: int) -> int | None:
        if not -2**63 <= item_id < 2**63:
            return None
        row = self.ledger._conn.execute("SELECT round FROM query_items WHERE item_id = ? UNION ALL "
                                        "SELECT ? FROM holdout WHERE item_id = ?",
                                        (int(item_id), HOLDOUT_ROUND, int(item_id))).fetchone()
        return None if row is None else int(row[0])

    def _once(self, annotator: str, request_id: object, request: list, change) -> dict:
        """Make a change once per request id: ``change(conn)`` runs in the transaction that also
        records its response; a repeat of the same request returns that response."""
        key = _request_id(request_id)
        fingerprint = json.dumps(request)
        with self.ledger.transaction() as conn:
            done = _replayed(conn, annotator, key, fingerprint)
            if done is not None:
                return done
            response = change(conn)
            _remember(conn, annotator, key, fingerprint, response)
        return response

    def _require_lease(self, conn: sqlite3.Connection, annotator: str, item: int) -> tuple:
        """The annotator's lease on the item: (round, annotator, undo)."""
        if conn.execute("SELECT 1 FROM items WHERE item_id = ?", (item,)).fetchone() is None:
            raise Refused(404, "unknown_item", f"item {item} is not in this run's pool")
        lease = conn.execute("SELECT round, annotator, undo FROM leases WHERE item_id = ? AND annotator = ?",
                             (item, annotator)).fetchone()
        if lease is not None and lease[0] not in (open_round(conn), HOLDOUT_ROUND):
            raise Refused(409, "round_closed", f"item {item} belongs to round {lease[0]}, which is closed")
        if lease is None:
            raise Refused(409, "not_leased", f"item {item} is not leased to you (a lease lasts "
                          f"{self.lease_seconds:g} s and then may go to someone else); ask for the next item")
        return lease

    def _lease_row(self, conn: sqlite3.Connection, item: int, annotator: str) -> Lease:
        row = conn.execute("SELECT l.round, COALESCE(q.rank, h.rank), l.expires_at, l.undo FROM leases l "
                           "LEFT JOIN query_items q USING (item_id) LEFT JOIN holdout h USING (item_id) "
                           "WHERE l.item_id = ? AND l.annotator = ?", (item, annotator)).fetchone()
        answer = conn.execute("SELECT label FROM current_answers WHERE item_id = ? AND annotator = ?",
                              (item, annotator)).fetchone()
        return Lease(int(item), int(row[0]), int(row[1]), float(row[2]), bool(row[3]),
                     None if answer is None else int(answer[0]))


def _current_guideline(conn: sqlite3.Connection) -> str | None:
    """The label of the guideline version in force ("v3"), read in the answer's transaction."""
    row = conn.execute("SELECT MAX(version) FROM guidelines").fetchone()
    return None if row is None or row[0] is None else f"v{row[0]}"


def _round_of(conn: sqlite3.Connection, item: int) -> int:
    """The round an item was asked in (HOLDOUT_ROUND for a held-out validation item)."""
    row = conn.execute("SELECT round FROM query_items WHERE item_id = ?", (item,)).fetchone()
    return HOLDOUT_ROUND if row is None else int(row[0])


def _first_answer_id(conn: sqlite3.Connection, item: int, annotator: str) -> int | None:
    row = conn.execute("SELECT MIN(label_id) FROM labels WHERE item_id = ? AND annotator = ?", (item, annotator)).fetchone()
    return None if row is None else row[0]


def _replayed(conn: sqlite3.Connection, annotator: str, key: str, request: str) -> dict | None:
    """The stored response to this request id, if it was used before for this very request."""
    row = conn.execute("SELECT request, response FROM requests WHERE annotator = ? AND request_id = ?",
                       (annotator, key)).fetchone()
    if row is None:
        return None
    if row[0] != request:
        raise Refused(409, "request_id_reused", "this request id was already used for another request; "
                      "use a new id for each change")
    return json.loads(row[1])


def _remember(conn: sqlite3.Connection, annotator: str, key: str, request: str, response: dict) -> None:
    conn.execute("INSERT INTO requests(annotator, request_id, request, response, created_at) VALUES (?, ?, ?, ?, ?)",
                 (annotator, key, request, json.dumps(response), utc_now()))


def _request_id(value: object) -> str:
    if not isinstance(value, str) or not _REQUEST_ID.match(value):
        raise Refused(422, "bad_request_id", "every change needs a request id: 1 to 100 letters, digits or -_.:")
    return value


def _item_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refused(422, "bad_item_id", f"an item id is an integer, got {str(value)[:40]!r}")
    if not -2**63 <= value < 2**63:
        raise Refused(422, "bad_item_id", "an item id is a 64-bit integer")
    return value


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _seen_by(conn: sqlite3.Connection, item: int, annotator: str) -> bool:
    """Whether the annotator holds, answered or skipped the item (what one may ask about)."""
    return conn.execute("SELECT 1 FROM leases WHERE item_id = ? AND annotator = ? UNION ALL "
                        "SELECT 1 FROM labels WHERE item_id = ? AND annotator = ? UNION ALL "
                        "SELECT 1 FROM skips WHERE item_id = ? AND annotator = ? LIMIT 1",
                        (item, annotator) * 3).fetchone() is not None


def _minutes_ago(minutes: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes)).isoformat(timespec="milliseconds")


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Refused(422, f"bad_{what}", f"{_article(what)} {what} needs some text")
    if len(value) > MAX_TEXT:
        raise Refused(422, f"bad_{what}", f"{_article(what)} {what} has at most {MAX_TEXT} characters")
    return value.strip()


def _restriction(conn: sqlite3.Connection) -> Restriction | None:
    """What the newest pilot allows while its gate is closed (decided first if complete)."""
    pilot = pilots.newest(conn, settle=True)
    if pilot is None or not pilot.gate_closed:
        return None
    if pilot.state == "failed":
        return Restriction(frozenset(), frozenset())
    return Restriction(frozenset(pilot.items), frozenset(pilot.raters))


def _number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.2f}"
