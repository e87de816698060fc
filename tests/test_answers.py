"""People as the oracle: `write_query` / `ingest`, the human-in-the-loop run, and their CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from calkit.answers import QUERY_FIELDS, ingest, pending_round, write_query
from calkit.run import Run
from calkit.cli import EXIT_AWAITING_LABELS, main
from calkit.config import RunConfig
from calkit.errors import IngestError, LedgerError
from calkit.ledger import Ledger
from calkit.loop import ActiveLoop
from conftest import make_blobs

CLASSES = ["c0", "c1", "c2"]


def _config(**overrides) -> RunConfig:
    base = dict(dataset="blobs", oracle="people", initial=20, round_size=10, rounds=3, epochs=2, model="mlp:16")
    base.update(overrides)
    return RunConfig(**base)


@pytest.fixture
def waiting(tmp_path):
    """A files-oracle run stopped at round 0 with 20 items awaiting labels: (loop, dataset)."""
    ds = make_blobs()
    loop = ActiveLoop.create(tmp_path / "run", _config(), dataset=ds)
    status = loop.run()
    assert status.state == "awaiting_labels" and not status.complete
    assert status.round == 0 and status.pending == 20 and status.labeled == 0
    yield loop, ds
    loop.close()


def _pending(loop) -> list:
    """The loop's open query as calkit.Run lists it."""
    return Run(loop.dir, loop.cfg, loop.dataset, loop.ledger, {}, None, loop).pending()


def _true_labels(ds, ids) -> list[int]:
    return ds.y_train[ds.positions(np.asarray(ids, dtype=np.int64))].tolist()


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _write_csv(path: Path, rows: list[dict], fields=("item_id", "round", "rank", "score", "label")) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _answer_rows(ds, ids, by: str = "name") -> list[dict]:
    """Rows answering ``ids`` with the dataset's true labels, by class name or integer index."""
    rows = []
    for item_id, y in zip(list(ids), _true_labels(ds, ids)):
        rows.append({"item_id": int(item_id), "label": CLASSES[y] if by == "name" else str(y)})
    return rows


def _answer_pending(loop, ds, tmp_path: Path, name: str | None = None, by: str = "name") -> Path:
    """Write the pending query out, fill in every label, and return the filled CSV."""
    csv_path, _, n = write_query(_pending(loop), tmp_path / "q")
    fields, rows = _read_csv(csv_path)
    truth = dict(zip([int(r["item_id"]) for r in rows], _true_labels(ds, [int(r["item_id"]) for r in rows])))
    for r in rows:
        y = truth[int(r["item_id"])]
        r["label"] = CLASSES[y] if by == "name" else str(y)
    return _write_csv(tmp_path / (name or f"answers-{csv_path.stem}.csv"), rows, fields)


# --------------------------------------------------------------------------- write_query


def test_write_query_lists_exactly_the_pending_items(waiting, tmp_path):
    loop, ds = waiting
    ledger = loop.ledger
    assert pending_round(ledger) == 0
    query = ledger.query(0)
    csv_path, jsonl_path, n = write_query(_pending(loop), tmp_path / "out")
    assert n == 20
    assert csv_path == tmp_path / "out" / "round-0000.csv"
    assert jsonl_path == tmp_path / "out" / "round-0000.jsonl"
    fields, rows = _read_csv(csv_path)
    assert fields == list(QUERY_FIELDS) == ["item_id", "round", "rank", "score", "label"]
    assert [int(r["item_id"]) for r in rows] == query.ids.tolist()
    assert set(query.ids.tolist()) == set(ledger.unanswered(0).tolist())
    assert set(query.ids.tolist()) <= set(ds.ids.tolist())
    assert [int(r["rank"]) for r in rows] == list(range(20))
    assert {r["round"] for r in rows} == {"0"}
    assert all(r["label"] == "" for r in rows)
    np.testing.assert_allclose([float(r["score"]) for r in rows], query.scores, atol=1e-6)
    lines = [json.loads(line) for line in jsonl_path.read_text().splitlines()]
    assert [line["item_id"] for line in lines] == query.ids.tolist()
    assert all(line["round"] == 0 and "label" not in line for line in lines)


def test_write_query_without_pending_items_is_an_error(waiting, tmp_path):
    loop, ds = waiting
    ingest(loop.ledger, _answer_pending(loop, ds, tmp_path), CLASSES)
    assert pending_round(loop.ledger) is None
    with pytest.raises(LedgerError, match="no query is pending"):
        write_query(_pending(loop), tmp_path / "again")


# --------------------------------------------------------------------------- ingest: accepted


@pytest.mark.parametrize("by", ["name", "index"])
def test_ingest_full_answers_then_replay_is_idempotent(waiting, tmp_path, by):
    loop, ds = waiting
    answers = _answer_pending(loop, ds, tmp_path, by=by)
    result = ingest(loop.ledger, answers, CLASSES, annotator="ann", guideline="v2")
    assert (result.added, result.already_present, result.blank, result.still_pending) == (20, 0, 0, 0)
    ids = loop.ledger.query(0).ids
    assert loop.ledger.adjudicated() == dict(zip(ids.tolist(), _true_labels(ds, ids)))
    facts = loop.ledger.label_facts()
    assert {f["source"] for f in facts} == {"ingest"}
    assert {f["annotator"] for f in facts} == {"ann"}
    assert {f["guideline_version"] for f in facts} == {"v2"}
    assert {f["round"] for f in facts} == {0} and {f["acquisition"] for f in facts} == {"random"}

    again = ingest(loop.ledger, answers, CLASSES, annotator="ann", guideline="v2")
    assert (again.added, again.already_present, again.still_pending) == (0, 20, 0)
    assert loop.ledger.label_count() == 20


def test_ingest_accepts_float_formatted_index_and_padded_name(waiting, tmp_path):
    loop, ds = waiting
    ids = loop.ledger.unanswered(0)[:2]
    y = _true_labels(ds, ids)
    rows = [{"item_id": f"{int(ids[0])}.0", "label": f"{y[0]}.0"}, {"item_id": f" {int(ids[1])} ", "label": f"  {CLASSES[y[1]]} "}]
    result = ingest(loop.ledger, _write_csv(tmp_path / "a.csv", rows, ("item_id", "label")), CLASSES)
    assert result.added == 2 and result.still_pending == 18
    assert loop.ledger.adjudicated() == {int(ids[0]): y[0], int(ids[1]): y[1]}


def test_partial_answers_are_accepted_and_rest_stays_pending(waiting, tmp_path):
    loop, ds = waiting
    csv_path, _, _ = write_query(_pending(loop), tmp_path / "q")
    fields, rows = _read_csv(csv_path)
    answered = rows[::2]
    for r in answered:
        r["label"] = CLASSES[_true_labels(ds, [int(r["item_id"])])[0]]
    result = ingest(loop.ledger, _write_csv(tmp_path / "half.csv", rows, fields), CLASSES)
    assert (result.added, result.already_present, result.blank, result.still_pending) == (10, 0, 10, 10)
    remaining = [int(r["item_id"]) for r in rows[1::2]]
    assert loop.ledger.unanswered(0).tolist() == remaining

    csv2, jsonl2, n2 = write_query(_pending(loop), tmp_path / "q2")
    assert n2 == 10
    _, rows2 = _read_csv(csv2)
    assert [int(r["item_id"]) for r in rows2] == remaining
    assert [json.loads(line)["item_id"] for line in jsonl2.read_text().splitlines()] == remaining

    # The loop still waits, now for the remaining 10.
    status = loop.run()
    assert status.state == "awaiting_labels" and status.round == 0 and status.pending == 10

    rest = ingest(loop.ledger, _answer_pending(loop, ds, tmp_path, name="rest.csv"), CLASSES)
    assert (rest.added, rest.still_pending) == (10, 0)


def test_jsonl_answers(waiting, tmp_path):
    loop, ds = waiting
    _, jsonl_path, _ = write_query(_pending(loop), tmp_path / "q")
    lines = [json.loads(line) for line in jsonl_path.read_text().splitlines()]
    out = []
    for i, line in enumerate(lines):
        y = _true_labels(ds, [line["item_id"]])[0]
        if i == 0:
            line["label"] = None  # left blank
        elif i % 2:
            line["label"] = y  # a JSON integer
        else:
            line["label"] = CLASSES[y]
        out.append(json.dumps(line))
    answers = tmp_path / "answers.jsonl"
    answers.write_text("\n".join(out[:5]) + "\n\n" + "\n".join(out[5:]) + "\n")  # a blank line is skipped
    result = ingest(loop.ledger, answers, CLASSES)
    assert (result.added, result.blank, result.still_pending) == (19, 1, 1)
    assert loop.ledger.unanswered(0).tolist() == [lines[0]["item_id"]]
    labels = loop.ledger.adjudicated()
    assert all(labels[line["item_id"]] == _true_labels(ds, [line["item_id"]])[0] for line in lines[1:])


def test_annotator_column_overrides_the_default(waiting, tmp_path):
    loop, ds = waiting
    ids = loop.ledger.unanswered(0)[:2].tolist()
    y = _true_labels(ds, ids)
    rows = [{"item_id": ids[0], "label": y[0], "annotator": "alice"}, {"item_id": ids[1], "label": y[1], "annotator": ""}]
    ingest(loop.ledger, _write_csv(tmp_path / "a.csv", rows, ("item_id", "label", "annotator")), CLASSES, annotator="bob")
    who = {f["item_id"]: f["annotator"] for f in loop.ledger.label_facts()}
    assert who == {ids[0]: "alice", ids[1]: "bob"}


# --------------------------------------------------------------------------- ingest: rejected


def _assert_rejected(loop, path: Path, *fragments: str) -> IngestError:
    before = loop.ledger.label_count()
    with pytest.raises(IngestError) as info:
        ingest(loop.ledger, path, CLASSES)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert loop.ledger.label_count() == before
    return info.value


def test_unknown_id_rejects_the_whole_file(waiting, tmp_path):
    loop, ds = waiting
    rows = _answer_rows(ds, loop.ledger.unanswered(0)) + [{"item_id": 999999, "label": "c0"}]
    _assert_rejected(loop, _write_csv(tmp_path / "a.csv", rows), "999999", "nothing was written")
    assert loop.ledger.label_count() == 0
    assert len(loop.ledger.unanswered(0)) == 20


@pytest.mark.parametrize("bad", ["dog", "7", "-1", "1.5", "C1"])
def test_invalid_label_names_item_and_value(waiting, tmp_path, bad):
    loop, ds = waiting
    ids = loop.ledger.unanswered(0)
    rows = _answer_rows(ds, ids)
    rows[3]["label"] = bad
    _assert_rejected(loop, _write_csv(tmp_path / "a.csv", rows), str(int(ids[3])), repr(bad))
    assert loop.ledger.label_count() == 0


def test_id_in_pool_but_never_queried_is_rejected(waiting, tmp_path):
    loop, ds = waiting
    asked = set(loop.ledger.queried_ids().tolist())
    never = next(int(i) for i in ds.ids if int(i) not in asked)
    rows = _answer_rows(ds, loop.ledger.unanswered(0)) + [{"item_id": never, "label": "c1"}]
    _assert_rejected(loop, _write_csv(tmp_path / "a.csv", rows), str(never), "never asked")


def test_two_different_labels_for_one_item_are_rejected(waiting, tmp_path):
    loop, ds = waiting
    ids = loop.ledger.unanswered(0)
    rows = _answer_rows(ds, ids)
    y = _true_labels(ds, [ids[0]])[0]
    rows.append({"item_id": int(ids[0]), "label": CLASSES[(y + 1) % 3]})
    _assert_rejected(loop, _write_csv(tmp_path / "a.csv", rows), str(int(ids[0])), "two different labels")


def test_same_item_twice_with_same_label_is_fine(waiting, tmp_path):
    loop, ds = waiting
    ids = loop.ledger.unanswered(0)
    rows = _answer_rows(ds, ids)
    rows.append({"item_id": int(ids[0]), "label": str(_true_labels(ds, [ids[0]])[0])})  # by index this time
    result = ingest(loop.ledger, _write_csv(tmp_path / "a.csv", rows), CLASSES)
    assert (result.added, result.already_present, result.still_pending) == (20, 1, 0)
    assert loop.ledger.label_count() == 20


def test_non_integer_item_id_is_rejected(waiting, tmp_path):
    loop, ds = waiting
    rows = _answer_rows(ds, loop.ledger.unanswered(0)) + [{"item_id": "abc", "label": "c0"}]
    _assert_rejected(loop, _write_csv(tmp_path / "a.csv", rows), "'abc'")


def test_malformed_jsonl_line_is_named(waiting, tmp_path):
    loop, ds = waiting
    ids = loop.ledger.unanswered(0)
    good = [json.dumps(r) for r in _answer_rows(ds, ids)]
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(good[:2] + ['{"item_id": 1000, "label": '] + good[2:]) + "\n")
    _assert_rejected(loop, path, "line 3")
    path.write_text("\n".join(good[:4] + ["[1, 2]"]) + "\n")
    _assert_rejected(loop, path, "line 5")
    path.write_text("\n".join(good[:1] + ['{"label": "c0"}']) + "\n")
    _assert_rejected(loop, path, "line 2", "item_id")


def test_csv_without_label_column_is_rejected(waiting, tmp_path):
    loop, ds = waiting
    rows = [{"item_id": int(i)} for i in loop.ledger.unanswered(0)]
    _assert_rejected(loop, _write_csv(tmp_path / "a.csv", rows, ("item_id", "round")), "item_id and label")
    _assert_rejected(loop, _write_csv(tmp_path / "b.csv", [], ("id", "label")), "item_id and label")
    (tmp_path / "empty.csv").write_text("")
    _assert_rejected(loop, tmp_path / "empty.csv", "item_id and label")


def test_unsupported_suffix_is_rejected(waiting, tmp_path):
    loop, ds = waiting
    path = tmp_path / "answers.txt"
    path.write_text("item_id,label\n1000,c0\n")
    _assert_rejected(loop, path, ".csv or .jsonl")


def test_csv_and_jsonl_with_utf8_bom_are_read(waiting, tmp_path):
    """Spreadsheets save "CSV UTF-8" with a byte-order mark; the header must still be found."""
    loop, ds = waiting
    ids = loop.ledger.unanswered(0)
    rows = _answer_rows(ds, ids[:10])
    text = "item_id,label\n" + "".join(f"{r['item_id']},{r['label']}\n" for r in rows)
    (tmp_path / "excel.csv").write_bytes(text.encode("utf-8-sig"))
    assert ingest(loop.ledger, tmp_path / "excel.csv", CLASSES).added == 10
    lines = "".join(json.dumps(r) + "\n" for r in _answer_rows(ds, ids[10:]))
    (tmp_path / "bom.jsonl").write_bytes(lines.encode("utf-8-sig"))
    result = ingest(loop.ledger, tmp_path / "bom.jsonl", CLASSES)
    assert (result.added, result.still_pending) == (10, 0)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_non_utf8_file_is_an_ingest_error(waiting, tmp_path, suffix):
    loop, _ = waiting
    item = int(loop.ledger.unanswered(0)[0])
    path = tmp_path / f"latin1{suffix}"
    body = f"item_id,label\n{item},caf\xe9\n" if suffix == ".csv" else f'{{"item_id": {item}, "label": "caf\xe9"}}\n'
    path.write_bytes(body.encode("latin-1"))
    _assert_rejected(loop, path, "UTF-8")


def test_missing_file_is_rejected(waiting, tmp_path):
    loop, _ = waiting
    _assert_rejected(loop, tmp_path / "nope.csv", "no such file")


# --------------------------------------------------------------------------- human-in-the-loop run


def test_human_in_the_loop_run_to_completion(tmp_path):
    ds = make_blobs()
    run_dir = tmp_path / "run"
    loop = ActiveLoop.create(run_dir, _config(), dataset=ds)
    status = loop.run()
    answer_files: dict[int, Path] = {}
    expected_pending = {0: 20, 1: 10, 2: 10}
    for t in range(3):
        assert status.state == "awaiting_labels" and status.round == t
        assert status.pending == expected_pending[t]
        assert status.labeled == sum(expected_pending[r] for r in range(t))
        asked_before = set(loop.ledger.queried_ids(before_round=t).tolist())
        assert not asked_before & set(loop.ledger.unanswered(t).tolist())
        answer_files[t] = _answer_pending(loop, ds, tmp_path, name=f"answers-{t}.csv")
        result = ingest(loop.ledger, answer_files[t], CLASSES)
        assert (result.added, result.still_pending) == (expected_pending[t], 0)
        if t == 1:
            # Round 0 is trained and closed: a different label for one of its items is refused...
            item = int(loop.ledger.query(0).ids[0])
            old = loop.ledger.adjudicated([item])[item]
            bad = _write_csv(tmp_path / "fix.csv", [{"item_id": item, "label": CLASSES[(old + 1) % 3]}])
            _assert_rejected(loop, bad, str(item), "which is closed")
            # ...while replaying the identical round-0 answers is harmless.
            replay = ingest(loop.ledger, answer_files[0], CLASSES)
            assert (replay.added, replay.already_present) == (0, 20)
        loop.close()
        loop = ActiveLoop.open(run_dir, dataset=make_blobs())
        status = loop.run()
    try:
        assert status.complete and status.state == "complete"
        assert status.round == 2 and status.labeled == 40
        assert loop.ledger.label_count() == 40
        assert len(loop.ledger.adjudicated()) == 40
        assert loop.ledger.queried_ids().size == 40
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == 3
        records = [json.loads(line) for line in lines]
        assert [r["round"] for r in records] == [0, 1, 2]
        assert [r["labeled"] for r in records] == [20, 30, 40]
        assert pending_round(loop.ledger) is None
        # Resuming a complete run does nothing more.
        assert loop.run().complete
        assert loop.ledger.label_count() == 40
    finally:
        loop.close()


# --------------------------------------------------------------------------- CLI


def _cli_run(run_dir: Path, npz: Path, capsys) -> str:
    code = main(["run", "--dataset", str(npz), "--oracle", "files", "--initial", "20", "--round-size", "10",
                 "--rounds", "3", "--epochs", "2", "--model", "mlp:16", "--out", str(run_dir), "--quiet"])
    out = capsys.readouterr().out
    assert code == EXIT_AWAITING_LABELS  # stopped for labels: not done, not failed
    return out


def _fill(csv_path: Path, dest: Path, class_names: list[str]) -> Path:
    ds = make_blobs()
    fields, rows = _read_csv(csv_path)
    for r in rows:
        r["label"] = class_names[_true_labels(ds, [int(r["item_id"])])[0]]
    return _write_csv(dest, rows, fields)


def test_cli_query_ingest_resume(tmp_path, blobs_npz, capsys):
    run_dir = tmp_path / "run"
    out = _cli_run(run_dir, blobs_npz, capsys)
    assert "20 items await labels" in out and "calkit query" in out

    assert main(["query", str(run_dir)]) == 0
    out = capsys.readouterr().out
    csv_path = run_dir / "queries" / "round-0000.csv"
    assert csv_path.exists() and (run_dir / "queries" / "round-0000.jsonl").exists()
    assert "20 items await labels" in out and str(csv_path) in out
    _, rows = _read_csv(csv_path)
    assert len(rows) == 20

    led = Ledger.open(run_dir / "ledger.sqlite")
    class_names = list(led.meta("class_names"))
    led.close()
    answers = _fill(csv_path, tmp_path / "answers.csv", class_names)
    assert main(["ingest", str(run_dir), str(answers), "--annotator", "ann"]) == 0
    out = capsys.readouterr().out
    assert "added 20 labels (0 already present, 0 rows left blank); 0 items still await labels" in out
    assert f"calkit resume {run_dir}" in out

    assert main(["ingest", str(run_dir), str(answers), "--annotator", "ann"]) == 0
    assert "added 0 labels (20 already present" in capsys.readouterr().out

    # Everything asked is answered: `query` has nothing to write.
    assert main(["query", str(run_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("calkit: error:") and "no query is pending" in captured.err

    assert main(["resume", str(run_dir), "--quiet"]) == EXIT_AWAITING_LABELS  # trained, next query open
    out = capsys.readouterr().out
    assert "round 1: 10 items await labels" in out
    assert main(["query", str(run_dir)]) == 0
    capsys.readouterr()
    _, rows1 = _read_csv(run_dir / "queries" / "round-0001.csv")
    assert len(rows1) == 10
    assert not {r["item_id"] for r in rows1} & {r["item_id"] for r in rows}


def test_cli_ingest_bad_file_reports_error(tmp_path, blobs_npz, capsys):
    run_dir = tmp_path / "run"
    _cli_run(run_dir, blobs_npz, capsys)
    assert main(["query", str(run_dir)]) == 0
    capsys.readouterr()
    csv_path = run_dir / "queries" / "round-0000.csv"
    fields, rows = _read_csv(csv_path)
    for r in rows:
        r["label"] = "c0"
    rows.append({"item_id": "999999", "label": "c1"})
    bad = _write_csv(tmp_path / "bad.csv", rows, fields)
    assert main(["ingest", str(run_dir), str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("calkit: error:")
    assert "999999" in captured.err and "Traceback" not in captured.err
    assert captured.out == ""

    assert main(["ingest", str(run_dir), str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err

    led = Ledger.open(run_dir / "ledger.sqlite")
    try:
        assert led.label_count() == 0
    finally:
        led.close()


def test_cli_query_and_ingest_outside_a_run_directory(tmp_path, capsys):
    assert main(["query", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("calkit: error:")
    (tmp_path / "a.csv").write_text("item_id,label\n")
    assert main(["ingest", str(tmp_path / "nowhere"), str(tmp_path / "a.csv")]) == 2
    assert "calkit: error:" in capsys.readouterr().err


def test_a_complete_but_untrained_round_can_still_be_corrected(tmp_path):
    """Answers may be fixed until a model trains on them; the latest fact wins."""
    from calkit import ActiveLoop, RunConfig
    from calkit.answers import ingest

    cfg = RunConfig(dataset="blobs", oracle="files", initial=20, round_size=10, rounds=2, epochs=2, model="mlp:16")
    loop = ActiveLoop.create(tmp_path / "run", cfg, dataset=make_blobs())
    loop.run()
    pending = loop.ledger.unanswered(0)
    first = tmp_path / "first.csv"
    first.write_text("item_id,label\n" + "".join(f"{i},c0\n" for i in pending))
    ingest(loop.ledger, first, ["c0", "c1", "c2"])
    fix = tmp_path / "fix.csv"
    fix.write_text(f"item_id,label\n{pending[0]},c2\n")
    result = ingest(loop.ledger, fix, ["c0", "c1", "c2"])
    assert result.added == 1
    assert loop.ledger.adjudicated([pending[0]]) == {int(pending[0]): 2}
    loop.close()


def test_query_files_of_a_text_dataset_carry_each_items_text(tmp_path):
    """People see what they label: `calkit query` writes the text of text items."""
    base = make_blobs()
    texts = tuple(f"review number {i}, with a comma and \"quotes\"" for i in range(base.pool_size))
    ds = type(base)(name="texts", x_train=base.x_train, y_train=None, class_names=base.class_names, ids=base.ids,
                    texts=texts)
    run = Run.create(tmp_path / "run", dataset=ds, oracle="people", initial=20, rounds=1, epochs=1, model="mlp:16")
    csv_path, jsonl_path, n = run.write_query()
    _, rows = _read_csv(csv_path)
    assert n == 20 and all(r["text"] == ds.display(int(r["item_id"])) for r in rows)
    assert all(json.loads(line)["text"].startswith("review number") for line in jsonl_path.read_text().splitlines())
    run.close()


def test_query_keeps_a_file_someone_is_filling_in(waiting, tmp_path):
    loop, ds = waiting
    csv_path, _, _ = write_query(_pending(loop), tmp_path / "q")
    write_query(_pending(loop), tmp_path / "q")  # nothing filled in yet: rewriting is harmless
    fields, rows = _read_csv(csv_path)
    rows[0]["label"] = "c1"
    _write_csv(csv_path, rows, fields)
    with pytest.raises(LedgerError, match="already holds 1 answers"):
        write_query(_pending(loop), tmp_path / "q")
    assert _read_csv(csv_path)[1][0]["label"] == "c1"
    write_query(_pending(loop), tmp_path / "q", overwrite=True)
    assert _read_csv(csv_path)[1][0]["label"] == ""


@pytest.mark.parametrize("who", ["simulated", "x" * 201, "tab\there"])
def test_ingest_checks_annotator_names_like_the_api(waiting, tmp_path, who):
    loop, ds = waiting
    item = int(loop.ledger.unanswered(0)[0])
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"item_id": item, "label": "c0", "annotator": who}) + "\n")
    _assert_rejected(loop, path, "annotator" if who != "simulated" else "simulated oracle")


def test_query_after_a_partial_ingest_writes_the_rest(waiting, tmp_path):
    loop, ds = waiting
    csv_path, _, _ = write_query(_pending(loop), tmp_path / "q")
    fields, rows = _read_csv(csv_path)
    for r in rows[:5]:
        r["label"] = CLASSES[_true_labels(ds, [int(r["item_id"])])[0]]
    _write_csv(csv_path, rows, fields)
    ingest(loop.ledger, csv_path, CLASSES)
    _, _, n = write_query(_pending(loop), tmp_path / "q")  # its filled rows are in the ledger now
    assert n == 15


def test_jsonl_that_json_cannot_turn_into_values_is_an_ingest_error(waiting, tmp_path):
    loop, ds = waiting
    good = json.dumps(_answer_rows(ds, loop.ledger.unanswered(0))[0])
    path = tmp_path / "answers.jsonl"
    path.write_text(good + '\n{"item_id": ' + "1" * 5000 + ', "label": "c0"}\n')  # past Python's 4300 digits
    _assert_rejected(loop, path, "line 2 is unreadable JSON", "nothing was written")
    path.write_text(good + "\n" + "[" * 100000 + "\n")
    _assert_rejected(loop, path, "line 2 is JSON nested too deeply", "nothing was written")
