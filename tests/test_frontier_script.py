"""benchmarks/frontier.py: the tuning script's bookkeeping (rounds ended early, the table, the
variants) and that it reads validation numbers only.

The script is a benchmark, not part of the package; these tests pin what its published tables
rely on, with hand-written run records instead of real runs where they can.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from calkit.train.stopping import NewItemsLearned, TrainAccuracy

FRONTIER = Path(__file__).resolve().parents[1] / "benchmarks" / "frontier.py"


@pytest.fixture(scope="module")
def frontier():
    spec = importlib.util.spec_from_file_location("frontier", FRONTIER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_run(variant_dir: Path, seed: int, epochs: list[int], cap: int = 10) -> None:
    run = variant_dir / f"s{seed}"
    run.mkdir(parents=True)
    rules = [TrainAccuracy(0.99, 20).describe()] + [NewItemsLearned(0.99, cap).describe()] * (len(epochs) - 1)
    run.joinpath("metrics.jsonl").write_text(
        "\n".join(json.dumps({"round": i, "epochs": e, "stop_rule": r}) for i, (e, r) in enumerate(zip(epochs, rules)))
        + "\n"
    )


def test_ended_early_counts_rounds_after_the_initial_one_below_their_cap(tmp_path, frontier):
    _write_run(tmp_path, 0, [20, 10, 4, 10])  # the initial round (20 epochs) never counts
    _write_run(tmp_path, 1, [3, 10, 10, 9])
    assert frontier._ended_early(tmp_path, seeds=(0, 1)) == pytest.approx(2 / 6)


def test_ended_early_reads_each_runs_own_cap(tmp_path, frontier):
    _write_run(tmp_path, 0, [20, 5, 5], cap=5)
    assert frontier._ended_early(tmp_path, seeds=(0,)) == 0.0


def test_table_has_one_row_per_variant_with_its_settings(frontier):
    row = dict(val_relative_accuracy=0.9977, worst_val_relative_accuracy=0.9931, val_budgets_at_parity=3, budgets=4,
               speedup_compute=5.4961, speedup_sample_gradients=6.44, ended_early=0.25)
    table = frontier._format("digits-mlp: variants", "reset", [("paper", row), ("cos-e20", row)]).splitlines()
    assert table[0] == "### digits-mlp: variants"
    assert table[-2].startswith("| paper | as shipped | 0.9977 | 0.9931 | 3/4 | 5.50x | 6.44x | 25% |")
    assert table[-1].startswith("| cos-e20 | schedule=cosine, max_epochs=20 |")


def test_every_variant_is_a_valid_configuration_of_its_arm(frontier):
    from calkit.config import RunConfig

    for arm, variants in frontier.VARIANTS.items():
        policy = frontier.ARMS[arm][0]
        for name, overrides in variants.items():
            RunConfig(policy=policy, rounds=3, **overrides).validate()


def test_cal_variants_never_change_the_shared_initial_round(frontier):
    """A variant with its own initial round would not continue from the baseline's start."""
    for name, overrides in frontier.VARIANTS["cal"].items():
        assert not {"initial_max_epochs", "initial_accuracy", "seed", "model"} & set(overrides), name


def test_the_rows_are_validation_numbers(tmp_path, frontier):
    """A variant's row is computed from val_accuracy: changing only test accuracies changes nothing."""
    from calkit.compare import CompareSpec
    from calkit.config import RunConfig

    spec = CompareSpec(RunConfig(rounds=1), (), (0,))

    def write(path: Path, accuracies: list[tuple[float, float]]) -> None:
        path.mkdir(parents=True)
        lines = [json.dumps({"round": i, "labeled": 10 * (i + 1), "test_accuracy": t, "val_accuracy": v, "epochs": 3,
                             "stop_rule": "fixed 3 epochs", "train_seconds": 1.0, "select_seconds": 0.0,
                             "sample_gradients": 100 * (i + 1), "compute": 300 * (i + 1)})
                 for i, (t, v) in enumerate(accuracies)]
        (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")

    class Pool:
        pool_size = 100

    write(tmp_path / "_baseline" / "paper" / "reset-s0", [(0.5, 0.5), (0.8, 0.8)])
    write(tmp_path / "reset" / "v" / "s0", [(0.5, 0.5), (0.1, 0.4)])
    row = frontier._row(tmp_path, "reset", "v", "reset", spec, [10, 20], Pool())
    assert row["val_relative_accuracy"] == pytest.approx(0.5)  # 0.4 / 0.8, not the test ratio 0.125


def _rows(values: dict[str, tuple[float, float, float]]) -> dict[str, dict]:
    """variant -> (val relative, worst budget, compute speed-up) as finished_rows gives them."""
    return {v: dict(val_relative_accuracy=a, worst_val_relative_accuracy=w, speedup_compute=x)
            for v, (a, w, x) in values.items()}


def test_choosing_the_baseline_takes_the_most_accurate_and_breaks_ties_by_cost(frontier):
    rows = {"d1": _rows({"paper": (1.0, 1.0, 1.0), "cos-e30": (1.010, 1.0, 1.1), "cos-e25": (1.009, 1.0, 1.4),
                         "const-e10": (0.99, 0.98, 2.4)}),
            "d2": _rows({"paper": (1.0, 1.0, 1.0), "cos-e30": (1.012, 1.0, 1.1), "cos-e25": (1.011, 1.0, 1.4),
                         "const-e10": (1.00, 0.99, 2.4)})}
    chosen, table = frontier.choose("reset", rows)
    assert chosen == "cos-e25", "within the tie margin of the best, the cheaper wins"
    assert any(line.startswith("| **cos-e25** |") for line in table)


def test_choosing_cal_prefers_parity_everywhere_then_speed_else_accuracy(frontier):
    both = {"fast": (0.996, 0.991, 5.0), "safe": (1.001, 0.995, 3.0), "slow": (1.002, 0.999, 2.0)}
    assert frontier.choose("cal", {"d1": _rows(both), "d2": _rows(both)})[0] == "fast"
    short = {"fast": (0.990, 0.980, 5.0), "safe": (0.994, 0.989, 3.0)}
    assert frontier.choose("cal", {"d1": _rows(both), "d2": _rows(short)})[0] == "safe", "none at parity: accuracy"
