"""A validation set that people label, for data without one: random never-asked items, labeled
first at the desk, never asked in a round or trained on, measured every round."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from calkit import Run
from calkit.errors import ConfigError, LedgerError
from calkit.labeling import Desk
from calkit.learning_curve import curve_points
from calkit.ledger import HOLDOUT_ROUND, Query

QUICK = dict(oracle="people", initial=12, round_size=6, rounds=3, epochs=1, model="mlp:8")


def truth(run, item_id: int) -> int:
    return int(run.dataset.y_train[run.dataset.positions([item_id])[0]])


@pytest.fixture
def run(tmp_path):
    run = Run.create(tmp_path / "run", dataset="digits", **QUICK)
    yield run
    run.close()


def test_held_out_items_are_seeded_never_asked_and_never_queryable(run, tmp_path):
    held = run.hold_out(20)
    asked = set(run._ledger.queried_ids().tolist())
    assert len(set(held.tolist())) == 20 and not asked & set(held.tolist())
    with Run.create(tmp_path / "again", dataset="digits", **QUICK) as twin:
        assert twin.hold_out(20).tolist() == held.tolist()  # the same seed draws the same items
    with pytest.raises(sqlite3.IntegrityError, match="never asked in a round"):  # the ledger's own rule
        run._ledger._conn.execute("INSERT INTO query_items(round, item_id, rank) VALUES (0, ?, 99)", (int(held[0]),))
    with pytest.raises(LedgerError, match="cannot hold out"):
        run.hold_out(10**6)
    with pytest.raises(ConfigError):
        run.hold_out(0)


def test_the_desk_serves_held_out_items_first_even_while_a_round_trains(run):
    held = run.hold_out(3).tolist()
    desk = Desk(run)
    first = desk.next("ana")
    assert first.item_id == held[0] and first.round == HOLDOUT_ROUND
    assert desk.next("bo").item_id == held[1]  # leased items go to one annotator at a time
    desk.submit("ana", first.item_id, truth(run, first.item_id), "a1")
    again = desk.undo("ana", "u1")  # undo reaches held-out answers too
    assert again.item_id == first.item_id and again.undo
    desk.submit("ana", first.item_id, truth(run, first.item_id), "a2")
    assert run._ledger.holdout_labels() == {held[0]: truth(run, held[0])}
    for item in (i.id for i in run.pending()):
        run.submit({item: truth(run, item)}, annotator="cy")
    run._ledger.close_round(0)  # round 0 closed: "training", no round open
    assert desk.next("ana").item_id == held[2]


def test_rounds_report_accuracy_on_the_held_out_labels_and_never_choose_them(run):
    held = run.hold_out(30).tolist()
    run.submit({i: truth(run, i) for i in held[:25]}, annotator="ana")  # through the Python API as well
    run.submit({i.id: truth(run, i.id) for i in run.pending()}, annotator="ana")
    run.advance()
    record = run.metrics()[-1]
    assert record["holdout_labels"] == 25 and 0.0 <= record["holdout_accuracy"] <= 1.0
    assert not set(run._ledger.query(1).ids.tolist()) & set(held)
    assert curve_points([{"labeled": 12, "holdout_accuracy": 0.5, "test_accuracy": 0.6}])[0] == "holdout"


def test_only_people_label_a_held_out_set(tmp_path):
    with Run.create(tmp_path / "sim", dataset="digits", **{**QUICK, "oracle": "simulated"}) as sim:
        with pytest.raises(ConfigError, match="labeled by people"):
            sim.hold_out(5)


def test_a_ledger_from_before_holdouts_gains_the_table(tmp_path):
    with Run.create(tmp_path / "old", dataset="digits", **QUICK) as run:
        conn = run._ledger._conn
        conn.execute("DROP TRIGGER holdout_never_asked")
        conn.execute("DROP TABLE holdout")
    with Run.open(tmp_path / "old") as run:
        assert len(run.hold_out(2)) == 2
        assert isinstance(run._ledger.add_holdout(1, 0), np.ndarray)
        assert Query  # the query type is unchanged
