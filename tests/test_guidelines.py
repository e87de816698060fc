"""Versioned guidelines: versions, the version each answer followed, the screen and the lead's diff."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from calkit import Run  # noqa: E402
from calkit.cli import main  # noqa: E402
from calkit.errors import CalkitError  # noqa: E402
from calkit.labeling import Desk, Guidelines  # noqa: E402
from calkit.labeling.guidelines import render  # noqa: E402
from calkit.web.app import create_app  # noqa: E402

QUICK = dict(oracle="people", initial=8, round_size=4, rounds=2, epochs=1, model="mlp:8")


@pytest.fixture
def run(tmp_path):
    run = Run.create(tmp_path / "run", dataset="digits", **QUICK)
    yield run
    run.close()


def test_versions_and_the_version_each_answer_followed(run):
    guidelines, desk = Guidelines(run), Desk(run)
    first = desk.next("ana")
    assert desk.submit("ana", first.item_id, 1, "a")["guideline"] is None
    v1 = guidelines.set("# Digits\nA 7 may have a bar.\n", note="first")
    assert v1.label == "v1" and guidelines.set("# Digits\nA 7 may have a bar.\n").version == 1  # same text
    v2 = guidelines.set("# Digits\nA 7 may have a bar.\nA 1 has no base.\n", note="ones")
    lease = desk.next("ana")
    assert desk.submit("ana", lease.item_id, 2, "b")["guideline"] == "v2"
    stored = {f["item_id"]: f["guideline_version"] for f in run._ledger.label_facts()}
    assert stored == {first.item_id: None, lease.item_id: "v2"}
    assert "+A 1 has no base." in guidelines.diff(1, 2) and [g.label for g in guidelines.history()] == ["v1", "v2"]
    with pytest.raises(CalkitError):
        guidelines.set("   ")
    assert v2.note == "ones"


def test_markdown_is_rendered_without_raw_html_or_script_links():
    html = render("# Title\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) **bold**")
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert "<script>" not in html and "href=\"javascript" not in html


def test_the_screen_shows_the_guideline_and_the_lead_sees_the_history(run, tmp_path):
    Guidelines(run).set("# Rules\nLabel <b>what you see</b>.\n")
    Guidelines(run).set("# Rules\nLabel what you see; skip when unsure.\n", note="skips")
    app = create_app(run.path)
    ana, lee = app.state.accounts.add("ana"), app.state.accounts.add("lee", role="lead")
    client = TestClient(app)
    page = client.get("/", headers={"Authorization": f"Bearer {ana}"}).text
    assert 'data-version="v2"' in page and "skip when unsure" in page
    progress = client.get("/api/progress", headers={"Authorization": f"Bearer {ana}"}).json()
    assert progress["guideline"] == "v2"
    lead = client.get("/lead", headers={"Authorization": f"Bearer {lee}"}).text
    assert "v2 · " in lead and "+Label what you see; skip when unsure." in lead
    assert "&lt;b&gt;what you see&lt;/b&gt;" in lead  # the diff is text
    app.state.run.close()


def test_the_guideline_command(run, tmp_path, capsys):
    text = tmp_path / "guide.md"
    text.write_text("# Digits\n")
    path = str(run.path)
    assert main(["guideline", path, "set", str(text), "--note", "start"]) == 0
    assert "guideline v1 is now current" in capsys.readouterr().out
    text.write_text("# Digits\nSevens.\n")
    main(["guideline", path, "set", str(text)])
    capsys.readouterr()
    assert main(["guideline", path, "diff", "1", "2"]) == 0 and "+Sevens." in capsys.readouterr().out
    assert main(["guideline", path, "show", "--version", "1"]) == 0 and capsys.readouterr().out == "# Digits\n"
    assert main(["guideline", path, "history"]) == 0 and "v1\t" in capsys.readouterr().out
    assert main(["guideline", path, "set", str(tmp_path / "missing.md")]) == 2
