"""The labeling application in a real browser: Debian's Chromium driven by Playwright.

An annotator signs in from the link, labels ten items by keyboard, undoes one, skips one, asks a
question and sees progress; the lead sees it all on the dashboard; the worker trains the round
and the next one appears; item text with markup shows as text and runs nothing. Screenshots go
to the test's folder, and to $CALKIT_SCREENSHOTS when that is set (the README's come from there).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="no chromium here: apt-get install chromium")]

import uvicorn  # noqa: E402

from calkit import Run  # noqa: E402
from calkit.labeling.desk import Desk  # noqa: E402
from calkit.labeling.guidelines import Guidelines  # noqa: E402
from calkit.labeling.worker import work  # noqa: E402
from calkit.web.app import create_app  # noqa: E402
from tests.conftest import make_blobs  # noqa: E402

expect = playwright.expect


class LiveServer:
    """The application on a free port of 127.0.0.1, in a thread, with a worker thread beside it."""

    def __init__(self, run_path: Path, dataset=None, worker: bool = True):
        self.app = create_app(run_path, dataset=dataset)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.stop_worker = threading.Event()
        self.worker = threading.Thread(target=work, args=(run_path,),
                                       kwargs={"poll": 0.3, "stop": self.stop_worker, "dataset": dataset}, daemon=True)
        if worker:
            self.worker.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

    def close(self) -> None:
        self.stop_worker.set()
        self.server.should_exit = True
        self.thread.join(timeout=10)
        if self.worker.is_alive():
            self.worker.join(timeout=60)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


def shot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 1000
    if os.environ.get("CALKIT_SCREENSHOTS"):
        target = Path(os.environ["CALKIT_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)


def current_item(page) -> int:
    expect(page.locator("#labeling")).to_be_visible()
    return int(re.match(r"item (\d+)", page.locator("#item-meta").inner_text()).group(1))


def test_an_annotator_labels_by_keyboard_and_the_lead_sees_it(browser, tmp_path):
    Run.create(tmp_path / "run", dataset="digits", oracle="people", policy="cal", initial=12, round_size=6,
               rounds=3, epochs=2, model="mlp:32").close()
    server = LiveServer(tmp_path / "run")
    try:
        accounts = server.app.state.accounts
        ana, lee = accounts.add("ana"), accounts.add("lee", role="lead")
        ds = server.app.state.run.dataset
        truth = lambda item: int(ds.y_train[ds.positions([item])[0]])  # noqa: E731
        Guidelines(server.app.state.run).set("# Digits\n\nA **7** may have a bar. Skip what you cannot read.\n")
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.goto(f"{server.url}/signin#token={ana}")
        expect(page).to_have_url(f"{server.url}/")
        expect(page.locator("#guideline .guideline-text")).to_contain_text("may have a bar")  # open on a first visit
        expect(page.locator("#guideline-new")).to_be_visible()
        shot(page, tmp_path, "label-guideline")
        page.locator("#guideline summary").click()
        page.reload()
        expect(page.locator("#guideline .guideline-text")).to_be_hidden()  # read: closed from now on
        seen = []
        for _ in range(10):
            item = current_item(page)
            assert item not in seen
            seen.append(item)
            page.keyboard.press(str(truth(item)))  # digits: each class is its own key
            expect(page.locator("#message")).to_contain_text(f"saved: item {item}")
        expect(page.locator("#your-progress")).to_contain_text("10")
        expect(page.locator("#round-progress")).to_contain_text("round 0: 10 / 12")
        expect(page.locator("#model-status")).to_contain_text("version 0")
        page.keyboard.press("Backspace")
        expect(page.locator("#undo-note")).to_be_visible()
        assert current_item(page) == seen[-1]
        shot(page, tmp_path, "label-undo")
        page.keyboard.press(str(truth(seen[-1])))
        expect(page.locator("#message")).to_contain_text(f"saved: item {seen[-1]}")
        skipped = current_item(page)
        page.keyboard.press(".")
        expect(page.locator("#skip-reason")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#message")).to_contain_text(f"skipped item {skipped}")
        asked = current_item(page)
        page.keyboard.press("?")
        page.keyboard.type("Is a 7 with a bar still a 7?")
        page.keyboard.press("Enter")
        expect(page.locator("#message")).to_contain_text("question sent")
        shot(page, tmp_path, "label")
        page.set_viewport_size({"width": 380, "height": 800})
        shot(page, tmp_path, "label-narrow")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")

        lead = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
        lead.goto(f"{server.url}/signin#token={lee}")
        expect(lead).to_have_url(f"{server.url}/lead")
        row = lead.locator("#annotators tr", has_text="ana")
        expect(row).to_contain_text("10")
        expect(lead.locator("#questions")).to_contain_text("Is a 7 with a bar still a 7?")
        expect(lead.locator("#skips")).to_contain_text(str(skipped))
        expect(lead.get_by_text("v1 · ")).to_be_visible()
        rows = list(csv.DictReader(io.StringIO(lead.request.get(f"{server.url}/api/export.csv").text())))
        assert {r["guideline_version"] for r in rows} == {"v1"} and len(rows) == 10  # the undo kept its answer
        shot(lead, tmp_path, "lead")
        lead.locator("form.answer textarea").first.fill("Yes: a 7 with a bar is a 7.")
        lead.locator("form.answer button[type=submit]").first.click()
        expect(lead.locator("button.promote")).to_be_visible()  # the page reloaded with the answer
        page.locator("#question-log summary").click()
        page.locator("#question-search").fill("bar")
        expect(page.locator("#question-results")).to_contain_text("A (lee): Yes: a 7 with a bar is a 7.")
        shot(page, tmp_path, "label-questions")
        page.locator("#question-search").blur()

        # the last item of round 0 is ana's lease; the skipped one goes to bo (by the API); then the worker trains
        page.keyboard.press(str(truth(asked)))
        desk = Desk(server.app.state.run)
        lease = desk.next("bo")
        assert lease.item_id == skipped
        desk.submit("bo", lease.item_id, truth(lease.item_id), "bo-1")
        expect(page.locator("#item-meta")).to_contain_text("round 1", timeout=90_000)
        expect(page.locator("#model-status")).to_contain_text("version 1", timeout=10_000)
        lead.reload()
        expect(lead.locator("svg.curve")).to_be_visible()
        shot(lead, tmp_path, "lead-after-round")
    finally:
        server.close()


def test_item_text_with_markup_shows_as_text_and_runs_nothing(browser, tmp_path):
    ds = make_blobs()
    texts = [f"<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\"> item {i}"
             for i in range(ds.pool_size)]
    ds = dataclasses.replace(ds, texts=tuple(texts))
    Run.create(tmp_path / "run", dataset=ds, oracle="people", initial=6, round_size=3, rounds=2, epochs=1,
               model="mlp:8").close()
    server = LiveServer(tmp_path / "run", dataset=ds, worker=False)
    try:
        token = server.app.state.accounts.add("ana")
        page = browser.new_context().new_page()
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f"{server.url}/signin#token={token}")
        text = page.locator("#item .text")
        expect(text).to_contain_text("<script>window.__pwned = 1</script><img src=x")
        assert page.locator("#item script, #item img").count() == 0
        assert page.evaluate("window.__pwned === undefined") and dialogs == []
        shot(page, tmp_path, "label-text")
    finally:
        server.close()


def test_the_lead_runs_a_pilot_opens_the_gate_adjudicates_and_corrects(browser, tmp_path):
    from calkit.label_review import Suspect
    from calkit.labeling import review_queue

    Run.create(tmp_path / "run", dataset="digits", oracle="people", initial=12, round_size=6, rounds=2, epochs=1,
               model="mlp:8").close()
    server = LiveServer(tmp_path / "run", worker=False)
    try:
        run = server.app.state.run
        accounts = server.app.state.accounts
        raters = [accounts.add(name) and name for name in ("ana", "bo", "cy")]
        lee = accounts.add("lee", role="lead")
        truth = lambda item: int(run.dataset.y_train[run.dataset.positions([item])[0]])  # noqa: E731
        lead = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
        lead.goto(f"{server.url}/signin#token={lee}")
        expect(lead).to_have_url(f"{server.url}/lead")
        lead.locator("#start-pilot input[name=items]").fill("4")
        lead.locator("#start-pilot button").click()
        expect(lead.locator("#pilot")).to_contain_text("running")
        expect(lead.locator("#pilot")).to_contain_text("ana 0/4")
        desk = Desk(run)
        for k, who in enumerate(raters):  # they agree on two items and all differ on two
            for n in range(4):
                lease = desk.next(who)
                desk.submit(who, lease.item_id, (truth(lease.item_id) + (k if n < 2 else 0)) % 10, f"{who}-{n}")
        lead.reload()
        expect(lead.locator("#pilot .state-failed")).to_have_text("failed")
        expect(lead.locator("#pilot-disputed tbody tr")).to_have_count(2)
        shot(lead, tmp_path, "lead-pilot-failed")
        lead.locator("#open-gate input[name=reason]").fill("two odd items; guideline v2 explains them")
        lead.locator("#open-gate button").click()
        expect(lead.locator("#pilot .state-opened")).to_have_text("opened")
        expect(lead.locator("#pilot")).to_contain_text("Opened by lee: two odd items; guideline v2 explains them")

        disputed = lead.locator("#needs-lead tbody tr")
        expect(disputed).to_have_count(2)
        first = disputed.first.locator("form.resolve")
        item = int(first.get_attribute("data-item"))
        first.locator("select").select_option(str(truth(item)))
        first.locator("input[name=reason]").fill("it is plainly this digit")
        first.locator("button").click()
        expect(lead.locator("#needs-lead tbody tr")).to_have_count(1)
        assert run._ledger.adjudicated([item]) == {item: truth(item)}
        dialogs = []
        lead.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))  # confirm, then what was decided
        lead.locator("#adjudicate-model").click()
        expect(lead.locator("#decisions")).to_contain_text("Nothing waits for you.")
        assert "Dawid-Skene" in dialogs[0] and dialogs[1].startswith("Decided 1 item(s)")
        expect(lead.locator("#agreement")).to_contain_text("4 items with two or more answers")

        suspect = desk.next("ana").item_id  # a label in review: ana answers wrongly, the lead corrects it
        desk.submit("ana", suspect, (truth(suspect) + 1) % 10, "ana-wrong")
        review_queue.store(run, [Suspect(suspect, 0, (truth(suspect) + 1) % 10, truth(suspect), 0.05, True)], "test")
        lead.reload()
        row = lead.locator("#review-queue tbody tr")
        expect(row).to_have_count(1)
        shot(lead, tmp_path, "lead-review")
        row.locator("form.correct button").click()  # the models' class is preselected
        expect(lead.locator("#review-queue tbody tr.done")).to_have_count(1)
        assert run._ledger.adjudicated([suspect]) == {suspect: truth(suspect)}

        lead.locator("#add-holdout input[name=items]").fill("5")
        lead.locator("#add-holdout button").click()
        expect(lead.locator("#holdout")).to_contain_text("5 random items are held out")
        annotator = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
        annotator.goto(f"{server.url}/signin#token={accounts.reset('bo')}")
        expect(annotator.locator("#item-meta")).to_contain_text("validation (never trained on)")
        shot(annotator, tmp_path, "label-holdout")
    finally:
        server.close()
