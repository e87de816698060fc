"""The run ledger: creation and opening, atomic queries, append-only label facts, metrics."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from calkit.errors import LedgerError
from calkit.ledger import SCHEMA_VERSION, LabelFact, Ledger, Query

POOL = list(range(1, 21))  # item ids 1..20


@pytest.fixture
def ledger(tmp_path):
    led = Ledger.create(tmp_path / "ledger.sqlite", POOL, {"class_names": ["a", "b", "c"], "dataset": "toy"})
    yield led
    led.close()


def _query(round_index: int, ids, acquisition: str = "entropy", cost: dict | None = None) -> Query:
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.linspace(1.0, 0.1, num=len(ids)) + round_index
    return Query(round_index, acquisition, ids, scores, cost or {})


def _raw(path) -> sqlite3.Connection:
    return sqlite3.connect(path)


def _row_counts(path) -> dict[str, int]:
    conn = _raw(path)
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("items", "queries", "query_items", "labels", "metrics", "meta")}
    finally:
        conn.close()


# --------------------------------------------------------------------------- create / open


def test_create_then_open_round_trips_meta(tmp_path):
    path = tmp_path / "ledger.sqlite"
    led = Ledger.create(path, POOL, {"class_names": ["a", "b"], "config": {"seed": 3, "budget": None}})
    led.close()
    led = Ledger.open(path)
    try:
        assert led.meta("schema_version") == SCHEMA_VERSION
        assert led.meta("class_names") == ["a", "b"]
        assert led.meta("config") == {"seed": 3, "budget": None}
        assert led.meta("nope", "fallback") == "fallback"
        with pytest.raises(LedgerError, match="nope"):
            led.meta("nope")
        assert led.known_items([1, 20, 21, 0]) == {1, 20}
        assert led.last_query_round() is None
        assert led.label_count() == 0
        assert led.metrics() == []
    finally:
        led.close()


def test_open_missing_path_is_a_ledger_error(tmp_path):
    with pytest.raises(LedgerError, match="no ledger"):
        Ledger.open(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


def test_create_on_existing_path_is_a_ledger_error(tmp_path, ledger):
    with pytest.raises(LedgerError, match="already exists"):
        Ledger.create(ledger.path, POOL, {})
    other = tmp_path / "some-file.sqlite"
    other.write_text("precious")
    with pytest.raises(LedgerError):
        Ledger.create(other, POOL, {})
    assert other.read_text() == "precious"


@pytest.mark.parametrize("stored", ["2", "0", '"1"', "null"])
def test_open_refuses_other_schema_version(ledger, stored):
    path = ledger.path
    ledger.close()
    conn = _raw(path)
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (stored,))
    conn.close()
    with pytest.raises(LedgerError, match="schema version"):
        Ledger.open(path)


def test_open_refuses_ledger_without_schema_version(ledger):
    path = ledger.path
    ledger.close()
    conn = _raw(path)
    with conn:
        conn.execute("DELETE FROM meta WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(LedgerError, match="schema version"):
        Ledger.open(path)


def test_open_non_sqlite_file_is_a_ledger_error(tmp_path):
    path = tmp_path / "ledger.sqlite"
    path.write_text("this is not a database, just some text that is long enough to have a header\n" * 20)
    with pytest.raises(LedgerError, match="not a calkit ledger"):
        Ledger.open(path)


def test_open_foreign_sqlite_database_is_a_ledger_error(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = _raw(path)
    with conn:
        conn.execute("CREATE TABLE stuff (x INTEGER)")
    conn.close()
    with pytest.raises(LedgerError, match="not a calkit ledger"):
        Ledger.open(path)


# --------------------------------------------------------------------------- queries


def test_add_query_keeps_rank_order_scores_and_cost(ledger):
    cost = {"forward_samples": 123, "seconds": {"score": 0.5, "select": 0.25}}
    ids = [7, 3, 15, 1]
    scores = np.array([0.9, 0.7, 0.4, 0.05])
    ledger.add_query(Query(0, "margin", np.array(ids), scores, cost))
    q = ledger.query(0)
    assert q is not None
    assert q.round == 0 and q.acquisition == "margin"
    assert q.ids.tolist() == ids
    assert q.ids.dtype == np.int64
    np.testing.assert_allclose(q.scores, scores)
    assert q.cost == cost
    assert ledger.query(1) is None
    assert ledger.last_query_round() == 0
    assert ledger.queried_ids().tolist() == ids
    assert ledger.unanswered(0).tolist() == ids
    assert ledger.query_round_of([7, 1, 2]) == {7: 0, 1: 0}


def test_add_query_survives_reopen(ledger):
    ledger.add_query(_query(0, [4, 2, 9], cost={"k": 1}))
    path = ledger.path
    ledger.close()
    led = Ledger.open(path)
    try:
        q = led.query(0)
        assert q.ids.tolist() == [4, 2, 9] and q.cost == {"k": 1}
    finally:
        led.close()


def test_second_query_for_same_round_is_rejected_atomically(ledger):
    ledger.add_query(_query(0, [1, 2, 3]))
    before = _row_counts(ledger.path)
    with pytest.raises(LedgerError, match="round 0"):
        ledger.add_query(_query(0, [4, 5, 6]))
    assert _row_counts(ledger.path) == before
    assert ledger.query(0).ids.tolist() == [1, 2, 3]
    assert ledger.query_round_of([4, 5, 6]) == {}


def test_query_re_asking_an_item_is_rejected_atomically(ledger):
    ledger.add_query(_query(0, [1, 2, 3]))
    before = _row_counts(ledger.path)
    # 4 and 5 are new but 2 was asked in round 0: none of round 1 may be stored.
    with pytest.raises(LedgerError, match="round 1"):
        ledger.add_query(_query(1, [4, 5, 2]))
    assert _row_counts(ledger.path) == before
    assert ledger.query(1) is None
    assert ledger.last_query_round() == 0
    assert ledger.queried_ids().tolist() == [1, 2, 3]
    # The ledger stays usable: a valid round 1 goes in afterwards.
    ledger.add_query(_query(1, [4, 5]))
    assert ledger.queried_ids().tolist() == [1, 2, 3, 4, 5]


def test_query_for_item_outside_the_pool_is_rejected(ledger):
    before = _row_counts(ledger.path)
    with pytest.raises(LedgerError):
        ledger.add_query(_query(0, [1, 999]))
    assert _row_counts(ledger.path) == before


def test_queried_ids_before_round(ledger):
    ledger.add_query(_query(0, [5, 1]))
    ledger.add_query(_query(1, [9, 3, 7]))
    ledger.add_query(_query(2, [2]))
    assert ledger.queried_ids().tolist() == [5, 1, 9, 3, 7, 2]
    assert ledger.queried_ids(before_round=0).tolist() == []
    assert ledger.queried_ids(before_round=1).tolist() == [5, 1]
    assert ledger.queried_ids(before_round=2).tolist() == [5, 1, 9, 3, 7]
    assert ledger.queried_ids(before_round=99).tolist() == [5, 1, 9, 3, 7, 2]
    assert ledger.last_query_round() == 2


# --------------------------------------------------------------------------- labels


def test_add_labels_records_round_acquisition_and_score(ledger):
    ledger.add_query(Query(0, "random", np.array([4, 8]), np.array([0.0, 0.0]), {}))
    ledger.add_query(Query(1, "entropy", np.array([6, 2]), np.array([1.25, 0.5]), {}))
    added = ledger.add_labels([
        LabelFact(8, 1, source="ingest", annotator="ann", guideline_version="g1", model="m"),
        LabelFact(2, 0, source="simulated"),
    ])
    assert added == (2, 0)
    facts = {f["item_id"]: f for f in ledger.label_facts()}
    assert set(facts) == {8, 2}
    assert facts[8]["round"] == 0 and facts[8]["acquisition"] == "random" and facts[8]["score"] == 0.0
    assert facts[8]["annotator"] == "ann" and facts[8]["guideline_version"] == "g1" and facts[8]["model"] == "m"
    assert facts[8]["source"] == "ingest" and facts[8]["label"] == 1
    assert facts[2]["round"] == 1 and facts[2]["acquisition"] == "entropy" and facts[2]["score"] == 0.5
    assert facts[2]["annotator"] is None
    assert all(f["created_at"] for f in facts.values())
    assert ledger.label_count() == 2


def test_identical_fact_is_skipped(ledger):
    ledger.add_query(_query(0, [1, 2]))
    fact = LabelFact(1, 2, source="ingest", annotator="ann")
    assert ledger.add_labels([fact]) == (1, 0)
    assert ledger.add_labels([fact]) == (0, 1)
    # An identical fact with no annotator is recognised too (NULL-safe comparison).
    anon = LabelFact(2, 0, source="ingest")
    assert ledger.add_labels([anon]) == (1, 0)
    assert ledger.add_labels([anon, fact]) == (0, 2)
    assert ledger.label_count() == 2
    # Another annotator, source or label is a new fact.
    assert ledger.add_labels([LabelFact(1, 2, source="ingest", annotator="bob")]) == (1, 0)
    assert ledger.add_labels([LabelFact(1, 2, source="simulated", annotator="ann")]) == (1, 0)
    assert ledger.add_labels([LabelFact(1, 0, source="ingest", annotator="ann")]) == (1, 0)
    assert ledger.label_count() == 5


def test_duplicate_fact_inside_one_batch_is_stored_once(ledger):
    ledger.add_query(_query(0, [1]))
    fact = LabelFact(1, 1, source="ingest")
    assert ledger.add_labels([fact, fact]) == (1, 1)
    assert ledger.label_count() == 1


def test_labels_table_is_append_only(ledger):
    ledger.add_query(_query(0, [1, 2]))
    ledger.add_labels([LabelFact(1, 0, source="ingest"), LabelFact(2, 1, source="ingest")])
    before = [(f["item_id"], f["label"]) for f in ledger.label_facts()]
    conn = _raw(ledger.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            with conn:
                conn.execute("UPDATE labels SET label = 2 WHERE item_id = 1")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            with conn:
                conn.execute("DELETE FROM labels WHERE item_id = 2")
        with pytest.raises(sqlite3.DatabaseError):
            with conn:
                conn.execute("DELETE FROM labels")
    finally:
        conn.close()
    assert [(f["item_id"], f["label"]) for f in ledger.label_facts()] == before
    assert ledger.current_labels() == {1: 0, 2: 1}


def test_current_labels_takes_latest_fact_per_item(ledger):
    ledger.add_query(_query(0, [1, 2, 3]))
    ledger.add_labels([LabelFact(1, 0, source="ingest"), LabelFact(2, 1, source="ingest")])
    ledger.add_labels([LabelFact(1, 2, source="ingest", annotator="reviewer")])
    assert ledger.current_labels() == {1: 2, 2: 1}
    # A later correction back to the first label wins again (latest, not majority or first).
    ledger.add_labels([LabelFact(1, 0, source="ingest", annotator="lead")])
    assert ledger.current_labels() == {1: 0, 2: 1}
    assert ledger.current_labels(np.array([1, 3])) == {1: 0}
    assert ledger.current_labels(np.array([], dtype=np.int64)) == {}
    assert ledger.label_count() == 4


def test_unanswered_follows_rank_order_and_shrinks(ledger):
    ledger.add_query(_query(0, [9, 4, 6, 2]))
    assert ledger.unanswered(0).tolist() == [9, 4, 6, 2]
    ledger.add_labels([LabelFact(4, 1, source="ingest"), LabelFact(2, 0, source="ingest")])
    assert ledger.unanswered(0).tolist() == [9, 6]
    ledger.add_labels([LabelFact(9, 1, source="ingest"), LabelFact(6, 1, source="ingest")])
    assert ledger.unanswered(0).tolist() == []
    assert ledger.unanswered(5).tolist() == []


def test_add_labels_for_never_queried_items_writes_nothing(ledger):
    ledger.add_query(_query(0, [1, 2]))
    before = _row_counts(ledger.path)
    # 1 is fine, 3 is in the pool but was never asked, 999 is not even in the pool.
    with pytest.raises(LedgerError, match="never queried") as info:
        ledger.add_labels([LabelFact(1, 0, source="ingest"), LabelFact(3, 1, source="ingest"),
                           LabelFact(999, 1, source="ingest")])
    assert "3" in str(info.value) and "999" in str(info.value)
    assert _row_counts(ledger.path) == before
    assert ledger.current_labels() == {}


def test_failing_batch_rolls_back_rows_already_inserted(ledger):
    ledger.add_query(_query(0, [1, 2]))
    with pytest.raises(sqlite3.IntegrityError):
        # The second fact violates NOT NULL after the first was inserted in the same transaction.
        ledger.add_labels([LabelFact(1, 0, source="ingest"), LabelFact(2, None, source="ingest")])  # type: ignore[arg-type]
    assert ledger.label_count() == 0
    assert ledger.add_labels([LabelFact(1, 0, source="ingest")]) == (1, 0)


def test_many_ids_are_chunked_below_sqlite_parameter_limit(tmp_path):
    ids = list(range(5000))
    led = Ledger.create(tmp_path / "big.sqlite", ids, {})
    try:
        assert led.known_items(range(-10, 6000)) == set(ids)
        led.add_query(_query(0, ids[:2500]))
        assert len(led.query_round_of(ids)) == 2500
        assert led.add_labels([LabelFact(i, i % 3, source="simulated") for i in ids[:2500]]) == (2500, 0)
        assert len(led.current_labels(np.array(ids))) == 2500
    finally:
        led.close()


# --------------------------------------------------------------------------- metrics


def test_metrics_record_replace_and_order(ledger):
    ledger.record_metrics(2, {"round": 2, "accuracy": 0.8})
    ledger.record_metrics(0, {"round": 0, "accuracy": 0.5})
    ledger.record_metrics(1, {"round": 1, "accuracy": 0.6})
    assert [m["round"] for m in ledger.metrics()] == [0, 1, 2]
    ledger.record_metrics(1, {"round": 1, "accuracy": 0.65, "extra": [1, 2]})
    records = ledger.metrics()
    assert len(records) == 3
    assert records[1] == {"round": 1, "accuracy": 0.65, "extra": [1, 2]}
    assert _row_counts(ledger.path)["metrics"] == 3
    path = ledger.path
    ledger.close()
    led = Ledger.open(path)
    try:
        assert [m["accuracy"] for m in led.metrics()] == [0.5, 0.65, 0.8]
    finally:
        led.close()
