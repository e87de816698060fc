"""The pilot and its agreement gate, through the HTTP API: blind answers from every annotator,
alpha as the krippendorff package computes it, scale-up refused (by the API and by the ledger
itself) until the gate opens by agreement or by the lead with a reason; overlap in later rounds;
Dawid-Skene adjudication; corrections from the review queue."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from calkit import Run  # noqa: E402
from calkit.errors import LabelError  # noqa: E402
from calkit.labeling import pilot as pilots  # noqa: E402
from calkit.labeling.desk import Desk  # noqa: E402
from tests.conftest import people_app  # noqa: E402

QUICK = dict(oracle="people", initial=12, round_size=10, rounds=3, epochs=1, model="mlp:8")
RATERS = ("ana", "bo", "cy")


@pytest.fixture
def app(tmp_path):
    yield from people_app(tmp_path, **QUICK)


@pytest.fixture
def tokens(app):
    accounts = app.state.accounts
    return {**{name: accounts.add(name) for name in RATERS}, "lee": accounts.add("lee", role="lead")}


@pytest.fixture
def client(app):
    return TestClient(app)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def truth(run, item_id: int) -> int:
    return int(run.dataset.y_train[run.dataset.positions([item_id])[0]])


def label_everything(client, token: str, answer, limit: int = 100) -> list[int]:
    """Take items until there are none (or ``limit`` were answered), answering each with
    ``answer(item_id)``; the ids taken."""
    taken = []
    for k in range(limit):
        body = client.get("/api/next", headers=bearer(token)).json()
        if body["item"] is None:
            return taken
        item = body["item"]["id"]
        done = client.post("/api/labels", json={"item_id": item, "label": answer(item), "request_id": f"r{item}-{k}"},
                           headers=bearer(token))
        assert done.status_code == 200, done.json()
        taken.append(item)
    return taken


def start_pilot(client, tokens, items: int = 6, threshold: float = 0.8) -> dict:
    started = client.post("/api/lead/pilot", json={"items": items, "threshold": threshold}, headers=bearer(tokens["lee"]))
    assert started.status_code == 200, started.json()
    return started.json()["pilot"]


def test_a_pilot_of_three_gives_the_krippendorff_packages_alpha_and_holds_scale_up_until_it_passes(app, client, tokens):
    krippendorff = pytest.importorskip("krippendorff")
    run = app.state.run
    pilot = start_pilot(client, tokens, items=6, threshold=0.5)
    assert pilot["raters"] == list(RATERS) and len(pilot["items"]) == 6 and pilot["gate_closed"]
    rng = np.random.default_rng(0)
    wrong = {(who, item): bool(rng.random() < 0.25) for who in RATERS for item in pilot["items"]}

    def answers_of(who):
        return lambda item: (truth(run, item) + 1) % 10 if wrong[(who, item)] else truth(run, item)

    # each rater gets exactly the pilot's items, and nothing else, while the gate is closed
    assert sorted(label_everything(client, tokens["ana"], answers_of("ana"))) == sorted(pilot["items"])
    waiting = client.get("/api/next", headers=bearer(tokens["ana"])).json()
    assert waiting["item"] is None and "pilot" in waiting["why"]
    outside = next(i.id for i in run.pending() if i.id not in pilot["items"])
    with pytest.raises(LabelError, match="gate is closed"):  # the ledger refuses it, whoever writes
        run.submit({outside: 0}, annotator="ana")
    refused = client.post("/api/labels", json={"item_id": outside, "label": 0, "request_id": "sneak"},
                          headers=bearer(tokens["ana"]))
    assert refused.status_code == 409
    # blind: a rater cannot read the pilot's answers
    assert client.get("/api/lead/pilot", headers=bearer(tokens["bo"])).status_code == 403
    for who in ("bo", "cy"):
        assert sorted(label_everything(client, tokens[who], answers_of(who), limit=6)) == sorted(pilot["items"])

    report = client.get("/api/lead/pilot", headers=bearer(tokens["lee"])).json()["pilot"]
    table = np.array([[answers_of(who)(item) for item in pilot["items"]] for who in RATERS], dtype=float)
    expected = krippendorff.alpha(reliability_data=table, level_of_measurement="nominal")
    assert report["agreement"]["alpha"] == pytest.approx(expected, abs=1e-12)
    assert report["state"] == ("passed" if expected >= 0.5 else "failed")
    disputed = [i for i in pilot["items"] if len({answers_of(w)(i) for w in RATERS}) > 1]
    assert [d["item_id"] for d in report["disputed_items"]] == disputed
    if report["state"] == "passed":
        assert client.get("/api/next", headers=bearer(tokens["ana"])).json()["item"]["id"] not in pilot["items"]


def test_a_failed_pilot_keeps_the_gate_closed_until_the_lead_opens_it_with_a_reason(app, client, tokens):
    run = app.state.run
    pilot = start_pilot(client, tokens, items=4, threshold=0.9)
    for k, who in enumerate(RATERS):  # three raters who never agree
        assert len(label_everything(client, tokens[who], lambda item, k=k: (truth(run, item) + k) % 10)) == 4
    report = client.get("/api/lead/pilot", headers=bearer(tokens["lee"])).json()["pilot"]
    assert report["state"] == "failed" and report["gate_closed"] and len(report["disputed_items"]) == 4
    blocked = client.get("/api/next", headers=bearer(tokens["ana"])).json()
    assert blocked["item"] is None and "below 0.9" in blocked["why"]
    no_reason = client.post("/api/lead/pilot/open", json={"reason": "  "}, headers=bearer(tokens["lee"]))
    assert no_reason.status_code == 422
    assert client.post("/api/lead/pilot/open", json={"reason": "x"}, headers=bearer(tokens["ana"])).status_code == 403
    opened = client.post("/api/lead/pilot/open", json={"reason": "classes 3 and 8 clarified in v2"},
                         headers=bearer(tokens["lee"])).json()["pilot"]
    assert opened["state"] == "opened" and opened["reason"] == "classes 3 and 8 clarified in v2"
    assert opened["decided_by"] == "lee" and not opened["gate_closed"]
    item = client.get("/api/next", headers=bearer(tokens["ana"])).json()["item"]
    assert item is not None and item["id"] not in pilot["items"]
    # pilot ties wait for the lead (a Dawid-Skene decision settles them too)
    decided = client.post("/api/lead/adjudicate", headers=bearer(tokens["lee"])).json()["decided"]
    assert sorted(d["item_id"] for d in decided) == sorted(pilot["items"])
    assert all(run._ledger.adjudicated([d["item_id"]]) for d in decided)


def test_pilot_requests_are_checked(app, client, tokens):
    lee = bearer(tokens["lee"])
    assert client.post("/api/lead/pilot", json={"items": 1}, headers=lee).status_code == 422
    assert client.post("/api/lead/pilot", json={"items": 5, "threshold": 2}, headers=lee).status_code == 422
    assert client.post("/api/lead/pilot", json={"items": 500}, headers=lee).json()["error"] == "too_few_items"
    assert client.post("/api/lead/pilot/open", json={"reason": "why"}, headers=lee).json()["error"] == "gate_open"
    start_pilot(client, tokens, items=3)
    assert client.post("/api/lead/pilot", json={"items": 3}, headers=lee).json()["error"] == "pilot_running"
    assert client.get("/api/lead/pilot", headers=lee).json()["pilot"]["answered"] == {w: 0 for w in RATERS}


def test_a_pilot_needs_two_annotators(tmp_path):
    with Run.create(tmp_path / "run", dataset="digits", **QUICK) as run:
        from calkit.labeling import Accounts
        from calkit.labeling.refusal import Refused

        Accounts(run._ledger).add("solo")
        with pytest.raises(Refused, match="at least two"):
            pilots.start(run, "lead")


def test_later_rounds_send_their_top_ranked_share_to_two_annotators(tmp_path):
    with Run.create(tmp_path / "run", dataset="digits", **QUICK) as run:
        from calkit.labeling import Accounts

        for name in ("ana", "bo"):
            Accounts(run._ledger).add(name)
        desk = Desk(run)
        desk.set_overlap(0.3)
        first = [i.id for i in run.pending()]
        run.submit({i: truth(run, i) for i in first}, annotator="ana")
        run.advance()  # trains round 0 and opens round 1
        ranked = run._ledger.query(1).ids.tolist()
        both = ranked[:3]  # ceil(0.3 * 10)
        given = {"ana": [], "bo": []}
        for who in ("ana", "bo", "ana", "bo") * 20:
            lease = desk.next(who)
            if lease is None:
                continue
            label = (truth(run, lease.item_id) + (who == "bo")) % 10  # bo disagrees on every item
            desk.submit(who, lease.item_id, label, f"{who}-{lease.item_id}")
            given[who].append(lease.item_id)
        shared = set(given["ana"]) & set(given["bo"])
        assert shared == set(both) and len(set(given["ana"]) | set(given["bo"])) == 10
        assert run.status().state == "awaiting_labels"  # the three ties wait for the lead
        assert sorted(run._ledger.disputed(1).tolist()) == sorted(both)


def test_the_pilot_commands(tmp_path, capsys):
    from calkit.cli import main
    from calkit.labeling import Accounts

    with Run.create(tmp_path / "run", dataset="digits", **QUICK) as run:
        for name in ("ana", "bo"):
            Accounts(run._ledger).add(name)
    path = str(tmp_path / "run")
    assert main(["pilot", path, "status"]) == 0 and "no pilot yet" in capsys.readouterr().out
    assert main(["pilot", path, "start", "--items", "3"]) == 0
    assert "3 items of round 0 for ana, bo" in capsys.readouterr().out
    assert main(["pilot", path, "start"]) == 2 and "a pilot is running" in capsys.readouterr().err
    assert main(["pilot", path, "status"]) == 0 and "ana 0/3, bo 0/3" in capsys.readouterr().out
    assert main(["pilot", path, "open", "--reason", "we trust them"]) == 0
    assert "the gate is open" in capsys.readouterr().out
    assert main(["pilot", path, "status"]) == 0 and "opened by lead: we trust them" in capsys.readouterr().out


def test_the_worker_makes_the_review_the_lead_asked_for_and_a_correction_trains_next(tmp_path):
    from calkit.labeling import review_queue
    from calkit.labeling.worker import work

    with Run.create(tmp_path / "run", dataset="digits", **QUICK) as run:
        first = [i.id for i in run.pending()]
        run.submit({i: truth(run, i) for i in first}, annotator="ana")
        run.advance()
        review_queue.request(run)
        assert review_queue.read(run)["requested"] is not None
    assert work(tmp_path / "run", once=True) == 0
    with Run.open(tmp_path / "run") as run:
        queue = review_queue.read(run)
        assert queue["requested"] is None and queue["source"] == "crossval" and len(queue["items"]) == 12
        item = queue["items"][0]["item_id"]
        wrong = (truth(run, item) + 1) % 10
        run.correct({item: wrong}, decided_by="lee", reason="test")
        assert review_queue.read(run)["items"][0]["corrected_at"] is not None
        with pytest.raises(LabelError):
            run.correct({10**9: 0}, decided_by="lee", reason="test")  # never asked
        run.submit({i.id: truth(run, i.id) for i in run.pending()}, annotator="ana")
        run.advance()
        assert run._ledger.close_round(1)[item] == wrong  # what round 1 trained on (closed: read again)


def test_a_revoked_rater_no_longer_holds_the_pilot_and_non_raters_cannot_answer_it(tmp_path):
    from calkit.labeling import Accounts

    with Run.create(tmp_path / "run", dataset="digits", **QUICK) as run:
        accounts = Accounts(run._ledger)
        for name in RATERS:
            accounts.add(name)
        started = pilots.start(run, "lead", 3)
        with pytest.raises(LabelError, match="gate is closed"):  # a pilot item, but not a rater's answer
            run.submit({started.items[0]: 0}, annotator="zed")
        for who in ("ana", "bo"):
            run.submit({i: truth(run, i) for i in started.items}, annotator=who)
        desk = Desk(run)
        assert desk.pilot().state == "running"  # cy has not answered
        accounts.revoke("cy")
        decided = desk.pilot()
        assert decided.state == "passed" and decided.alpha == pytest.approx(1.0)
        assert pilots.report(run)["revoked_raters"] == ["cy"]
        assert run._ledger.unanswered(0).tolist() == [i.id for i in run.pending()]  # pilot items are settled


def test_a_unanimous_pilot_on_one_class_passes_with_alpha_undefined(tmp_path):
    from calkit.labeling import Accounts

    with Run.create(tmp_path / "run", dataset="digits", **QUICK) as run:
        for name in ("ana", "bo"):
            Accounts(run._ledger).add(name)
        started = pilots.start(run, "lead", 2)
        for who in ("ana", "bo"):
            run.submit({i: 1 for i in started.items}, annotator=who)
        decided = Desk(run).pilot()
        assert decided.state == "passed" and decided.alpha is None


def test_status_query_and_pilot_list_show_the_gate(tmp_path, capsys):
    from calkit.cli import main
    from calkit.labeling import Accounts

    with Run.create(tmp_path / "run", dataset="digits", **QUICK) as run:
        for name in ("ana", "bo"):
            Accounts(run._ledger).add(name)
        pilots.start(run, "lead", 2)
    path = str(tmp_path / "run")
    assert main(["status", path]) == 3
    assert "pilot 1 is running: only its 2 items take answers, from ana, bo" in capsys.readouterr().out
    assert main(["query", path, "--out-dir", str(tmp_path / "q")]) == 0
    assert "warning: pilot 1 is running" in capsys.readouterr().err
    assert main(["pilot", path, "open", "--reason", "go"]) == 0
    assert main(["pilot", path, "list"]) == 0 and "pilot 1\topened" in capsys.readouterr().out
    assert main(["pilot", path, "status", "--id", "7"]) == 2 and "no pilot 7" in capsys.readouterr().err
    assert main(["serve", path, "--overlap", "2", "--no-worker"]) == 2
    assert "--overlap is a share between 0 and 1" in capsys.readouterr().err


def test_held_out_ties_go_to_the_lead_and_dawid_skene_decides_them(tmp_path):
    from calkit.labeling import overview, quality

    with Run.create(tmp_path / "run", dataset="digits", **QUICK) as run:
        Desk(run)  # the desk's tables, as the application has them
        item = int(run.hold_out(1)[0])
        run.submit({item: 1}, annotator="ana")
        run.submit({item: 2}, annotator="bo")
        waiting = overview.unsettled_needing_lead(run)
        assert [(w["item_id"], w["holdout"]) for w in waiting] == [(item, True)]
        decided = quality.settle_by_model(run, "lee")
        assert list(decided) == [item] and run._ledger.holdout_labels() == {item: decided[item]["label_index"]}


def test_a_running_pilot_cannot_be_stalled_by_skips_decisions_or_undo(tmp_path):
    from calkit.labeling import Accounts, quality
    from calkit.labeling.refusal import Refused

    with Run.create(tmp_path / "run", dataset="digits", **QUICK) as run:
        for name in RATERS:
            Accounts(run._ledger).add(name)
        desk = Desk(run)
        before = desk.next("ana")
        desk.skip("ana", before.item_id, "blurry", "s0")
        answered = desk.next("ana")
        desk.submit("ana", answered.item_id, truth(run, answered.item_id), "a0")
        started = pilots.start(run, "lead", 3)
        assert before.item_id not in started.items and answered.item_id not in started.items
        with pytest.raises(Refused, match="only pilot answers"):  # ana's earlier answer is outside the pilot
            desk.undo("ana", "u0")
        first = desk.next("ana")
        with pytest.raises(Refused, match="every rater's answer"):
            desk.skip("ana", first.item_id, "hard", "s1")
        desk.submit("ana", first.item_id, 1, "a1")
        lease = desk.next("bo")
        desk.submit("bo", lease.item_id, 2, "b1")  # a tie so far on a pilot item cy has not answered
        with pytest.raises(LabelError, match="decided by its raters"):
            run.resolve({first.item_id: 1}, decided_by="lee", reason="too early")
        assert first.item_id not in quality.model_decisions(run)
        desk.ask("bo", lease.item_id, "is this a 1 or a 2?", "q1")
        assert desk.search_questions("", viewer="cy") == []  # blind to the others' questions on pilot items
        assert len(desk.search_questions("", viewer="bo")) == 1 and len(desk.search_questions("")) == 1
        held = desk.next("cy")
        pilots.open_gate(run, "lee", "enough")
        with pytest.raises(Refused, match="not leased"):  # opening the gate drops the pilot's leases
            desk.submit("cy", held.item_id, 0, "c1")


def test_holding_out_keeps_the_items_the_remaining_rounds_need(tmp_path):
    from calkit.errors import LedgerError

    with Run.create(tmp_path / "run", dataset="digits", **QUICK) as run:
        free = run.dataset.pool_size - QUICK["initial"]
        with pytest.raises(LedgerError, match="still to come need 20"):
            run.hold_out(free - 19)
        assert len(run.hold_out(free - 20)) == free - 20
