"""benchmarks/frontier.py: the share of rounds the new-items rule ended early, and the table.

The script is a benchmark, not part of the package; these tests pin the bookkeeping that its
published tables rely on, with hand-written run records instead of real runs.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from calkit.train.stopping import NewItemsLearned

FRONTIER = Path(__file__).resolve().parents[1] / "benchmarks" / "frontier.py"


@pytest.fixture(scope="module")
def frontier():
    spec = importlib.util.spec_from_file_location("frontier", FRONTIER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_run(setup_dir: Path, seed: int, epochs: list[int], cap: int = 10) -> None:
    run = setup_dir / f"cal-s{seed}"
    run.mkdir(parents=True)
    rule = NewItemsLearned(0.99, cap, initial_max_epochs=20).describe()  # as the loop records it
    run.joinpath("metrics.jsonl").write_text(
        "\n".join(json.dumps({"round": i, "epochs": e, "stop_rule": rule}) for i, e in enumerate(epochs)) + "\n"
    )


def test_ended_early_counts_continual_rounds_below_the_cap(tmp_path, frontier):
    _write_run(tmp_path, 0, [20, 10, 4, 10])  # the initial round (20 epochs) never counts
    _write_run(tmp_path, 1, [3, 10, 10, 9])
    assert frontier._ended_early(tmp_path, seeds=2) == pytest.approx(2 / 6)


def test_ended_early_reads_each_runs_own_cap(tmp_path, frontier):
    _write_run(tmp_path, 0, [20, 5, 5], cap=5)
    assert frontier._ended_early(tmp_path, seeds=1) == 0.0


def test_table_has_one_row_per_variant_with_its_settings(frontier):
    row = dict(relative_accuracy=0.9977, worst_relative_accuracy=0.9931, speedup_sample_gradients=5.4961,
               speedup_train_seconds=6.44, speedup_end_to_end=5.42, ended_early=0.25)
    table = frontier._format("fashion-mnist-mlp", [("default", row), ("e8", row)]).splitlines()
    assert table[0] == "### fashion-mnist-mlp"
    assert table[-2].startswith("| default | as shipped | 0.9977 | 0.9931 | 5.50x | 6.44x | 5.42x | 25% |")
    assert table[-1].startswith("| e8 | max_new_epochs=8 |")


def test_every_variant_is_a_valid_cal_configuration(frontier):
    from calkit.config import RunConfig

    for name, overrides in frontier.VARIANTS.items():
        RunConfig(policy="cal", rounds=3, **overrides).validate()
