"""The labeling desk: leases without collisions, idempotent answers, skip, undo, questions, accounts."""

from __future__ import annotations

import multiprocessing
import numpy as np
import pytest

from calkit import Run
from calkit.labeling import Accounts, Desk, Refused
from calkit.labeling.accounts import AccountError
from calkit.ledger import Query
from tests.conftest import make_blobs, save_npz

QUICK = dict(oracle="people", initial=12, round_size=6, rounds=3, epochs=1, model="mlp:8")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def run(tmp_path):
    run = Run.create(tmp_path / "run", dataset=make_blobs(), **QUICK)
    yield run
    run.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def desk(run, clock):
    return Desk(run, lease_seconds=60, clock=clock)


def _truth(run, item_id: int) -> int:
    ds = run.dataset
    return int(ds.y_train[ds.positions([item_id])[0]])


def test_two_annotators_get_different_items_and_asking_again_keeps_yours(desk):
    a, b = desk.next("ana"), desk.next("bo")
    assert a.item_id != b.item_id and (a.rank, b.rank) == (0, 1)
    assert desk.next("ana").item_id == a.item_id


def test_an_expired_lease_goes_to_the_next_annotator_and_its_holder_is_then_refused(desk, clock):
    first = desk.next("ana")
    clock.now += 61
    taken = desk.next("bo")
    assert taken.item_id == first.item_id
    with pytest.raises(Refused) as info:
        desk.submit("ana", first.item_id, 0, "r1")
    assert (info.value.status, info.value.code) == (409, "not_leased")
    assert desk.submit("bo", first.item_id, 0, "r1")["stored"] == "added"  # request ids are per annotator


def test_a_late_answer_is_kept_when_nobody_took_the_item(desk, clock):
    lease = desk.next("ana")
    clock.now += 600
    assert desk.submit("ana", lease.item_id, 1, "late")["committed"]


def test_a_repeated_request_returns_the_first_response_and_changes_nothing(run, desk):
    lease = desk.next("ana")
    first = desk.submit("ana", lease.item_id, 2, "req-1")
    assert desk.submit("ana", lease.item_id, 2, "req-1") == first  # a retry
    assert len(run._ledger.label_facts()) == 1
    with pytest.raises(Refused) as info:  # a new request on an answered item: no lease any more
        desk.submit("ana", lease.item_id, 2, "req-2")
    assert info.value.code == "not_leased"


@pytest.mark.parametrize("item, label, request_id, status, code", [
    (10**9, 0, "r", 404, "unknown_item"),
    ("3", 0, "r", 422, "bad_item_id"),
    (True, 0, "r", 422, "bad_item_id"),
    (None, "c9", "r", 422, "bad_label"),
    (None, 7, "r", 422, "bad_label"),
    (None, 0, "", 422, "bad_request_id"),
    (None, 0, "x" * 101, 422, "bad_request_id"),
    (None, 0, "a b", 422, "bad_request_id"),
])
def test_bad_answers_are_refused_with_a_reason_and_change_nothing(run, desk, item, label, request_id, status, code):
    lease = desk.next("ana")
    with pytest.raises(Refused) as info:
        desk.submit("ana", lease.item_id if item is None else item, label, request_id)
    assert (info.value.status, info.value.code) == (status, code) and info.value.message
    assert run._ledger.label_facts() == []
    assert desk.next("ana").item_id == lease.item_id


def test_an_item_of_a_closed_round_is_refused(run, desk):
    for _ in range(12):
        lease = desk.next("ana")
        desk.submit("ana", lease.item_id, _truth(run, lease.item_id), f"r{lease.item_id}")
    assert run._ledger.close_round(0) is not None
    old = run._ledger.query(0).ids[0]
    with pytest.raises(Refused) as info:
        desk.submit("ana", int(old), 0, "late")
    assert info.value.code == "not_leased"
    assert desk.next("ana") is None and "training" in desk.why_none("ana")


def test_skip_passes_the_item_to_others_and_records_the_reason(run, desk):
    lease = desk.next("ana")
    desk.skip("ana", lease.item_id, "can't tell", "s1")
    assert desk.next("ana").item_id != lease.item_id
    assert desk.next("bo").item_id == lease.item_id
    rows = run._ledger._conn.execute("SELECT item_id, annotator, reason FROM skips").fetchall()
    assert rows == [(lease.item_id, "ana", "can't tell")]
    with pytest.raises(Refused):
        desk.skip("ana", lease.item_id, "   ", "s2")


def test_undo_walks_back_and_a_new_answer_supersedes_keeping_both(run, desk):
    answered = []
    for k in range(3):
        lease = desk.next("ana")
        desk.submit("ana", lease.item_id, 0, f"a{k}")
        answered.append(lease.item_id)
    back = desk.undo("ana", "u1")
    assert (back.item_id, back.undo, back.your_answer) == (answered[2], True, 0)
    assert desk.live_undo_leases() == 1
    assert desk.next("ana").item_id == answered[2]  # the undo stays in front
    assert desk.undo("ana", "u2").item_id == answered[1]  # again: one further back
    assert desk.undo("ana", "u2").item_id == answered[1]  # a repeated request changes nothing
    with pytest.raises(Refused):
        desk.skip("ana", answered[1], "can't tell", "s1")  # skipping would keep the answer being taken back
    assert desk.submit("ana", answered[1], 1, "a9")["stored"] == "superseded"
    facts = [f for f in run._ledger.label_facts() if f["item_id"] == answered[1]]
    assert [(f["label"], f["revision"]) for f in facts] == [(0, 0), (1, 1)]
    assert desk.live_undo_leases() == 0


def test_undo_with_nothing_to_take_back(desk):
    with pytest.raises(Refused) as info:
        desk.undo("ana", "u1")
    assert info.value.code == "nothing_to_undo"


def test_questions_need_text_and_a_known_item(run, desk):
    lease = desk.next("ana")
    asked = desk.ask("ana", lease.item_id, "is a blurry 7 a 7?", "q1")
    assert asked["question_id"] == 1 and desk.ask("ana", lease.item_id, "is a blurry 7 a 7?", "q1") == asked
    for item, text in ((lease.item_id, ""), (lease.item_id, "x" * 2001), (10**9, "?")):
        with pytest.raises(Refused):
            desk.ask("ana", item, text, f"q-{len(text)}-{item}")


def test_progress_counts_the_round_the_budget_and_yours(run, desk):
    lease = desk.next("ana")
    desk.submit("ana", lease.item_id, 0, "r1")
    desk.next("bo")
    p = desk.progress("ana")
    assert (p.round, p.round_size, p.round_settled, p.budget, p.labeled, p.yours_total, p.leased) == (0, 12, 1, 24, 1, 1, 1)


def test_accounts_hash_tokens_and_revoking_ends_sessions_and_leases(run, desk):
    accounts = Accounts(run._ledger)
    token = accounts.add("ana")
    assert token not in str(run._ledger._conn.execute("SELECT * FROM annotators").fetchall())
    assert accounts.by_token(token).name == "ana" and accounts.by_token(token + "x") is None
    cookie, csrf = accounts.start_session(accounts.by_token(token))
    assert accounts.session(cookie).csrf_token == csrf
    desk.next("ana")
    with pytest.raises(AccountError):
        accounts.add("ana")
    with pytest.raises(AccountError):
        accounts.add("x", role="admin")
    accounts.revoke("ana")
    assert accounts.by_token(token) is None and accounts.session(cookie) is None
    assert desk.progress().leased == 0
    new = accounts.add("lee", role="lead")
    again = accounts.reset("lee")
    assert accounts.by_token(new) is None and accounts.by_token(again).is_lead


def _label_until_done(path: str, name: str, out) -> None:
    run = Run.open(path)
    desk = Desk(run)
    done = []
    while (lease := desk.next(name)) is not None:
        desk.submit(name, lease.item_id, _truth(run, lease.item_id), f"{name}-{lease.item_id}")
        done.append(lease.item_id)
    run.close()
    out.put(done)


def test_four_processes_labeling_at_once_never_share_an_item(tmp_path):
    run = Run.create(tmp_path / "run", dataset=str(save_npz(make_blobs(), tmp_path / "blobs.npz")), **QUICK)
    path = str(run.path)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    workers = [ctx.Process(target=_label_until_done, args=(path, f"p{k}", out)) for k in range(4)]
    for w in workers:
        w.start()
    answered = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    flat = [i for part in answered for i in part]
    assert sorted(flat) == sorted(run._ledger.query(0).ids.tolist()), "every item once, none twice"
    facts = run._ledger.label_facts()
    assert len(facts) == 12 and len({f["item_id"] for f in facts}) == 12
    run.close()


def test_a_request_id_used_for_another_request_is_refused(desk):
    lease = desk.next("ana")
    desk.submit("ana", lease.item_id, 0, "k")
    for call in (lambda: desk.undo("ana", "k"), lambda: desk.submit("ana", lease.item_id, 1, "k"),
                 lambda: desk.skip("ana", lease.item_id, "why", "k")):
        with pytest.raises(Refused) as info:
            call()
        assert (info.value.status, info.value.code) == (409, "request_id_reused")


def test_undo_is_refused_once_the_round_has_all_its_labels(run, desk):
    for k in range(12):
        lease = desk.next("ana")
        desk.submit("ana", lease.item_id, 0, f"r{k}")
    with pytest.raises(Refused) as info:
        desk.undo("ana", "u")
    assert info.value.code == "round_complete" and desk.live_undo_leases() == 0


def test_leases_of_a_closed_round_are_dropped_and_its_items_refused(run, desk, clock):
    for k in range(11):
        lease = desk.next("ana")
        desk.submit("ana", lease.item_id, _truth(run, lease.item_id), f"r{k}")
    held = desk.undo("ana", "u")  # ana takes an answer back...
    last = desk.next("bo")
    desk.submit("bo", last.item_id, _truth(run, last.item_id), "b")
    clock.now += 61  # ...and lets the undo lease run out; the worker closes and trains the round
    run._ledger.close_round(0)
    run._ledger.record_metrics(0, {"round": 0})
    asked = run._ledger.queried_ids()
    run._ledger.add_query(Query(1, "random", np.setdiff1d(run.dataset.ids, asked)[:6], np.zeros(6)))
    nxt = desk.next("ana")
    assert nxt.round == 1 and not nxt.undo
    with pytest.raises(Refused) as info:
        desk.skip("ana", held.item_id, "late", "s")
    assert info.value.code == "not_leased"


def test_questions_are_about_items_you_hold_or_answered_and_limited(desk, monkeypatch):
    mine = desk.next("ana")
    other = desk.next("bo")
    with pytest.raises(Refused) as info:
        desk.ask("ana", other.item_id, "what is this?", "q0")
    assert info.value.code == "not_yours"
    monkeypatch.setattr("calkit.labeling.desk.MAX_QUESTIONS_PER_WINDOW", 3)
    for k in range(3):
        desk.ask("ana", mine.item_id, f"question {k}", f"q{k + 1}")
    with pytest.raises(Refused) as info:
        desk.ask("ana", mine.item_id, "one more", "q9")
    assert (info.value.status, info.value.code) == (429, "too_many_questions")
