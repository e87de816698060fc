"""The question log: questions annotators ask on items (calkit.labeling.desk records them), the
lead's answers, and a search every annotator can run while labeling."""

from __future__ import annotations

from calkit.labeling.refusal import Refused
from calkit.ledger import Ledger, utc_now

_FIELDS = ("id", "item_id", "annotator", "round", "text", "at", "guideline", "answer", "answered_by", "answered_at")


class QuestionLog:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def answer(self, lead: str, question_id: int, text: str) -> dict:
        """A lead's answer (a later answer replaces it); every annotator can find it."""
        with self.ledger.transaction() as conn:
            found = conn.execute("UPDATE questions SET answer = ?, answered_by = ?, answered_at = ? WHERE question_id = ?",
                                 (text, lead, utc_now(), question_id)).rowcount
        if not found:
            raise Refused(404, "unknown_question", f"no question {question_id}")
        return self.get(question_id)

    def get(self, question_id: int) -> dict | None:
        rows = self._select("WHERE question_id = ?", (question_id,))
        return rows[0] if rows else None

    def search(self, words: str = "", limit: int = 50, viewer: str | None = None) -> list[dict]:
        """Questions whose text or answer holds every word (case-insensitive), newest first. For
        an annotator (``viewer``), others' questions on the items of a running pilot are left
        out: the pilot asks each rater blind."""
        terms = [w for w in str(words).split() if w][:10]
        where = " AND ".join(["(q.text LIKE ? ESCAPE '\\' OR COALESCE(q.answer, '') LIKE ? ESCAPE '\\')"] * len(terms))
        args: list = []
        for term in terms:
            like = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            args += [like, like]
        if viewer is not None:
            blind = ("(q.annotator = ? OR q.item_id NOT IN (SELECT item_id FROM pilot_items WHERE pilot_id = "
                     "(SELECT MAX(pilot_id) FROM pilots) AND (SELECT state FROM pilots ORDER BY pilot_id DESC "
                     "LIMIT 1) = 'running'))")
            where = f"{where} AND {blind}" if where else blind
            args.append(viewer)
        return self._select(("WHERE " + where) if where else "", tuple(args), limit)

    def _select(self, where: str, args: tuple, limit: int = 50) -> list[dict]:
        rows = self.ledger._conn.execute(
            "SELECT q.question_id, q.item_id, q.annotator, q.round, q.text, q.created_at, q.guideline_version, "
            f"q.answer, q.answered_by, q.answered_at FROM questions q {where} ORDER BY q.question_id DESC LIMIT ?",
            (*args, int(limit))).fetchall()
        return [dict(zip(_FIELDS, row)) for row in rows]
