"""calkit.Run, the public API: create and open, pending items, submit, advance, status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import calkit
from calkit import Item, LabelError, Run
from calkit.errors import ConfigError
from tests.conftest import make_blobs

QUICK = dict(oracle="people", initial=20, round_size=10, rounds=3, epochs=2, model="mlp:16")


def _truth(ds, items) -> dict[int, int]:
    return {item.id: int(ds.y_train[ds.positions([item.id])[0]]) for item in items}


def test_people_label_three_rounds_through_the_api(tmp_path):
    ds = make_blobs()
    run = Run.create(tmp_path / "run", dataset=ds, **QUICK)
    assert run.status().state == "awaiting_labels"
    for t, size in enumerate((20, 10, 10)):
        items = run.pending()
        assert len(items) == size and all(isinstance(i, Item) and i.round == t for i in items)
        assert [i.rank for i in items] == list(range(size))
        np.testing.assert_array_equal(items[0].display, ds.x_train[ds.positions([items[0].id])[0]])
        half = dict(list(_truth(ds, items).items())[: size // 2])
        run.submit(half, annotator="ana")
        assert run.advance().state == "awaiting_labels"  # does nothing while labels are missing
        assert len(run.metrics()) == t and len(run.pending()) == size - size // 2
        run.submit({i: ds.class_names[y] for i, y in _truth(ds, run.pending()).items()}, annotator="ana")  # by name
        assert run.status().state == "ready"
        status = run.advance()
        assert len(run.metrics()) == t + 1
    assert status.complete and status.labeled == 40 and run.pending() == []
    run.close()


def test_submit_is_all_or_nothing_and_names_every_bad_entry(tmp_path):
    ds = make_blobs()
    run = Run.create(tmp_path / "run", dataset=ds, **QUICK)
    items = run.pending()
    not_asked = int(np.setdiff1d(ds.ids, [i.id for i in items])[0])
    bad = {items[0].id: 1, items[1].id: "c9", items[2].id: 3, not_asked: 0, 5: 0, "x": 0}
    with pytest.raises(LabelError) as info:
        run.submit(bad, annotator="ana")
    problems = info.value.problems
    assert set(problems) == {items[1].id, items[2].id, not_asked, 5, "x"}
    assert "c9" in problems[items[1].id] and "out of range" in problems[items[2].id]
    assert "never asked" in problems[not_asked] and problems[5] == "unknown item"
    assert isinstance(info.value, calkit.errors.CalkitError)
    assert run.submit({}, annotator="ana").written == 0
    assert len(run.pending()) == 20  # nothing of the bad submission was written
    run.close()


def test_several_annotators_majority_and_disputes(tmp_path):
    run = Run.create(tmp_path / "run", dataset=make_blobs(), **QUICK)
    a, b = run.pending()[:2]
    run.submit({a.id: 0, b.id: 1}, annotator="ana")
    run.submit({a.id: 0, b.id: 2}, annotator="bo")
    pending = {i.id: i for i in run.pending()}
    assert a.id not in pending and pending[b.id].disputed and pending[b.id].answers == 2
    status = run.status()
    assert status.pending == 19 and status.disputed == 1
    changed = run.submit({b.id: 2}, annotator="ana")  # ana changes her mind: now 2 against nothing
    assert changed.superseded == 1 and b.id not in {i.id for i in run.pending()}
    run.close()


def test_an_open_run_is_reopened_with_its_settings(tmp_path):
    run = Run.create(tmp_path / "run", dataset=make_blobs(), policy="cal", **{**QUICK, "epochs": None})
    first = [i.id for i in run.pending()]
    run.close()
    again = Run.open(tmp_path / "run", dataset=make_blobs())
    assert [i.id for i in again.pending()] == first
    assert again.config.resolved and again.config.labeled_passes == 2.0
    again.close()


def test_create_refuses_unknown_options_and_writes_nothing(tmp_path):
    with pytest.raises(ConfigError, match="unknown options: round_sizez"):
        Run.create(tmp_path / "run", dataset=make_blobs(), round_sizez=[3])
    with pytest.raises(ConfigError, match="optimizer"):
        Run.create(tmp_path / "run", dataset=make_blobs(), rounds=2, optimizer="adamw")
    assert not (tmp_path / "run").exists()


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def test_a_model_object_is_copied_fresh_and_needed_again_on_open(tmp_path):
    net = TinyNet()
    before = [p.detach().clone() for p in net.parameters()]
    run = Run.create(tmp_path / "run", dataset=make_blobs(), model=net, oracle="simulated", initial=20,
                     round_size=10, rounds=2, epochs=1, policy="reset")
    assert run.advance().complete and run.config.model == "custom:TinyNet"
    run.close()
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # the caller's module is untouched
    config = tmp_path / "run" / "config.yaml"
    config.write_text(config.read_text().replace("rounds: 2", "rounds: 3"))
    with Run.open(tmp_path / "run", dataset=make_blobs()) as labeling_only:  # status and labels need no model
        assert labeling_only.status().state == "ready"
        with pytest.raises(ConfigError, match="custom model"):
            labeling_only.advance()
    with Run.open(tmp_path / "run", dataset=make_blobs(), model=net) as training:
        assert training.advance().complete


@pytest.mark.slow
def test_the_example_script_labels_digits_for_three_rounds(tmp_path):
    script = Path(__file__).resolve().parents[1] / "examples" / "label_with_api.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and lines[-1].endswith("now complete") and "200 labeled" in lines[-1]
