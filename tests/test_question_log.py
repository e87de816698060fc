"""The question log: questions carry the guideline they were asked under; the lead answers; every
annotator searches; an answer can become part of the next guideline version."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from calkit.labeling import Desk, Guidelines, Refused  # noqa: E402
from tests.conftest import people_app  # noqa: E402

QUICK = dict(oracle="people", initial=8, round_size=4, rounds=2, epochs=1, model="mlp:8")


@pytest.fixture
def app(tmp_path):
    yield from people_app(tmp_path, **QUICK)


def test_questions_are_answered_and_found_by_any_word(app):
    run = app.state.run
    Guidelines(run).set("# Digits\n")
    desk = Desk(run)
    lease = desk.next("ana")
    asked = desk.ask("ana", lease.item_id, "Is a 7 with a bar still a 7?", "q1")
    desk.ask("ana", lease.item_id, "What about 50% faded ink_blots?", "q2")
    assert asked["guideline"] == "v1"
    desk.answer_question("lee", asked["question_id"], "Yes: the bar is a European style.")
    assert [q["id"] for q in desk.search_questions("european 7")] == [asked["question_id"]]
    assert [q["text"] for q in desk.search_questions("50%")] == ["What about 50% faded ink_blots?"]
    assert desk.search_questions("5%") == [] and desk.search_questions("fa_ed") == []  # wildcards are literal
    assert len(desk.search_questions("ink_b")) == 1
    assert len(desk.search_questions("")) == 2
    with pytest.raises(Refused):
        desk.answer_question("lee", 999, "nothing")
    with pytest.raises(Refused):
        desk.answer_question("lee", asked["question_id"], "  ")


def test_the_api_searches_for_everyone_and_answers_and_promotes_for_leads(app):
    accounts = app.state.accounts
    ana, lee = {"Authorization": f"Bearer {accounts.add('ana')}"}, {"Authorization": f"Bearer {accounts.add('lee', role='lead')}"}
    client = TestClient(app)
    item = client.get("/api/next", headers=ana).json()["item"]["id"]
    number = client.post("/api/questions", json={"item_id": item, "text": "<i>blurry</i>?", "request_id": "q"},
                         headers=ana).json()["question_id"]
    assert client.post(f"/api/lead/questions/{number}/answer", json={"text": "skip it"}, headers=ana).status_code == 403
    assert client.post(f"/api/lead/questions/{number}/promote", headers=lee).json()["error"] == "not_answered"
    assert client.post(f"/api/lead/questions/{number}/answer", json={"text": "Skip it."}, headers=lee).status_code == 200
    found = client.get("/api/questions?q=blurry", headers=ana).json()["questions"]
    assert [(q["text"], q["answer"], q["answered_by"]) for q in found] == [("<i>blurry</i>?", "Skip it.", "lee")]
    assert client.post(f"/api/lead/questions/{number}/promote", headers=lee).json() == {"guideline": "v1"}
    guide = client.get("/api/guideline", headers=ana).json()
    assert "## From the question log" in guide["markdown"] and "<strong>A:</strong> Skip it." in guide["html"]
    assert "<i>" not in guide["html"]  # markup in a question stays text in the guideline too
    again = client.post(f"/api/lead/questions/{number}/promote", headers=lee)
    assert again.status_code == 409 and again.json()["error"] == "already_added"
    assert client.post("/api/lead/questions/999/promote", headers=lee).json()["error"] == "unknown_question"
    forged = client.post("/api/questions", json={"item_id": item, "text": "ok?\n\n# RULE: label 1", "request_id": "f"},
                         headers=ana).json()["question_id"]
    client.post(f"/api/lead/questions/{forged}/answer", json={"text": "no"}, headers=lee)
    assert client.post(f"/api/lead/questions/{forged}/promote", headers=lee).json() == {"guideline": "v2"}
    html = client.get("/api/guideline", headers=ana).json()["html"]
    assert "<h1>RULE" not in html and "# RULE: label 1" in html  # a question cannot write headings
    page = client.get("/lead", headers=lee).text
    assert "Skip it." in page and "add to guideline" in page
