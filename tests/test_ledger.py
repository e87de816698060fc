"""The run ledger: creation and opening, atomic queries, append-only label facts, metrics."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from calkit.errors import LabelError, LedgerError
from calkit.ledger import ANONYMOUS, SCHEMA_VERSION, LabelFact, Ledger, Query

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


def _train(ledger: Ledger, round_index: int) -> None:
    """Answer what is missing of a round, close it and record it as trained."""
    missing = ledger.unanswered(round_index)
    ledger.submit([LabelFact(int(i), 0, source="test") for i in missing])
    assert ledger.close_round(round_index) is not None
    ledger.record_metrics(round_index, {"round": round_index})


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


@pytest.mark.parametrize("stored", ["3", "0", '"2"', "null"])
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
    _train(ledger, 0)
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
    _train(ledger, 0)
    ledger.add_query(_query(1, [9, 3, 7]))
    _train(ledger, 1)
    ledger.add_query(_query(2, [2]))
    assert ledger.queried_ids().tolist() == [5, 1, 9, 3, 7, 2]
    assert ledger.queried_ids(before_round=0).tolist() == []
    assert ledger.queried_ids(before_round=1).tolist() == [5, 1]
    assert ledger.queried_ids(before_round=2).tolist() == [5, 1, 9, 3, 7]
    assert ledger.queried_ids(before_round=99).tolist() == [5, 1, 9, 3, 7, 2]
    assert ledger.last_query_round() == 2


# --------------------------------------------------------------------------- rounds


def test_rounds_open_in_order_one_at_a_time(ledger):
    with pytest.raises(LedgerError, match="cannot open round 1"):
        ledger.add_query(_query(1, [1]))
    ledger.add_query(_query(0, [1, 2]))
    assert ledger.open_round() == 0 and ledger.round_state(0) == "open" and ledger.round_state(1) is None
    with pytest.raises(LedgerError, match="round 0 is open"):
        ledger.add_query(_query(1, [3]))
    ledger.submit([LabelFact(1, 0, source="t")])
    assert ledger.close_round(0) is None  # item 2 has no label yet: the round stays open
    assert ledger.round_state(0) == "open"
    ledger.submit([LabelFact(2, 1, source="t")])
    assert ledger.close_round(0) == {1: 0, 2: 1}
    assert ledger.round_state(0) == "closed" and ledger.open_round() is None
    with pytest.raises(LedgerError, match="round 0 is closed"):
        ledger.add_query(_query(1, [3]))
    assert ledger.close_round(0) == {1: 0, 2: 1}  # closing again reads the same frozen labels
    ledger.record_metrics(0, {"round": 0})
    assert ledger.round_state(0) == "trained" and ledger.trained_rounds() == {0}
    ledger.add_query(_query(1, [3]))
    assert ledger.open_round() == 1


def test_only_one_round_can_be_open_even_bypassing_the_api(ledger):
    ledger.add_query(_query(0, [1]))
    conn = _raw(ledger.path)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            with conn:
                conn.execute("INSERT INTO queries(round, acquisition, n_items, cost, created_at) "
                             "VALUES (5, 'x', 0, '{}', 'now')")
    finally:
        conn.close()


def test_closing_reads_the_labels_of_every_round_so_far(ledger):
    ledger.add_query(_query(0, [1, 2]))
    ledger.submit([LabelFact(1, 2, source="t"), LabelFact(2, 1, source="t")])
    ledger.close_round(0)
    ledger.record_metrics(0, {})
    ledger.add_query(_query(1, [3]))
    ledger.submit([LabelFact(3, 0, source="t")])
    assert ledger.close_round(1) == {1: 2, 2: 1, 3: 0}


def test_an_open_round_cannot_be_recorded_as_trained(ledger):
    ledger.add_query(_query(0, [1]))
    with pytest.raises(LedgerError, match="open"):
        ledger.record_metrics(0, {})
    with pytest.raises(LedgerError, match="not asked"):
        ledger.record_metrics(3, {})


# --------------------------------------------------------------------------- labels


def test_submit_records_round_acquisition_and_score(ledger):
    ledger.add_query(Query(0, "random", np.array([4, 8]), np.array([0.0, 0.25]), {}))
    result = ledger.submit([
        LabelFact(8, 1, source="ingest", annotator="ann", guideline_version="g1", model="m"),
        LabelFact(4, 0, source="simulated"),
    ])
    assert (result.added, result.unchanged, result.superseded) == (2, 0, 0)
    facts = {f["item_id"]: f for f in ledger.label_facts()}
    assert facts[8]["round"] == 0 and facts[8]["acquisition"] == "random" and facts[8]["score"] == 0.25
    assert facts[8]["annotator"] == "ann" and facts[8]["guideline_version"] == "g1" and facts[8]["model"] == "m"
    assert facts[8]["source"] == "ingest" and facts[8]["label"] == 1 and facts[8]["revision"] == 0
    assert facts[4]["annotator"] == ANONYMOUS
    assert all(f["created_at"] for f in facts.values())


def test_resubmitting_the_same_answer_is_a_no_op(ledger):
    ledger.add_query(_query(0, [1, 2]))
    fact = LabelFact(1, 2, source="ingest", annotator="ann")
    assert ledger.submit([fact]).added == 1
    again = ledger.submit([fact, LabelFact(1, 2, source="api", annotator="ann")])  # the channel does not matter
    assert (again.added, again.unchanged, again.superseded) == (0, 2, 0)
    assert ledger.label_count() == 1


def test_the_same_answer_twice_in_one_submission_is_stored_once(ledger):
    ledger.add_query(_query(0, [1]))
    fact = LabelFact(1, 1, source="ingest")
    result = ledger.submit([fact, fact])
    assert (result.added, result.unchanged) == (1, 1)
    assert ledger.label_count() == 1


def test_a_changed_answer_supersedes_and_both_facts_stay(ledger):
    ledger.add_query(_query(0, [1]))
    ledger.submit([LabelFact(1, 0, source="t", annotator="ann")])
    result = ledger.submit([LabelFact(1, 2, source="t", annotator="ann")])
    assert (result.added, result.superseded) == (0, 1)
    assert ledger.current_answers(1) == {"ann": 2}
    assert ledger.adjudicated() == {1: 2}
    # Back to the first answer: a third fact (it differs from the current one), not a no-op.
    assert ledger.submit([LabelFact(1, 0, source="t", annotator="ann")]).superseded == 1
    assert [(f["label"], f["revision"]) for f in ledger.label_facts()] == [(0, 0), (2, 1), (0, 2)]
    assert ledger.adjudicated() == {1: 0}


def test_adjudication_is_the_majority_and_a_tie_is_disputed(ledger):
    ledger.add_query(_query(0, [1, 2, 3]))
    ledger.submit([LabelFact(1, 0, "t", "a"), LabelFact(2, 1, "t", "a"), LabelFact(3, 2, "t", "a")])
    ledger.submit([LabelFact(1, 0, "t", "b"), LabelFact(2, 0, "t", "b")])
    ledger.submit([LabelFact(1, 1, "t", "c")])
    # item 1: 0, 0, 1 -> 0; item 2: 1 vs 0 -> disputed; item 3: one answer -> 2
    assert ledger.adjudicated() == {1: 0, 3: 2}
    assert ledger.disputed().tolist() == [2] and ledger.disputed(0).tolist() == [2]
    assert ledger.unanswered(0).tolist() == [2]
    assert ledger.close_round(0) is None  # a disputed item keeps the round open
    ledger.submit([LabelFact(2, 1, "t", "c")])  # a third annotator settles it
    assert ledger.adjudicated() == {1: 0, 2: 1, 3: 2}
    assert ledger.close_round(0) == {1: 0, 2: 1, 3: 2}
    assert ledger.label_count() == 7


def test_labels_table_is_append_only(ledger):
    ledger.add_query(_query(0, [1, 2]))
    ledger.submit([LabelFact(1, 0, source="ingest"), LabelFact(2, 1, source="ingest")])
    before = [(f["item_id"], f["label"]) for f in ledger.label_facts()]
    conn = _raw(ledger.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            with conn:
                conn.execute("UPDATE labels SET label = 2 WHERE item_id = 1")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            with conn:
                conn.execute("DELETE FROM labels WHERE item_id = 2")
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            with conn:  # a second revision 0 of one annotator's answer
                conn.execute("INSERT INTO labels(item_id, annotator, revision, label, round, source, created_at) "
                             "VALUES (1, ?, 0, 1, 0, 'x', 'now')", (ANONYMOUS,))
    finally:
        conn.close()
    assert [(f["item_id"], f["label"]) for f in ledger.label_facts()] == before


def test_unanswered_follows_rank_order_and_shrinks(ledger):
    ledger.add_query(_query(0, [9, 4, 6, 2]))
    assert ledger.unanswered(0).tolist() == [9, 4, 6, 2]
    ledger.submit([LabelFact(4, 1, source="ingest"), LabelFact(2, 0, source="ingest")])
    assert ledger.unanswered(0).tolist() == [9, 6]
    ledger.submit([LabelFact(9, 1, source="ingest"), LabelFact(6, 1, source="ingest")])
    assert ledger.unanswered(0).tolist() == []
    assert ledger.unanswered(5).tolist() == []


def test_a_bad_submission_writes_nothing_and_names_every_bad_entry(ledger):
    ledger.add_query(_query(0, [1, 2]))
    before = _row_counts(ledger.path)
    with pytest.raises(LabelError) as info:
        ledger.submit([LabelFact(1, 0, "t"), LabelFact(3, 1, "t"), LabelFact(999, 1, "t"), LabelFact(2, 7, "t"),
                       LabelFact(2, -1, "t", "b")], n_classes=3)
    assert info.value.problems == {
        3: "not in the open query (never asked)", 999: "unknown item", 2: "class 7 is out of range (0..2)",
    }
    assert "nothing was written" in str(info.value)
    assert _row_counts(ledger.path) == before


def test_two_labels_from_one_annotator_in_one_submission_are_refused(ledger):
    ledger.add_query(_query(0, [1]))
    with pytest.raises(LabelError, match="two different labels"):
        ledger.submit([LabelFact(1, 0, "t", "a"), LabelFact(1, 1, "t", "a")])
    assert ledger.label_count() == 0


def test_closed_rounds_take_only_repeats(ledger):
    ledger.add_query(_query(0, [1]))
    ledger.submit([LabelFact(1, 0, "t", "a")])
    ledger.close_round(0)
    assert ledger.submit([LabelFact(1, 0, "t", "a")]).unchanged == 1  # replaying an answers file is harmless
    with pytest.raises(LabelError, match="closed"):
        ledger.submit([LabelFact(1, 1, "t", "a")])
    with pytest.raises(LabelError, match="closed"):
        ledger.submit([LabelFact(1, 0, "t", "newcomer")])  # even agreeing: the round's labels are frozen
    assert ledger.label_count() == 1


def test_many_ids_are_chunked_below_sqlite_parameter_limit(tmp_path):
    ids = list(range(5000))
    led = Ledger.create(tmp_path / "big.sqlite", ids, {})
    try:
        assert led.known_items(range(-10, 6000)) == set(ids)
        led.add_query(_query(0, ids[:2500]))
        assert len(led.query_round_of(ids)) == 2500
        assert led.submit([LabelFact(i, i % 3, source="simulated") for i in ids[:2500]]).added == 2500
        assert len(led.adjudicated(np.array(ids))) == 2500
    finally:
        led.close()


def test_each_thread_gets_its_own_connection(ledger):
    import threading

    ledger.add_query(_query(0, list(range(1, 21))))
    errors = []

    def answer(who: str) -> None:
        try:
            for i in range(1, 21):
                ledger.submit([LabelFact(i, i % 3, "t", who)])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=answer, args=(f"a{k}",)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert ledger.label_count() == 80
    assert ledger.adjudicated() == {i: i % 3 for i in range(1, 21)}


# --------------------------------------------------------------------------- upgrade


def test_a_schema_1_ledger_is_upgraded_keeping_every_fact(tmp_path):
    """A ledger written by calkit 0.2 opens: facts, rounds and metrics kept, states derived."""
    path = tmp_path / "old.sqlite"
    conn = _raw(path)
    with conn:
        conn.executescript(V1_SCHEMA)
        conn.executemany("INSERT INTO items VALUES (?)", [(i,) for i in range(1, 6)])
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.execute("INSERT INTO queries VALUES (0, 'random', 2, '{}', 't')")
        conn.execute("INSERT INTO queries VALUES (1, 'entropy', 2, '{}', 't')")
        conn.executemany("INSERT INTO query_items VALUES (?, ?, ?, 0.5)", [(0, 1, 0), (0, 2, 1), (1, 3, 0), (1, 4, 1)])
        rows = [(1, 0, 0, "simulated", None), (2, 1, 0, "simulated", None), (2, 2, 0, "ingest", None),
                (3, 1, 1, "ingest", "ann")]
        conn.executemany("INSERT INTO labels(item_id, label, round, source, annotator, created_at) "
                         "VALUES (?, ?, ?, ?, ?, 't')", rows)
        conn.execute("INSERT INTO metrics VALUES (0, '{\"round\": 0}')")
    conn.close()
    led = Ledger.open(path)
    try:
        assert led.meta("schema_version") == SCHEMA_VERSION
        assert led.round_state(0) == "trained" and led.round_state(1) == "open"
        assert [(f["item_id"], f["annotator"], f["revision"], f["label"]) for f in led.label_facts()] == [
            (1, ANONYMOUS, 0, 0), (2, ANONYMOUS, 0, 1), (2, ANONYMOUS, 1, 2), (3, "ann", 0, 1)]
        assert led.adjudicated() == {1: 0, 2: 2, 3: 1}  # the latest fact per item, as schema 1 read it
        assert led.unanswered(1).tolist() == [4]
        assert led.metrics() == [{"round": 0}]
    finally:
        led.close()
    Ledger.open(path).close()  # opening again finds schema 2


def _v1_ledger(path, facts):
    conn = _raw(path)
    with conn:
        conn.executescript(V1_SCHEMA)
        conn.executemany("INSERT INTO items VALUES (?)", [(i,) for i in range(1, 6)])
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.execute("INSERT INTO queries VALUES (0, 'random', 3, '{}', 't')")
        conn.executemany("INSERT INTO query_items VALUES (0, ?, ?, 0.5)", [(1, 0), (2, 1), (3, 2)])
        conn.executemany("INSERT INTO labels(item_id, label, round, source, annotator, created_at) "
                         "VALUES (?, ?, 0, 'ingest', ?, 't')", facts)
        conn.execute("INSERT INTO metrics VALUES (0, '{\"round\": 0}')")
    conn.close()


def test_the_upgrade_keeps_the_labels_a_0_2_run_trained_on(tmp_path):
    """0.2 trained on the latest fact per item; where annotators disagreed, majority would read
    otherwise (a tie here), so the upgrade records that label as an adjudication."""
    path = tmp_path / "old.sqlite"
    _v1_ledger(path, [(1, 0, None), (1, 2, "bob"), (2, 1, None), (3, 0, "a"), (3, 0, "b"), (3, 1, "c")])
    with Ledger.open(path) as led:
        assert led.adjudicated() == {1: 2, 2: 1, 3: 1}  # exactly what 0.2 trained on
        assert led.disputed().tolist() == []
        assert led.label_count() == 6


def test_processes_opening_an_old_ledger_at_once_upgrade_it_once(tmp_path):
    import threading

    path = tmp_path / "old.sqlite"
    _v1_ledger(path, [(1, 0, None), (2, 1, None), (3, 2, None)])
    errors, versions = [], []

    def open_it():
        try:
            with Ledger.open(path) as led:
                versions.append(led.meta("schema_version"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == [] and versions == [SCHEMA_VERSION] * 4


def test_a_lead_settles_a_dispute_and_every_answer_stays(ledger):
    ledger.add_query(_query(0, [1, 2]))
    ledger.submit([LabelFact(1, 0, "t", "a"), LabelFact(1, 1, "t", "b"), LabelFact(2, 2, "t", "a")])
    assert ledger.disputed(0).tolist() == [1]
    ledger.adjudicate({1: 1}, decided_by="lead", reason="guideline 2.3")
    assert ledger.adjudicated() == {1: 1, 2: 2} and ledger.disputed().tolist() == []
    assert ledger.current_answers(1) == {"a": 0, "b": 1}
    with pytest.raises(LabelError, match="not in the open query"):
        ledger.adjudicate({3: 0}, decided_by="lead", reason="x")


def test_ids_beyond_64_bits_are_unknown_items_not_crashes(ledger):
    ledger.add_query(_query(0, [1]))
    with pytest.raises(LabelError) as info:
        ledger.submit([LabelFact(2**63, 0, "t"), LabelFact(-(2**70), 0, "t")])
    assert set(info.value.problems.values()) == {"unknown item"}


def test_connections_of_finished_threads_are_closed_and_a_closed_ledger_says_so(ledger):
    import threading

    ledger.add_query(_query(0, [1]))
    for _ in range(50):
        th = threading.Thread(target=ledger.open_round)
        th.start()
        th.join()
    assert len(ledger._all) <= 2  # this thread's and at most the last finished one's
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        ledger.open_round()


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (item_id INTEGER PRIMARY KEY);
CREATE TABLE queries (round INTEGER PRIMARY KEY, acquisition TEXT NOT NULL, n_items INTEGER NOT NULL,
    cost TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE query_items (round INTEGER NOT NULL REFERENCES queries(round),
    item_id INTEGER NOT NULL UNIQUE REFERENCES items(item_id), rank INTEGER NOT NULL, score REAL,
    PRIMARY KEY (round, item_id));
CREATE TABLE labels (label_id INTEGER PRIMARY KEY AUTOINCREMENT, item_id INTEGER NOT NULL REFERENCES items(item_id),
    label INTEGER NOT NULL, round INTEGER NOT NULL, source TEXT NOT NULL, annotator TEXT, acquisition TEXT,
    score REAL, guideline_version TEXT, model TEXT, created_at TEXT NOT NULL);
CREATE INDEX labels_by_item ON labels(item_id);
CREATE TABLE metrics (round INTEGER PRIMARY KEY, record TEXT NOT NULL);
CREATE TRIGGER labels_no_update BEFORE UPDATE ON labels BEGIN SELECT RAISE(ABORT, 'labels are append-only'); END;
CREATE TRIGGER labels_no_delete BEFORE DELETE ON labels BEGIN SELECT RAISE(ABORT, 'labels are append-only'); END;
CREATE VIEW current_labels AS SELECT l.item_id, l.label, l.round FROM labels l
    JOIN (SELECT item_id, MAX(label_id) AS last_id FROM labels GROUP BY item_id) m ON l.label_id = m.last_id;
"""


# --------------------------------------------------------------------------- metrics


def test_metrics_record_replace_and_order(ledger):
    for t, ids in enumerate(([1], [2], [3])):
        ledger.add_query(_query(t, ids))
        ledger.submit([LabelFact(ids[0], 0, "t")])
        ledger.close_round(t)
        if t < 2:
            ledger.record_metrics(t, {"round": t})
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


def test_the_upgrade_leaves_open_rounds_to_the_majority(tmp_path):
    path = tmp_path / "old.sqlite"
    _v1_ledger(path, [(1, 0, None), (2, 1, None), (3, 2, None)])
    conn = _raw(path)
    with conn:  # round 1 is open: a answered 0, then b answered 2
        conn.execute("INSERT INTO items VALUES (6)")
        conn.execute("INSERT INTO queries VALUES (1, 'entropy', 1, '{}', 't')")
        conn.execute("INSERT INTO query_items VALUES (1, 6, 0, 0.5)")
        conn.executemany("INSERT INTO labels(item_id, label, round, source, annotator, created_at) "
                         "VALUES (6, ?, 1, 'ingest', ?, 't')", [(0, "a"), (2, "b")])
    conn.close()
    with Ledger.open(path) as led:
        assert led.disputed(1).tolist() == [6]  # not frozen: answers can still settle it
        led.submit([LabelFact(6, 0, "t", "c")])
        assert led.adjudicated([6]) == {6: 0}
