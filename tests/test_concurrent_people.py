"""Several annotators' processes answering one round at once through the public API.

Each process submits its answers in small batches (some twice, some changed later) and then
asks the run to advance. The ledger must end with exactly the facts they sent, the adjudicated
view of the spec (majority; a tie is disputed and stays out of training), and the round trained
by one process only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from calkit import Run
from calkit.ledger import Ledger

ANNOTATORS = ("a0", "a1", "a2", "a3")

CHILD = r"""
import json, os, sys, time
from pathlib import Path
from calkit import Run
from calkit.progress import Progress

run_dir, who, go, plan_file = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
batches = json.loads(plan_file.read_text())[who]

class CountTraining(Progress):
    def round_started(self, round_index, n_rounds, labeled):
        with open(run_dir / "trained.log", "a") as fh:
            fh.write(f"{round_index} {who}\n")

run = Run.open(run_dir, progress=CountTraining())
while not go.exists():
    time.sleep(0.005)
for batch in batches:
    run.submit({int(k): v for k, v in batch.items()}, annotator=who)
# Advance once every annotator has sent everything: a round closes as soon as each of its items
# has an agreed label, so an early advance could close it before the others' answers arrive.
(go.parent / f"done-{who}").touch()
while len(list(go.parent.glob("done-*"))) < int(sys.argv[5]):
    time.sleep(0.005)
status = run.advance()
print(json.dumps({"state": status.state, "round": status.round}))
run.close()
"""


def _plans(items: list[int]) -> tuple[dict[str, list[dict]], dict[int, int | None]]:
    """Each annotator's batches, and the adjudicated label each item should end with (None: disputed).

    Items cycle through five patterns: three agree; two against one; a 2-2 tie (disputed); one
    annotator alone; and an answer changed later (superseding) that turns a tie into a majority.
    Every batch is sent twice, so resubmits must be no-ops.
    """
    plans: dict[str, list[dict]] = {a: [] for a in ANNOTATORS}
    first: dict[str, dict] = {a: {} for a in ANNOTATORS}
    later: dict[str, dict] = {a: {} for a in ANNOTATORS}
    expected: dict[int, int | None] = {}
    for k, item in enumerate(items):
        pattern = k % 5
        if pattern == 0:
            answers, expected[item] = {"a0": 1, "a1": 1, "a2": 1}, 1
        elif pattern == 1:
            answers, expected[item] = {"a1": 2, "a2": 2, "a3": 0}, 2
        elif pattern == 2:
            answers, expected[item] = {"a0": 0, "a1": 0, "a2": 2, "a3": 2}, None
        elif pattern == 3:
            answers, expected[item] = {"a3": 0}, 0
        else:
            answers, expected[item] = {"a0": 1, "a1": 2}, 2
            later["a0"][item] = 2  # a0 changes its mind: 2 vs 2 agree
        for who, label in answers.items():
            first[who][item] = label
    for who in ANNOTATORS:
        ids = sorted(first[who])
        for start in range(0, len(ids), 3):
            batch = {str(i): first[who][i] for i in ids[start:start + 3]}
            plans[who] += [batch, batch]
        if later[who]:
            plans[who].append({str(i): v for i, v in later[who].items()})
    return plans, expected


@pytest.mark.slow
def test_four_processes_answer_one_round_at_once(tmp_path, blobs_npz):
    run_dir = tmp_path / "run"
    run = Run.create(run_dir, dataset=str(blobs_npz), oracle="people", initial=20, round_size=10, rounds=2,
                     epochs=2, model="mlp:16")
    items = [item.id for item in run.pending()]
    assert len(items) == 20
    plans, expected = _plans(items)
    plan_file, go = tmp_path / "plan.json", tmp_path / "go"
    plan_file.write_text(json.dumps(plans))
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(run_dir), who, str(go), str(plan_file), "4"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for who in ANNOTATORS]
    time.sleep(0.5)
    go.touch()
    results = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        results.append(json.loads(out))

    # Exactly the facts they sent: one per first answer, one more per changed answer; no repeats.
    sent = {(int(i), who, label) for who, batches in plans.items() for b in batches for i, label in b.items()}
    with Ledger.open(run_dir / "ledger.sqlite") as ledger:
        facts = ledger.label_facts()
        assert sorted((f["item_id"], f["annotator"], f["label"]) for f in facts) == sorted(sent)
        assert len(facts) == len(sent)
        changed = [f for f in facts if f["revision"] == 1]
        assert {(f["item_id"], f["label"]) for f in changed} == {(i, 2) for i, v in expected.items()
                                                               if v == 2 and i in plans_later(plans)}
        assert ledger.adjudicated() == {i: v for i, v in expected.items() if v is not None}
        disputed = sorted(i for i, v in expected.items() if v is None)
        assert sorted(ledger.disputed(0).tolist()) == disputed
        assert ledger.round_state(0) == "open"  # the disputed items keep it open
    assert all(r == {"state": "awaiting_labels", "round": 0} for r in results)
    assert not (run_dir / "trained.log").exists()

    # The lead settles the ties; now every process that advances at once finds one round to train.
    run.submit({i: 0 for i in disputed}, annotator="lead")
    assert run.status().state == "ready"
    plan_file.write_text(json.dumps({who: [] for who in ANNOTATORS}))  # this time they only advance
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(run_dir), who, str(go), str(plan_file), "0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for who in ANNOTATORS]
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
    trained = (run_dir / "trained.log").read_text().split("\n")
    assert [line.split()[0] for line in trained if line] == ["0"]  # one process trained round 0, once
    with Ledger.open(run_dir / "ledger.sqlite") as ledger:
        assert ledger.round_state(0) == "trained" and ledger.open_round() == 1
        assert len(ledger.metrics()) == 1
        assert len(ledger.label_facts()) == len(sent) + len(disputed)  # the replays added nothing
    status = run.status()
    assert (status.state, status.round, status.labeled, status.pending) == ("awaiting_labels", 1, 20, 10)
    run.close()


def plans_later(plans: dict[str, list[dict]]) -> set[int]:
    """Items whose answer some annotator changed in a later batch."""
    out = set()
    for batches in plans.values():
        seen: dict[int, int] = {}
        for batch in batches:
            for i, label in batch.items():
                if int(i) in seen and seen[int(i)] != label:
                    out.add(int(i))
                seen[int(i)] = label
    return out


@pytest.mark.parametrize("who", ["", "   ", None])
def test_an_annotator_needs_a_name(tmp_path, blobs_npz, who):
    from calkit.errors import LabelError

    run = Run.create(tmp_path / "run", dataset=str(blobs_npz), oracle="people", initial=20, rounds=1, epochs=1,
                     model="mlp:16")
    with pytest.raises(LabelError, match="annotator"):
        run.submit({run.pending()[0].id: 0}, annotator=who)  # type: ignore[arg-type]
    run.close()


KILLED_CHILD = r"""
import sys
from pathlib import Path
from calkit import Run

run = Run.open(Path(sys.argv[1]))
for item_id in sys.argv[3].split(","):
    run.submit({int(item_id): 0}, annotator=sys.argv[2])
    print(item_id, flush=True)  # acknowledged: the submit returned, so it is committed
"""


@pytest.mark.slow
def test_an_annotator_killed_mid_submission_loses_no_acknowledged_label(tmp_path, blobs_npz):
    """kill -9 while two processes write: every acknowledged answer is in the ledger, nothing
    half-written is, and the run goes on."""
    import os
    import signal

    run_dir = tmp_path / "run"
    run = Run.create(run_dir, dataset=str(blobs_npz), oracle="people", initial=20, round_size=10, rounds=2,
                     epochs=1, model="mlp:16")
    items = ",".join(str(item.id) for item in run.pending())
    run.close()
    children = {who: subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(run_dir), who, items],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for who in ("killed", "survivor")}
    acked = [children["killed"].stdout.readline().strip() for _ in range(3)]  # let it get going
    assert all(acked), children["killed"].stderr.read()
    os.kill(children["killed"].pid, signal.SIGKILL)
    children["killed"].wait(timeout=60)
    acked += [line.strip() for line in children["killed"].stdout.read().splitlines()]
    out, err = children["survivor"].communicate(timeout=240)
    assert children["survivor"].returncode == 0, err
    with Ledger.open(run_dir / "ledger.sqlite") as ledger:
        by = {}
        for fact in ledger.label_facts():
            by.setdefault(fact["annotator"], []).append(str(fact["item_id"]))
        assert set(acked) <= set(by["killed"])  # acknowledged means committed
        assert len(by["killed"]) <= len(acked) + 1  # at most the one in flight, whole or not at all
        assert sorted(by["survivor"]) == sorted(out.split())
    with Run.open(run_dir) as again:
        assert again.status().state == "ready"  # the survivor answered everything
        assert again.advance().state == "awaiting_labels"  # round 0 trained, round 1 opened
