"""Interchange with Label Studio: tasks out (answers, decisions, predictions, config), exports in."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from calkit import Run
from calkit.cli import main
from calkit.data import Dataset
from calkit.errors import IngestError
from calkit.label_studio import export_tasks, import_tasks, labeling_config
from calkit.labeling import Accounts, Desk
from calkit.labeling import pilot as pilots
from tests.conftest import make_blobs, save_npz

QUICK = dict(oracle="people", initial=8, round_size=4, rounds=2, epochs=1, model="mlp:8")


def _make(path, data):
    return Run.create(path, dataset=data, **QUICK)


@pytest.fixture
def npz(tmp_path):
    return str(save_npz(make_blobs(n_pool=40), tmp_path / "blobs.npz"))


@pytest.fixture
def pair(tmp_path, npz):
    """Two fresh runs over the same data and seed (so the same initial query)."""
    a, b = _make(tmp_path / "a", npz), _make(tmp_path / "b", npz)
    assert [i.id for i in a.pending()] == [i.id for i in b.pending()]
    yield a, b
    a.close()
    b.close()


def _answers(run) -> dict[tuple[int, str], tuple[int, str, str | None]]:
    """(item, annotator) -> (label, source, guideline) of every current answer."""
    rows = run._ledger._conn.execute(
        "SELECT item_id, annotator, label, source, guideline_version FROM current_answers").fetchall()
    return {(i, a): (y, s, g) for i, a, y, s, g in rows}


def _label_some(run) -> list[int]:
    ids = [i.id for i in run.pending()]
    run.submit({ids[0]: "c0", ids[1]: "c1", ids[2]: "c2"}, annotator="ana", guideline_version="3")
    run.submit({ids[0]: "c2", ids[1]: "c1"}, annotator="bo")
    run.submit({ids[0]: "c1"}, annotator="bo")  # bo changes his mind: revision 1 is current
    return ids


def test_export_then_import_into_a_fresh_run_gives_the_same_current_answers(pair):
    a, b = pair
    ids = _label_some(a)
    tasks = export_tasks(a)
    assert [t["data"]["calkit_item_id"] for t in tasks] == ids  # every asked item, in rank order
    first = tasks[0]
    assert {ann["calkit"]["annotator"]: ann["result"][0]["value"]["choices"] for ann in first["annotations"]} == \
        {"ana": ["c0"], "bo": ["c1"]}
    assert first["annotations"][0]["result"][0]["to_name"] == "features" and "features" in first["data"]
    assert "completed_by" not in first["annotations"][0]  # Label Studio refuses names that are not its users

    result = import_tasks(b, json.loads(json.dumps(tasks)))
    assert (result.tasks, result.labels, result.problems) == (len(ids), 5, ())
    expected = {key: (label, "label-studio", guideline) for key, (label, _, guideline) in _answers(a).items()}
    assert _answers(b) == expected
    assert expected[(ids[0], "ana")][2] == "3"


def test_an_export_that_went_through_label_studio_keeps_calkit_names_and_adds_its_users(pair):
    a, b = pair
    ids = _label_some(a)
    tasks = export_tasks(a)
    # What Label Studio keeps on import and gives back on export: data, meta, and of each
    # annotation its result (region ids included); the importing user (id 1) completed them all.
    back = []
    for task in tasks:
        anns = [{"id": 50 + k, "completed_by": 1, "result": ann["result"], "was_cancelled": False,
                 "ground_truth": ann["ground_truth"], "created_at": "2030-01-01T00:00:00Z"}
                for k, ann in enumerate(task["annotations"])]
        back.append({"id": 7, "data": task["data"], "meta": task.get("meta", {}), "annotations": anns})
    choice = copy.deepcopy(back[0]["annotations"][0]["result"][0])
    choice.update(id="Xy12", value={"choices": ["c2"]})
    back[2]["annotations"].append({"completed_by": {"id": 9, "email": "cy@example.org"}, "result": [choice]})
    back[3]["annotations"].append({"completed_by": 12, "result": [dict(choice, value={"choices": ["c0"]})]})
    back[1]["annotations"][0]["result"][0]["value"] = {"choices": ["c0"]}  # ana's c1 changed in Label Studio

    result = import_tasks(b, back)
    assert result.problems == ()
    got = _answers(b)
    assert got[(ids[0], "ana")][0] == 0 and got[(ids[0], "bo")][0] == 1  # calkit names kept
    assert got[(ids[2], "cy@example.org")][0] == 2 and got[(ids[3], "ls-12")][0] == 0
    assert got[(ids[1], "ls-1")][0] == 0 and (ids[1], "ana") not in got  # the change is the editor's

    minimal = [{"calkit_item_id": ids[4], "round": 0, "features": {}, "id": 8, "label": "c1", "annotator": "di@x.org",
                "annotation_id": 3, "created_at": "2030-01-01T00:00:00Z"},
               {"calkit_item_id": ids[5], "id": 9}]  # JSON-MIN; a task nobody annotated
    assert import_tasks(b, minimal).labels == 1 and _answers(b)[(ids[4], "di@x.org")][0] == 1


def test_predictions_carry_the_models_score_and_round(pair):
    a, _ = pair
    ids = [i.id for i in a.pending()]
    probs = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    Desk(a).store_suggestions(ids[:2], probs, model_round=0)
    tasks = export_tasks(a)
    first = tasks[0]["predictions"]
    assert len(first) == 1 and first[0]["model_version"] == "round-0"
    assert first[0]["score"] == pytest.approx(0.7) and first[0]["result"][0]["value"] == {"choices": ["c1"]}
    assert tasks[1]["predictions"][0]["score"] == pytest.approx(0.6) and tasks[2]["predictions"] == []
    assert export_tasks(a, annotations=False)[0]["predictions"] == first


def test_a_leads_decision_is_a_ground_truth_annotation_and_comes_back_once(pair):
    a, b = pair
    ids = _label_some(a)
    a.resolve({ids[0]: "c2"}, decided_by="lea", reason="the tail says c2")
    decision = [ann for ann in export_tasks(a)[0]["annotations"] if ann["ground_truth"]]
    assert len(decision) == 1
    assert decision[0]["calkit"] | {"created_at": None} == {
        "kind": "adjudication", "decided_by": "lea", "label": "c2", "reason": "the tail says c2", "round": 0,
        "created_at": None}
    tasks = export_tasks(a)
    assert import_tasks(b, tasks).adjudications == 1
    assert b._ledger.adjudicated([ids[0]]) == {ids[0]: 2}
    assert import_tasks(b, tasks).adjudications == 0
    assert import_tasks(a, tasks).adjudications == 0  # back into the run that decided it: lea's decision holds
    assert import_tasks(b, export_tasks(b)).adjudications == 0  # the recorded name is not wrapped again
    # a file's name is no calkit identity: the decision is Label Studio's, with the name it gave
    assert b._ledger._conn.execute("SELECT decided_by, reason FROM adjudications").fetchall() == [
        ("label-studio (lea)", "the tail says c2")]
    b.resolve({ids[0]: "c0"}, decided_by="max", reason="a newer decision")
    old = import_tasks(b, tasks)
    assert (old.adjudications, old.stale) == (0, 1) and b._ledger.adjudicated([ids[0]]) == {ids[0]: 0}


def test_bad_tasks_are_reported_and_the_good_ones_imported(pair):
    a, b = pair
    ids = [i.id for i in a.pending()]
    later = sorted(set(a.dataset.ids.tolist()) - set(ids))[0]

    def task(item, label, who=4, **more):
        result = [{"from_name": "label", "to_name": "features", "type": "choices", "value": {"choices": [label]}}]
        return {"data": {"calkit_item_id": item}, "annotations": [{"completed_by": who, "result": result, **more}]}

    tasks = [
        "not a task",
        {"data": {"text": "no id"}, "annotations": []},
        task(ids[0], "c9"),
        task(later, "c1"),  # never asked
        task(ids[1], "c1", was_cancelled=True),
        task(ids[2], "c1", who="simulated"),
        {"data": {"calkit_item_id": ids[3]}, "annotations": [{"completed_by": 4, "result": []}]},
        task(ids[4], "c2"),
    ]
    result = import_tasks(a, tasks)
    assert result.tasks == 8 and result.labels == 1 and result.cancelled == 1
    problems = "\n".join(result.problems)
    assert len(result.problems) == 6, problems
    assert "task 1: not a JSON object" in problems and "task 2: no calkit item" in problems
    assert "item " + str(ids[0]) in problems and "'c9' is not one of" in problems
    assert f"item {later}: not in the open query" in problems and "simulated" in problems
    assert "no class chosen" in problems
    assert _answers(a) == {(ids[4], "ls-4"): (2, "label-studio", None)}


def test_importing_twice_adds_nothing_and_an_old_export_does_not_undo_a_newer_answer(pair):
    a, b = pair
    ids = _label_some(a)
    tasks = export_tasks(a)
    assert import_tasks(b, tasks).labels == 5
    again = import_tasks(b, tasks)
    assert (again.labels, again.unchanged, again.problems) == (0, 5, ())
    assert b._ledger.label_count() == 5
    b.submit({ids[0]: "c2"}, annotator="ana")  # ana's newer answer in calkit
    old = import_tasks(b, tasks)
    assert old.stale == 1 and old.labels == 0 and _answers(b)[(ids[0], "ana")][0] == 2


def test_labeling_config_lists_every_class_escaped_and_text_items_show_their_text(tmp_path):
    names = ("a<b", "x & y", 'say "hi"', "it's")
    rng = np.random.default_rng(0)
    ds = Dataset(name="texts", x_train=rng.normal(size=(30, 4)).astype(np.float32), y_train=None,
                 class_names=names, ids=np.arange(30, dtype=np.int64), texts=tuple(f"text <{i}> & more" for i in range(30)))
    with _make(tmp_path / "run", ds) as run:
        config = labeling_config(run)
        root = ET.fromstring(config)
        assert [c.get("value") for c in root.iter("Choice")] == list(names)
        assert root.find("Text").attrib == {"name": "text", "value": "$text"}
        assert root.find("Choices").get("toName") == "text" and root.find("Choices").get("name") == "label"
        task = export_tasks(run)[0]
        assert task["data"]["text"] == run.dataset.display(task["data"]["calkit_item_id"])


def test_image_items_point_at_calkit_serve_or_embed_a_png(tmp_path):
    rng = np.random.default_rng(0)
    ds = Dataset(name="pictures", x_train=rng.normal(size=(30, 1, 6, 6)).astype(np.float32), y_train=None,
                 class_names=("cat", "dog"), ids=np.arange(100, 130, dtype=np.int64))
    with Run.create(tmp_path / "run", dataset=ds, **{**QUICK, "model": "convnet:4-8"}) as run:
        assert '<Image name="image" value="$image"/>' in labeling_config(run)
        task = export_tasks(run, "open")[0]
        assert task["data"]["image"] == f"/api/items/{task['data']['calkit_item_id']}/image"
        assert export_tasks(run, image_url="http://h:8000/i/{id}.png")[0]["data"]["image"] == \
            f"http://h:8000/i/{task['data']['calkit_item_id']}.png"
        embedded = export_tasks(run, [task["data"]["calkit_item_id"]], embed_images=True)
        assert len(embedded) == 1 and embedded[0]["data"]["image"].startswith("data:image/png;base64,iVBOR")


def test_cli_exports_and_ingests(tmp_path, npz, capsys):
    a, b = _make(tmp_path / "a", npz), _make(tmp_path / "b", npz)
    ids = _label_some(a)
    a.close()
    b.close()
    out, config = tmp_path / "tasks.json", tmp_path / "config.xml"
    assert main(["export", str(tmp_path / "a"), "--format", "label-studio", "-o", str(out), "--config", str(config)]) == 0
    assert "exported 8 tasks, 5 annotations" in capsys.readouterr().out
    assert len(json.loads(out.read_text())) == 8 and "<Choice value=\"c2\"/>" in config.read_text()
    assert main(["export", str(tmp_path / "a"), "-o", str(tmp_path / "labels.csv")]) == 0
    assert "exported 6 labels and decisions" in capsys.readouterr().out
    csv_lines = (tmp_path / "labels.csv").read_text().splitlines()
    assert csv_lines[0].startswith("item_id,label,") and len(csv_lines) == 1 + 6  # every fact, superseded too
    assert main(["export", str(tmp_path / "a"), "--format", "jsonl"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 6

    assert main(["ingest", str(tmp_path / "b"), str(out)]) == 0  # a JSON array: found to be Label Studio's
    assert "imported 5 labels from 8 tasks, 0 problems" in capsys.readouterr().out
    assert main(["ingest", str(tmp_path / "b"), str(out), "--format", "label-studio"]) == 0
    assert "imported 0 labels from 8 tasks, 0 problems (5 already present)" in capsys.readouterr().out
    with Run.open(tmp_path / "b") as run:
        assert _answers(run)[(ids[0], "bo")][0] == 1

    bad = tmp_path / "bad.json"
    bad.write_text("[{\"data\": {\"calkit_item_id\": 1}} oops")
    assert main(["ingest", str(tmp_path / "b"), str(bad)]) == 2
    assert "not JSON" in capsys.readouterr().err
    bad.write_text("{\"tasks\": []}")
    assert main(["ingest", str(tmp_path / "b"), str(bad), "--format", "label-studio"]) == 2
    assert "a JSON array of tasks, this is a JSON dict" in capsys.readouterr().err
    bad.write_text(json.dumps([{"data": {"calkit_item_id": ids[0]}, "annotations": [
        {"completed_by": 3, "result": [{"type": "choices", "value": {"choices": ["zebra"]}}]}]}]))
    assert main(["ingest", str(tmp_path / "b"), str(bad)]) == 1
    err = capsys.readouterr()
    assert "'zebra' is not one of" in err.err and "imported 0 labels from 1 tasks, 1 problems" in err.out


def test_a_path_that_is_not_an_export_is_refused(pair, tmp_path):
    a, _ = pair
    with pytest.raises(IngestError, match="no such file"):
        import_tasks(a, tmp_path / "missing.json")


def _choice(label: str, region: str = "r1") -> list[dict]:
    return [{"id": region, "from_name": "label", "to_name": "features", "type": "choices", "value": {"choices": [label]}}]


def test_a_file_cannot_decide_as_a_calkit_lead(pair):
    a, _ = pair
    ids = [i.id for i in a.pending()]
    Accounts(a._ledger).add("lee", role="lead")
    forged = [{"data": {"calkit_item_id": ids[0]}, "annotations": [{"result": _choice("c1"), "calkit": {
        "kind": "adjudication", "decided_by": "lee", "label": "c1", "reason": "lead said so",
        "created_at": "2999-01-01T00:00:00"}}]}]
    assert import_tasks(a, forged).adjudications == 1
    assert a._ledger._conn.execute("SELECT item_id, label, decided_by, reason FROM adjudications").fetchall() == [
        (ids[0], 1, "label-studio (lee)", "lead said so")]
    a.resolve({ids[0]: "c2"}, decided_by="lee", reason="the real lead")
    assert import_tasks(a, forged).adjudications == 1  # recorded again, still as Label Studio's, never as lee's
    assert {r[0] for r in a._ledger._conn.execute("SELECT decided_by FROM adjudications")} == {
        "lee", "label-studio (lee)"}


def test_a_file_cannot_replace_an_answer_given_in_calkit(pair):
    a, _ = pair
    ids = [i.id for i in a.pending()]
    a.submit({ids[0]: "c0", ids[1]: "c1", ids[3]: "c1"}, annotator="ana")  # ana's own answers, through calkit
    tasks = [
        {"data": {"calkit_item_id": ids[0]}, "annotations": [  # a Label Studio user whose email is "ana"
            {"result": _choice("c2"), "completed_by": {"email": "ana"}, "updated_at": "2999-01-01T00:00:00Z"}]},
        {"data": {"calkit_item_id": ids[1]}, "meta": {"calkit_annotations": {"r1": {"annotator": "ana", "label": "c2"}}},
         "annotations": [{"result": _choice("c2")}]},  # calkit's provenance, written by hand
        {"data": {"calkit_item_id": ids[2]}, "annotations": [{"result": _choice("c2"), "completed_by": {"email": "ana"}}]},
        {"data": {"calkit_item_id": ids[3]}, "annotations": [{"result": _choice("c1"), "completed_by": {"email": "ana"}}]},
    ]
    result = import_tasks(a, tasks)
    problems = "\n".join(result.problems)
    assert len(result.problems) == 2 and problems.count("would replace ana's own answer given in calkit") == 2, problems
    assert f"item {ids[0]}, annotation 1" in problems and f"item {ids[1]}, annotation 1" in problems
    assert (result.labels, result.unchanged) == (1, 1)  # a name with no answer there yet; ana's same answer
    assert _answers(a)[(ids[0], "ana")] == (0, "api", None) and _answers(a)[(ids[1], "ana")] == (1, "api", None)
    assert _answers(a)[(ids[2], "ana")] == (2, "label-studio", None)
    # an answer read from Label Studio may be replaced by a later one from Label Studio
    later = [{"data": {"calkit_item_id": ids[2]}, "annotations": [{"result": _choice("c0"), "completed_by": {"email": "ana"}}]}]
    assert import_tasks(a, later).labels == 1 and _answers(a)[(ids[2], "ana")][0] == 0


def test_a_time_in_the_future_counts_as_now(pair):
    a, _ = pair
    ids = [i.id for i in a.pending()]
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    with a._ledger.transaction() as conn:  # an answer from Label Studio stored by a clock a day ahead
        conn.execute("INSERT INTO labels(item_id, annotator, revision, label, round, source, created_at) "
                     "VALUES (?, 'ls-4', 0, 1, 0, 'label-studio', ?)", (ids[0], tomorrow))
    old = [{"data": {"calkit_item_id": ids[0]}, "annotations": [
        {"result": _choice("c2"), "completed_by": 4, "updated_at": "2999-01-01T00:00:00Z"}]}]
    result = import_tasks(a, old)
    assert (result.stale, result.labels) == (1, 0) and _answers(a)[(ids[0], "ls-4")][0] == 1


def test_nothing_is_imported_while_a_pilots_gate_is_closed(pair):
    a, _ = pair
    ids = [i.id for i in a.pending()]
    accounts = Accounts(a._ledger)
    for name in ("ana", "bo"):
        accounts.add(name)
    pilot = pilots.start(a, "lee", n_items=2, raters=["ana", "bo"])
    tasks = [{"data": {"calkit_item_id": item}, "annotations": [
        {"result": _choice("c1"), "completed_by": {"email": who}} for who in ("ana", "bo")]} for item in pilot.items]
    tasks.append({"data": {"calkit_item_id": ids[-1]}, "annotations": [{"result": _choice("c1"), "completed_by": 4}]})
    with pytest.raises(IngestError, match="Pilot answers come from the raters at the labeling desk"):
        import_tasks(a, tasks)
    assert a._ledger.label_count() == 0
    pilots.open_gate(a, "lee", "we talked it through")
    assert import_tasks(a, tasks).labels == 5


def test_item_ids_out_of_range_and_files_that_cannot_be_read_are_problems_not_crashes(pair, tmp_path):
    a, _ = pair
    ids = [i.id for i in a.pending()]

    def task(item, who=4):
        return {"data": {"calkit_item_id": item}, "annotations": [{"result": _choice("c1"), "completed_by": who}]}

    tasks = [task(2**64), task(-(2**63) - 1), task("1" * 5000), task("1" * 21), task("--5"), task(10**5000),
             task(ids[1], who=2**64), task(ids[2], who=10**5000),
             {"id": 10**5000, "data": {"calkit_item_id": ids[3]}, "annotations": [{"result": _choice(10**5000)}]},
             task(ids[0])]
    result = import_tasks(a, tasks)
    problems = "\n".join(result.problems)
    assert len(result.problems) == 9 and problems.count("is not an item id") == 6, problems
    assert len(problems) < 9 * 400  # no huge value repeated in a message
    assert result.labels == 1 and _answers(a) == {(ids[0], "ls-4"): (1, "label-studio", None)}

    deep, digits = tmp_path / "deep.json", tmp_path / "digits.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    digits.write_text('[{"data": {"calkit_item_id": ' + "1" * 5000 + "}}]")
    with pytest.raises(IngestError, match="nested too deeply"):
        import_tasks(a, deep)
    with pytest.raises(IngestError, match="unreadable JSON"):
        import_tasks(a, digits)
