"""The model's guesses for queued items: written by the worker after each round it trains, shown
to annotators who ask for them (off by default: a guess on screen pulls answers towards it),
never for a pilot item, which measures the guideline, not the model."""

from __future__ import annotations

from calkit.ledger import Ledger


class Suggestions:
    def __init__(self, ledger: Ledger, class_names: tuple[str, ...]):
        self.ledger, self.class_names = ledger, class_names

    def get(self, item_id: int) -> dict | None:
        """The newest guess for an item, or None (``model_version`` counts trained rounds)."""
        row = self.ledger._conn.execute(
            "SELECT label, probability, model_round FROM suggestions WHERE item_id = ? "
            "AND item_id NOT IN (SELECT item_id FROM pilot_items)", (int(item_id),)).fetchone()
        if row is None:
            return None
        return {"label": self.class_names[row[0]], "label_index": row[0], "probability": row[1],
                "model_version": row[2] + 1}

    def store(self, item_ids, probabilities, model_round: int) -> None:
        """Record a model's guesses: the top class and its probability per item."""
        rows = [(int(i), int(p.argmax()), float(p.max()), int(model_round)) for i, p in zip(item_ids, probabilities)]
        with self.ledger.transaction() as conn:
            conn.executemany("INSERT INTO suggestions(item_id, label, probability, model_round) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT(item_id) DO UPDATE SET label = excluded.label, "
                             "probability = excluded.probability, model_round = excluded.model_round", rows)

    def missing(self, model_round: int) -> list[int]:
        """Items of the open round with no guess from the model of ``model_round`` yet."""
        rows = self.ledger._conn.execute(
            "SELECT q.item_id FROM query_items q JOIN queries r USING (round) LEFT JOIN suggestions s USING (item_id) "
            "WHERE r.state = 'open' AND (s.item_id IS NULL OR s.model_round < ?)", (model_round,)).fetchall()
        return [int(r[0]) for r in rows]
