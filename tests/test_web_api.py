"""The labeling application's HTTP surface, in process: authentication on every route, lead-only
routes, CSRF, security headers, clear 4xx errors, images by id only, exports, OpenAPI."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from calkit import Run  # noqa: E402
from calkit.labeling.worker import work  # noqa: E402
from calkit.web.app import create_app  # noqa: E402
from tests.conftest import make_blobs, people_app  # noqa: E402

QUICK = dict(oracle="people", initial=8, round_size=4, rounds=3, epochs=1, model="mlp:8")


@pytest.fixture
def app(tmp_path):
    yield from people_app(tmp_path, **QUICK)


@pytest.fixture
def tokens(app):
    accounts = app.state.accounts
    return {"ana": accounts.add("ana"), "bo": accounts.add("bo"), "lee": accounts.add("lee", role="lead")}


@pytest.fixture
def client(app):
    return TestClient(app)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_every_route_but_sign_in_and_static_files_needs_a_signed_in_annotator(app, client):
    checked = 0
    for route in app.routes:
        path = getattr(route, "path", "")
        if path.startswith("/static") or path == "/signin":
            continue
        for method in getattr(route, "methods", ()) - {"HEAD"}:
            url = path.replace("{item_id}", "1")
            answer = client.request(method, url, json={}, follow_redirects=False)
            assert answer.status_code in (401, 303), (method, path, answer.status_code)
            if answer.status_code == 303:
                assert answer.headers["location"] == "/signin" and not path.startswith("/api")
            bad = client.request(method, url, json={}, headers=bearer("not-a-token"), follow_redirects=False)
            assert bad.status_code in (401, 303)
            checked += 1
    assert checked >= 14


def test_lead_routes_refuse_annotators(client, tokens):
    for path in ("/lead", "/api/lead/overview", "/api/export.csv", "/api/export.jsonl", "/api/export.label-studio.json",
                 "/api/export.label-studio.xml", "/api/lead/pilot", "/api/lead/agreement", "/api/lead/review"):
        assert client.get(path, headers=bearer(tokens["ana"])).status_code == 403
        assert client.get(path, headers=bearer(tokens["lee"])).status_code == 200
    refused = client.post("/api/lead/resolve", json={"item_id": 1, "label": 0, "reason": "x"},
                          headers=bearer(tokens["ana"]))
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"


def test_a_browser_session_needs_the_csrf_token_for_every_change(client, tokens):
    signed = client.post("/signin", json={"token": tokens["ana"]})
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = client.get("/")
    assert page.status_code == 200
    csrf = page.text.split('name="csrf-token" content="')[1].split('"')[0]
    item = client.get("/api/next").json()["item"]
    body = {"item_id": item["id"], "label": 1, "request_id": "c1"}
    assert client.post("/api/labels", json=body).status_code == 403
    assert client.post("/api/labels", json=body, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    done = client.post("/api/labels", json=body, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200 and done.json()["committed"] is True
    client.post("/signout", headers={"X-CSRF-Token": csrf})
    assert client.get("/api/next").status_code == 401


def test_a_bad_sign_in_token_is_refused(client):
    answer = client.post("/signin", json={"token": "nope"})
    assert answer.status_code == 401 and "set-cookie" not in answer.headers


def test_security_headers_forbid_inline_script(client, tokens):
    page = client.get("/signin")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "default-src 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text.replace("<script src=", "")  # no inline script in any page
    assert client.get("/static/label.js").status_code == 200


@pytest.mark.parametrize("body, status, code", [
    ({"item_id": "x", "label": 0, "request_id": "r"}, 422, "bad_request"),
    ({"label": 0, "request_id": "r"}, 422, "bad_request"),
    ({"item_id": 10**9, "label": 0, "request_id": "r"}, 404, "unknown_item"),
    ({"item_id": None, "label": 99, "request_id": "r"}, 422, "bad_label"),
    ({"item_id": None, "label": "cat", "request_id": "r"}, 422, "bad_label"),
    ({"item_id": None, "label": 0, "request_id": "bad id"}, 422, "bad_request_id"),
])
def test_bad_input_gets_a_clear_4xx_json_error_and_changes_nothing(app, client, tokens, body, status, code):
    item = client.get("/api/next", headers=bearer(tokens["ana"])).json()["item"]
    if body.get("item_id", 0) is None:
        body = {**body, "item_id": item["id"]}
    answer = client.post("/api/labels", json=body, headers=bearer(tokens["ana"]))
    assert answer.status_code == status and answer.json()["error"] == code and answer.json().get("message")
    assert app.state.run._ledger.label_facts() == []


def test_an_item_leased_to_another_is_refused(client, tokens):
    item = client.get("/api/next", headers=bearer(tokens["ana"])).json()["item"]
    other = client.get("/api/next", headers=bearer(tokens["bo"])).json()["item"]
    assert other["id"] != item["id"]
    answer = client.post("/api/labels", json={"item_id": item["id"], "label": 0, "request_id": "b1"},
                         headers=bearer(tokens["bo"]))
    assert answer.status_code == 409 and answer.json()["error"] == "not_leased"


def test_images_are_served_by_item_id_only(client, tokens):
    item = client.get("/api/next", headers=bearer(tokens["ana"])).json()["item"]
    assert item["display"]["kind"] == "image"
    image = client.get(item["display"]["url"], headers=bearer(tokens["ana"]))
    assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
    for path in ("/api/items/..%2F..%2Fetc%2Fpasswd/image", "/api/items/-1/image", "/api/items/99999999/image"):
        assert client.get(path, headers=bearer(tokens["ana"])).status_code in (404, 422)


def test_the_api_labels_a_round_skips_undoes_asks_and_reports_progress(app, client, tokens):
    h = bearer(tokens["ana"])
    first = client.get("/api/next", headers=h).json()
    assert [c["key"] for c in first["classes"][:3]] == ["0", "1", "2"] and first["progress"]["round_size"] == 8
    skipped = first["item"]["id"]
    assert client.post("/api/skip", json={"item_id": skipped, "reason": "can't tell", "request_id": "s"},
                       headers=h).json()["skipped"]
    asked = client.post("/api/questions", json={"item_id": skipped, "text": "<b>blurry</b>?", "request_id": "q"},
                        headers=h)
    assert asked.status_code == 200
    ds = app.state.run.dataset
    for k in range(7):
        item = client.get("/api/next", headers=h).json()["item"]
        truth = int(ds.y_train[ds.positions([item["id"]])[0]])
        assert client.post("/api/labels", json={"item_id": item["id"], "label": str(truth), "request_id": f"l{k}"},
                           headers=h).json()["stored"] == "added"
    undone = client.post("/api/undo", json={"request_id": "u"}, headers=h).json()["item"]
    assert undone["undo"] and undone["your_answer"] is not None
    client.post("/api/labels", json={"item_id": undone["id"], "label": undone["your_answer"], "request_id": "l9"},
                headers=h)
    empty = client.get("/api/next", headers=h).json()
    assert empty["item"] is None and "1 still need" in empty["why"]
    overview = client.get("/api/lead/overview", headers=bearer(tokens["lee"])).json()
    assert [n["item_id"] for n in overview["needs_lead"]] == []  # bo could still answer it
    client.post("/api/skip", json={"item_id": client.get("/api/next", headers=bearer(tokens["bo"])).json()["item"]["id"],
                                   "request_id": "s"}, headers=bearer(tokens["bo"]))
    overview = client.get("/api/lead/overview", headers=bearer(tokens["lee"])).json()
    assert [n["item_id"] for n in overview["needs_lead"]] == [skipped]
    assert overview["questions"][0]["text"] == "<b>blurry</b>?"
    resolved = client.post("/api/lead/resolve", json={"item_id": skipped, "label": 0, "reason": "decided"},
                           headers=bearer(tokens["lee"]))
    assert resolved.status_code == 200
    assert client.get("/api/progress", headers=h).json()["run"]["state"] == "ready"
    exported = client.get("/api/export.jsonl", headers=bearer(tokens["lee"])).text.splitlines()
    decided = [json.loads(line) for line in exported if json.loads(line)["source"] == "adjudication"]
    assert [(d["item_id"], d["annotator"], d["reason"], d["current"]) for d in decided] == [
        (skipped, "lee", "decided", True)]
    lead_page = client.get("/lead", headers=bearer(tokens["lee"])).text
    assert "&lt;b&gt;blurry&lt;/b&gt;?" in lead_page and "<b>blurry</b>" not in lead_page


def test_exports_carry_provenance(app, client, tokens):
    h = bearer(tokens["ana"])
    item = client.get("/api/next", headers=h).json()["item"]
    client.post("/api/labels", json={"item_id": item["id"], "label": 4, "request_id": "x"}, headers=h)
    rows = list(csv.DictReader(io.StringIO(client.get("/api/export.csv", headers=bearer(tokens["lee"])).text)))
    assert len(rows) == 1 and rows[0]["annotator"] == "ana" and rows[0]["label"] == "4" and rows[0]["round"] == "0"
    assert rows[0]["created_at"] and rows[0]["source"] == "desk"
    lines = client.get("/api/export.jsonl", headers=bearer(tokens["lee"])).text.splitlines()
    assert json.loads(lines[0])["item_id"] == item["id"]


def test_openapi_is_served_to_signed_in_callers(client, tokens):
    spec = client.get("/api/openapi.json", headers=bearer(tokens["ana"])).json()
    assert {"/api/next", "/api/labels", "/api/skip", "/api/progress"} <= set(spec["paths"])
    assert client.get("/docs").status_code in (401, 404) and client.get("/openapi.json").status_code in (401, 404)


def test_text_items_are_returned_as_text(tmp_path):
    ds = make_blobs()
    ds = dataclasses.replace(ds, texts=tuple(f"<script>alert({i})</script> item {i}" for i in range(ds.pool_size)))
    Run.create(tmp_path / "run", dataset=ds, **QUICK).close()
    app = create_app(tmp_path / "run", dataset=ds)
    token = app.state.accounts.add("ana")
    shown = TestClient(app).get("/api/next", headers=bearer(token)).json()["item"]["display"]
    assert shown["kind"] == "text" and shown["text"].startswith("<script>alert(")
    classes = TestClient(app).get("/api/next", headers=bearer(token)).json()["classes"]
    assert [c["key"] for c in classes] == ["1", "2", "3"]  # names c0, c1, c2: keys in order
    app.state.run.close()


def test_the_worker_trains_a_round_once_its_labels_are_complete(app, client, tokens):
    h = bearer(tokens["ana"])
    ds = app.state.run.dataset
    for k in range(8):
        item = client.get("/api/next", headers=h).json()["item"]
        client.post("/api/labels", json={"item_id": item["id"], "label": int(ds.y_train[ds.positions([item["id"]])[0]]),
                                         "request_id": f"w{k}"}, headers=h)
    assert work(app.state.run.path, once=True) == 0
    assert client.get("/api/progress", headers=h).json()["model"]["version"] == 1
    nxt = client.get("/api/next", headers=h).json()
    assert nxt["item"]["round"] == 1 and nxt["model"]["worker"]["state"] == "idle"
    assert "suggestion" not in nxt["item"]  # off unless asked for
    guess = client.get("/api/next?suggest=true", headers=h).json()["item"]["suggestion"]
    assert guess["model_version"] == 1 and guess["label"] in app.state.run.class_names
    assert 0 < guess["probability"] <= 1
    lead_page = client.get("/lead", headers=bearer(tokens["lee"])).text
    assert "a forecast needs 4" in lead_page
    log = (app.state.run.path / "serve" / "worker.log").read_text()
    assert "round 0: trained" in log
    assert np.isfinite(json.loads((app.state.run.path / "serve" / "worker.json").read_text())["last_accuracy"])


def test_ids_outside_64_bits_and_oversized_bodies_get_json_errors(client, tokens):
    h = bearer(tokens["ana"])
    huge = client.post("/api/labels", json={"item_id": 2**63, "label": 0, "request_id": "h"}, headers=h)
    assert huge.status_code == 422 and huge.json()["error"] == "bad_item_id"
    assert client.get(f"/api/items/{10**20}/image", headers=h).status_code == 404
    big = client.post("/api/questions", content=b'{"text": "' + b"x" * 100_000 + b'"}',
                      headers={**h, "Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["error"] == "too_large"
    assert client.post("/signin", content=b"{" + b" " * 70_000 + b"}",
                       headers={"Content-Type": "application/json"}).status_code == 413


def test_cookie_requests_from_another_site_are_refused_even_gets(client, tokens):
    client.post("/signin", json={"token": tokens["ana"]})
    assert client.get("/api/next", headers={"Sec-Fetch-Site": "same-site"}).status_code == 403
    assert client.get("/api/next", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.get("/api/next", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert client.get("/", headers={"Sec-Fetch-Site": "none"}).status_code == 200
