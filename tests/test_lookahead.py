"""lookahead: round t+1's query opens as soon as round t has its labels, chosen by the model of
round t-1, so people label while round t trains; resumable and deterministic like any run."""

from __future__ import annotations


import pytest

from calkit import Run
from calkit.ledger import Ledger
from tests.conftest import make_blobs, save_npz
from tests.helpers import calkit, comparable, crash_then_resume, labeled_set, metrics

FLAGS = ["--model", "mlp:16", "--policy", "cal", "--initial", "20", "--round-size", "10", "--rounds", "5",
         "--epochs", "3", "--batch-size", "8", "--seed", "3", "--lookahead"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return save_npz(make_blobs(n_pool=300), tmp_path_factory.mktemp("data") / "blobs.npz")


@pytest.fixture(scope="module")
def reference(data_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    done = calkit("run", "--dataset", str(data_file), *FLAGS, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_each_query_is_opened_before_the_round_before_it_trains(reference):
    ledger = Ledger.open(reference / "ledger.sqlite")
    try:
        rows = ledger._conn.execute("SELECT round, created_at, trained_at FROM queries ORDER BY round").fetchall()
    finally:
        ledger.close()
    opened = {t: created for t, created, _ in rows}
    trained = {t: done for t, _, done in rows}
    assert len(opened) == 5
    assert opened[1] > trained[0], "round 1 waits for the initial model"
    for t in (2, 3, 4):
        assert opened[t] < trained[t - 1], f"round {t} opened while round {t - 1} trained"


def test_lookahead_changes_what_is_selected(data_file, reference, tmp_path):
    plain = tmp_path / "plain"
    done = calkit("run", "--dataset", str(data_file), *FLAGS[:-1], "--out", str(plain))
    assert done.returncode == 0, done.stderr
    ours, theirs = labeled_set(reference), labeled_set(plain)
    early = [f for f in ours if f[2] <= 1]
    assert len(early) == 30 and early == [f for f in theirs if f[2] <= 1], "rounds 0 and 1: the same models chose"
    assert ours != theirs


@pytest.mark.parametrize("fault", ["query:2", "train:1"])
def test_a_killed_lookahead_run_resumes_to_the_same_result(fault, data_file, reference, tmp_path):
    out = tmp_path / "run"
    crash_then_resume(out, "--dataset", str(data_file), *FLAGS, fault=fault)
    assert labeled_set(out) == labeled_set(reference)
    assert comparable(metrics(out)) == comparable(metrics(reference))


def test_people_get_the_next_items_while_a_round_trains(tmp_path, monkeypatch):
    ds = make_blobs()
    run = Run.create(tmp_path / "run", dataset=ds, oracle="people", initial=20, round_size=10, rounds=4, epochs=2,
                     model="mlp:16", lookahead=True)

    def label_all() -> None:
        run.submit({i.id: int(ds.y_train[ds.positions([i.id])[0]]) for i in run.pending()}, annotator="ana")

    label_all()
    assert run.advance().state == "awaiting_labels" and run.pending()[0].round == 1
    label_all()
    monkeypatch.setattr("calkit.loop.ActiveLoop._train_round", _interrupted)
    with pytest.raises(KeyboardInterrupt):
        run.advance()  # round 1 closed, round 2 opened, then training stops
    status = run.status()
    assert (status.state, status.round) == ("ready", 1)
    items = run.pending()
    assert len(items) == 10 and {i.round for i in items} == {2}
    run.close()


def _interrupted(*args, **kwargs):
    raise KeyboardInterrupt
