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


def test_two_processes_creating_one_run_leave_one_run(tmp_path, blobs_npz):
    code = ("import sys; from calkit import Run\n"
            "try:\n    Run.create(sys.argv[1], dataset=sys.argv[2], policy=sys.argv[3], initial=20, rounds=2, epochs=1).close(); print('made')\n"
            "except Exception as exc:\n    print(type(exc).__name__)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run"), str(blobs_npz), policy],
                              stdout=subprocess.PIPE, text=True) for policy in ("er", "cal")]
    outcomes = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert outcomes == ["LedgerError", "made"]
    with Run.open(tmp_path / "run") as run:  # config.yaml and ledger agree: one creator wrote both
        assert run.status().state == "awaiting_labels"


def test_a_policy_object_cannot_pass_for_a_built_in_and_is_recorded_as_it_trains(tmp_path):
    from calkit.policies import PolicyOptions, make_policy
    from calkit.policies.er import ExperienceReplayPolicy
    from calkit.policies.sd import ScaledDistillationPolicy

    class Impostor(ScaledDistillationPolicy):
        name = "cal"

    for bad in (Impostor(), type("AlsoSd", (ExperienceReplayPolicy,), {"name": "sd"})()):
        with pytest.raises(ConfigError, match="give its class another name"):
            Run.create(tmp_path / "bad", dataset=make_blobs(), policy=bad, rounds=2, epochs=1)
    assert not (tmp_path / "bad").exists()
    mine = type("Mine", (ExperienceReplayPolicy,), {"name": "mine"})(PolicyOptions(replay_size=8, lr_scaling=True))
    run = Run.create(tmp_path / "ok", dataset=make_blobs(), policy=mine, rounds=2, epochs=1)
    assert (run.config.replay_size, run.config.lr_scaling, run.config.replay_ratio) == (8, True, None)
    run.close()
    Run.create(tmp_path / "cal", dataset=make_blobs(), policy=make_policy("cal"), rounds=2, epochs=1).close()


def test_class_names_that_are_numbers_are_taken_by_name_only(tmp_path):
    base = make_blobs()
    ds = type(base)(name="numbered", x_train=base.x_train, y_train=base.y_train, class_names=("1", "2", "3"),
                    ids=base.ids, x_test=base.x_test, y_test=base.y_test)
    run = Run.create(tmp_path / "run", dataset=ds, **QUICK)
    a, b, c = (item.id for item in run.pending()[:3])
    run.submit({a: "1", b: 3}, annotator="ana")  # the names "1" and "3"
    assert run._ledger.adjudicated([a, b]) == {a: 0, b: 2}
    with pytest.raises(LabelError, match="these names are numbers"):
        run.submit({c: 0}, annotator="ana")  # index 0 or a class "0"? refused
    run.close()


@pytest.mark.parametrize("who", ["x" * 201, "tab\there", "simulated"])
def test_annotator_names_are_checked(tmp_path, who):
    run = Run.create(tmp_path / "run", dataset=make_blobs(), **QUICK)
    with pytest.raises(LabelError, match="annotator"):
        run.submit({run.pending()[0].id: 0}, annotator=who)
    run.close()


def test_an_edited_config_is_refused_on_open(tmp_path):
    run = Run.create(tmp_path / "run", dataset=make_blobs(), policy="cal", **{**QUICK, "oracle": "simulated"})
    run.advance()
    run.close()
    config = tmp_path / "run" / "config.yaml"
    original = config.read_text()
    for edit in (("policy: cal", "policy: er"), ("seed: 0", "seed: 5"), ("initial: 20", "initial: 10")):
        config.write_text(original.replace(*edit))
        with pytest.raises(ConfigError, match="was edited"):
            Run.open(tmp_path / "run", dataset=make_blobs())
    config.write_text(original.replace("rounds: 3", "rounds: 2"))  # fewer rounds than it asked
    with pytest.raises(ConfigError, match="asked rounds of"):
        Run.open(tmp_path / "run", dataset=make_blobs())
    config.write_text(original.replace("rounds: 3", "rounds: 4"))  # going on longer is fine
    with Run.open(tmp_path / "run", dataset=make_blobs()) as longer:
        assert longer.plan == [20, 10, 10, 10]


def test_a_policy_object_keeps_its_settings_in_the_object_and_must_match_on_open(tmp_path):
    from calkit.policies import PolicyOptions
    from calkit.policies.sd import ScaledDistillationPolicy

    class MySd(ScaledDistillationPolicy):
        name = "my-sd"

    with pytest.raises(ConfigError, match="not beside it: replay_ratio"):
        Run.create(tmp_path / "beside", dataset=make_blobs(), policy=MySd(), replay_ratio=0.5, rounds=2, epochs=1)
    run = Run.create(tmp_path / "run", dataset=make_blobs(), policy=MySd(PolicyOptions(alpha=0.2)), **QUICK)
    run.close()
    with pytest.raises(ConfigError, match="alpha: 0.2 recorded, 0.7 in the object"):
        Run.open(tmp_path / "run", dataset=make_blobs(), policy=MySd(PolicyOptions(alpha=0.7)))
    Run.open(tmp_path / "run", dataset=make_blobs(), policy=MySd()).close()  # unset options take the recorded ones


def test_a_moved_dataset_file_is_found_again_and_a_finished_run_repairs_its_metrics_file(tmp_path, blobs_npz):
    run = Run.create(tmp_path / "run", dataset=str(blobs_npz), oracle="simulated", initial=20, round_size=10,
                     rounds=2, epochs=1, model="mlp:16")
    assert run.config.dataset == str(blobs_npz.resolve())  # recorded absolute: opens from anywhere
    assert run.advance().complete
    run.close()
    moved = blobs_npz.rename(tmp_path / "elsewhere.npz")
    config = tmp_path / "run" / "config.yaml"
    config.write_text(config.read_text().replace(str(blobs_npz.resolve()), str(moved)))
    (tmp_path / "run" / "metrics.jsonl").unlink()
    with Run.open(tmp_path / "run") as again:  # the same data at another path: its fingerprint decides
        assert again.advance().complete
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_model_returning_something_else_than_logits_is_refused_before_writing(tmp_path):
    class TwoOutputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(6, 3)

        def forward(self, x):
            return self.layer(x), x

    with pytest.raises(ConfigError, match="must return a tensor of logits"):
        Run.create(tmp_path / "run", dataset=make_blobs(), model=TwoOutputs(), rounds=2, epochs=1)
    with pytest.raises(ConfigError, match="one logit per class"):
        Run.create(tmp_path / "run", dataset=make_blobs(), model=nn.Linear(6, 5), rounds=2, epochs=1)
    assert not (tmp_path / "run").exists()
