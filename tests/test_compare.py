"""`calkit compare` and `calkit bench`: a shared trained start, both baselines, paired statistics
per seed, the summary's shape and arithmetic, resumability, the report, and the paper suite
refusing to run on a CPU (publishing a suite is tests/test_bench_publish.py)."""

from __future__ import annotations

import argparse
import json
import statistics

import numpy as np
import pytest
import torch
import yaml
from scipy import stats as scipy_stats

from calkit import ActiveLoop, RunConfig
from calkit.bench import seeds_text
from calkit.checkpoint import checkpoint_path, load_checkpoint
from calkit.cli import main, parse_seeds
from calkit.compare import CompareSpec, budget_counts, default_round_size, round_plan, run_compare
from calkit.errors import ConfigError
from calkit.ledger import Ledger
from calkit.report import read_metrics
from tests.conftest import make_blobs
from tests.helpers import make_legacy

FIELDS = {"labeled", "fraction", "accuracy_mean", "accuracy_std", "relative_accuracy", "speedup_train_seconds",
          "speedup_sample_gradients", "speedup_end_to_end", "seeds", "relative_accuracy_ci95",
          "val_relative_accuracy", "speedup_compute", "parity", "shared_start"}
POLICIES = ("reset-tuned", "reset", "er", "cal")


def blobs():
    """Overlapping blobs: no round reaches 99 % training accuracy, so every epoch cap binds and a
    policy-specific initial round (the bug the shared start removes) would show."""
    return make_blobs(n_pool=240, n_test=90, n_val=60, spread=2.5)


def test_budget_counts_and_round_plan():
    assert budget_counts(("10%", "20%", "30%"), 1000) == [100, 200, 300]
    assert budget_counts(("50", "80"), 1000) == [50, 80]
    with pytest.raises(ConfigError, match="increasing"):
        budget_counts(("30%", "10%"), 1000)
    with pytest.raises(ConfigError):
        budget_counts(("2000",), 1000)
    assert round_plan([100, 200, 300], 100) == [100, 100, 100]
    assert round_plan([100, 250], 60) == [100, 50, 50, 50]
    assert np.cumsum(round_plan([143, 215, 287], 36)).tolist() == [143, 179, 215, 251, 287]
    assert default_round_size(8000) == 200 and default_round_size(10) == 1


#: Two seeds: the fewest with a spread, for intervals (the suite's time is counted).
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    base = RunConfig(dataset="blobs", model="mlp:16", rounds=1, batch_size=8, lr=0.01, max_epochs=15, epochs=None,
                     initial_max_epochs=4)
    spec = CompareSpec(base, ("er", "cal"), seeds=SEEDS, budgets=("20%", "30%", "40%"),
                       setups=("paper", "same"), max_round_size=12, same_epochs=4)
    lines: list[str] = []
    summary = run_compare(spec, out, dataset=blobs(), log=lines.append)
    return out, spec, summary, lines


def records(out, setup, policy, seed) -> list[dict]:
    return read_metrics(out / setup / f"{policy}-s{seed}")


def test_summary_has_the_documented_shape(comparison):
    out, spec, summary, lines = comparison
    assert len(lines) == 2 * 4 + 2 * 3, "seeds x (policies + both resets) in paper, + one reset in same"
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["baseline"] == "reset-tuned" and on_disk["shared_start"] is True
    assert on_disk["policies"].keys() == set(POLICIES)
    for data in on_disk["policies"].values():
        assert [b["labeled"] for b in data["budgets"]] == [48, 72, 96]
        for b in data["budgets"]:
            assert FIELDS <= b.keys()
            assert [s["seed"] for s in b["seeds"]] == [0, 1]
            assert len(b["relative_accuracy_ci95"]) == 2
        assert data["against"]["reset"]["budgets"][0]["labeled"] == 48
    for b in on_disk["policies"]["reset-tuned"]["budgets"]:
        assert b["relative_accuracy"] == 1.0 and b["speedup_compute"] == 1.0
    assert set(on_disk["setups"]) == {"paper", "same"}
    assert on_disk["setups"]["same"]["baseline"] == "reset"
    rules = on_disk["setups"]["paper"]["stopping_rules"]
    assert rules["reset"].startswith("until running train accuracy") and rules["er"].startswith("fixed")
    assert on_disk["initial_rule"] == "until running train accuracy >= 0.99 (cap 4 epochs)"


def test_the_same_setup_gives_every_policy_the_same_epochs_and_schedule(comparison):
    same = comparison[2]["setups"]["same"]["stopping_rules"]
    for rule in same.values():
        assert rule.startswith("fixed 4 epochs; learning rate ")
        assert ", schedule cosine restarted each round (warm-up 1%, down to 0.1x)" in rule
    paper = comparison[2]["setups"]["paper"]["stopping_rules"]
    # the rate each policy's later rounds start from: reset-tuned's 1.5x, cal's (m + m')/m with m' = m
    lr = comparison[1].base.lr
    assert f"learning rate {1.5 * lr:g}" in paper["reset-tuned"] and f"learning rate {lr:g}" in paper["reset"]
    assert f"learning rate {2 * lr:g}" in paper["cal"] and paper["cal"].endswith("before each round shrink 0.9, perturb 0.05")


def test_every_policy_of_a_seed_continues_from_one_trained_start(comparison):
    """Same initial set, same round-0 model (bit for bit), same first-budget numbers; trained once."""
    out = comparison[0]
    for seed in (0, 1):
        start = load_checkpoint(checkpoint_path(out / "start" / f"s{seed}" / "checkpoints", 0))
        firsts = []
        for setup, policies in (("paper", POLICIES), ("same", ("reset", "er", "cal"))):
            for p in policies:
                with Ledger.open(out / setup / f"{p}-s{seed}" / "ledger.sqlite") as ledger:
                    firsts.append(sorted(ledger.query(0).ids.tolist()))
                model = load_checkpoint(checkpoint_path(out / setup / f"{p}-s{seed}" / "checkpoints", 0))["model"]
                assert all(torch.equal(model[k], start["model"][k]) for k in model), (setup, p, seed)
                first = records(out, setup, p, seed)[0]
                assert first["test_accuracy"] == start["metrics"]["test_accuracy"]
                assert first["sample_gradients"] == start["metrics"]["sample_gradients"]
                if p != "cal":  # cal (sd) also pays for stored targets of round 0's items
                    taken_over = pytest.approx(start["metrics"]["train_seconds"], abs=0.01)
                    assert first["train_seconds"] == taken_over, "taken over, not trained again"
                assert first["stop_rule"] == "until running train accuracy >= 0.99 (cap 4 epochs)"
        assert all(f == firsts[0] for f in firsts)


def test_relative_accuracy_is_the_mean_of_per_seed_ratios_with_a_t_interval(comparison):
    out, _, summary, _ = comparison
    er = summary["policies"]["er"]["budgets"][-1]
    ratios = [records(out, "paper", "er", s)[-1]["test_accuracy"] / records(out, "paper", "reset-tuned", s)[-1][
        "test_accuracy"] for s in SEEDS]
    assert er["relative_accuracy"] == pytest.approx(statistics.fmean(ratios))
    half = scipy_stats.t.ppf(0.975, len(SEEDS) - 1) * statistics.stdev(ratios) / len(SEEDS) ** 0.5
    assert er["relative_accuracy_ci95"] == pytest.approx([statistics.fmean(ratios) - half,
                                                          statistics.fmean(ratios) + half])
    assert [s["relative_accuracy"] for s in er["seeds"]] == pytest.approx(ratios)
    val = [records(out, "paper", "er", s)[-1]["val_accuracy"] / records(out, "paper", "reset-tuned", s)[-1][
        "val_accuracy"] for s in SEEDS]
    assert er["val_relative_accuracy"] == pytest.approx(statistics.fmean(val))
    paper = summary["policies"]["er"]["against"]["reset"]["budgets"][-1]
    assert paper["relative_accuracy"] == pytest.approx(statistics.fmean(
        [records(out, "paper", "er", s)[-1]["test_accuracy"] / records(out, "paper", "reset", s)[-1]["test_accuracy"]
         for s in SEEDS]))


def test_speedups_are_per_seed_ratios_of_cumulative_costs_and_compute_counts_forward_passes(comparison):
    out, _, summary, _ = comparison
    cal = summary["policies"]["cal"]["budgets"][-1]
    mine = [records(out, "paper", "cal", s)[-1] for s in SEEDS]
    base = [records(out, "paper", "reset-tuned", s)[-1] for s in SEEDS]
    compute = lambda r: 3 * r["sample_gradients"] + (r["forward_samples"] - r["sample_gradients"])  # noqa: E731
    assert [r["compute"] for r in mine] == [compute(r) for r in mine]
    assert all(r["forward_samples"] > r["sample_gradients"] for r in mine), "scoring and stored targets count"
    assert cal["speedup_compute"] == pytest.approx(statistics.fmean(
        [compute(b) / compute(m) for m, b in zip(mine, base)]))
    assert cal["speedup_sample_gradients"] == pytest.approx(statistics.fmean(
        [b["sample_gradients"] / m["sample_gradients"] for m, b in zip(mine, base)]))


def test_means_over_budgets_leave_out_the_shared_start(comparison):
    data = comparison[2]["policies"]["cal"]
    first, *later = data["budgets"]
    assert first["shared_start"] and not any(b["shared_start"] for b in later)
    assert first["relative_accuracy"] == 1.0  # identical by construction
    assert data["mean"]["relative_accuracy"] == pytest.approx(statistics.fmean(b["relative_accuracy"] for b in later))
    assert data["mean"]["speedup_compute"] == pytest.approx(statistics.fmean(b["speedup_compute"] for b in later))
    assert data["mean"]["budgets"] == 2


def test_report_states_the_start_the_rules_the_verdicts_and_both_baselines(comparison):
    out, _, summary, _ = comparison
    report = (out / "report.md").read_text()
    assert "same trained initial round" in report and "cap 4 epochs" in report
    assert "shared start" in report and "Against `reset`" in report and "95 % interval" in report
    assert "Forgetting" in report and "Pearson" in report
    assert (out / "scatter.png").exists() and (out / "learning_curves.png").exists()
    corr = summary["setups"]["paper"]["entropy_correlation"]["er"]
    assert len(corr) == 5 and all(-1 <= c <= 1 for c in corr)


def test_a_finished_comparison_is_reused_not_retrained(comparison, monkeypatch):
    from calkit.train import Trainer

    out, spec, summary, _ = comparison

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(Trainer, "fit", no_training)
    again = run_compare(spec, out, dataset=blobs(), log=lambda _: None)
    assert again["policies"] == summary["policies"]


def test_a_run_made_with_other_settings_is_refused_not_reused(comparison):
    import dataclasses

    out, spec, _, _ = comparison
    other = dataclasses.replace(spec, base=dataclasses.replace(spec.base, lr=0.02))
    with pytest.raises(ConfigError, match="other settings.*lr"):
        run_compare(other, out, dataset=blobs(), log=lambda _: None)


def test_compare_cli_on_a_users_npz_uses_rounds_of_about_2_5_percent(tmp_path, capsys):
    ds = make_blobs(n_pool=400)
    path = tmp_path / "mine.npz"
    np.savez(path, X=ds.x_train, y=ds.y_train, X_test=ds.x_test, y_test=ds.y_test)
    code = main(["compare", "--dataset", str(path), "--model", "mlp:16", "--seeds", "2", "--budgets", "40,80",
                 "--epochs", "2", "--out", str(tmp_path / "cmp")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "rel. accuracy" in printed and "shared start" in printed and "cal" in printed
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    pool = summary["pool_size"]
    assert pool == 320  # 400 minus the 20 % validation split
    config = (tmp_path / "cmp" / "paper" / "cal-s0" / "config.yaml").read_text()
    sizes = [int(v) for v in config.split("round_sizes:")[1].split("pool_size")[0].split() if v.strip("- ").isdigit()]
    assert sizes[0] == 40 and set(sizes[1:]) == {8}  # 2.5 % of 320


def test_seeds_are_a_count_a_range_or_a_list():
    assert parse_seeds("3") == (0, 1, 2)
    assert parse_seeds("100-104") == (100, 101, 102, 103, 104)
    assert parse_seeds("3,7") == (3, 7)
    for bad in ("0", "x", "5-3", "1,1"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_seeds(bad)
    assert [seeds_text(s) for s in ((0, 1, 2), (100, 101, 102), (3, 7))] == ["3", "100-102", "3,7"]


def test_paper_suite_refuses_a_cpu_with_an_estimate(tmp_path, capsys):
    assert main(["bench", "paper", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "GPU" in err and "hours" in err and "--force" in err


def test_entropy_correlation_uses_the_entropies_stored_with_each_round(comparison, monkeypatch):
    """No model is reloaded: the correlation comes from the evaluation pass of each round."""
    from calkit.compare_report import _entropy_correlation
    from calkit.evaluate import predictive_entropy
    from calkit.models import batched_inference

    out, spec, summary, _ = comparison
    loop = ActiveLoop.open(out / "paper" / "er-s0", dataset=blobs())
    try:
        stored = loop.test_entropy_at(2)
        fresh = predictive_entropy(batched_inference(loop.model_at(2), loop.data.split_batches("test", 4096)))
    finally:
        loop.close()
    np.testing.assert_allclose(stored, fresh, rtol=1e-5, atol=1e-6)

    def no_reload(self, t):
        raise AssertionError("model reloaded")

    monkeypatch.setattr(ActiveLoop, "model_at", no_reload)
    again = _entropy_correlation(out / "paper", "er", "reset-tuned", spec.seeds, blobs())
    assert again == pytest.approx(summary["setups"]["paper"]["entropy_correlation"]["er"], nan_ok=True)


def test_an_entry_keeps_the_wall_time_of_the_pass_that_finished_it(tmp_path):
    from calkit.bench import _entry_seconds

    assert _entry_seconds(tmp_path, 600.0) == 600.0
    assert _entry_seconds(tmp_path, 2.0) == 600.0, "a rerun that reused the runs reports the first pass's time"


def test_bench_defaults_to_seeds_that_no_tuning_used():
    from calkit.cli import PUBLISHED_SEEDS, build_parser

    args = build_parser().parse_args(["bench", "cpu"])
    assert args.seeds == PUBLISHED_SEEDS and not set(PUBLISHED_SEEDS) & {0, 1, 2}


def test_a_legacy_run_that_resolves_to_the_same_settings_is_reused(tmp_path):
    """A run from calkit 0.2 left defaults unset; it is reused, not refused, when they mean the same."""
    spec = CompareSpec(RunConfig(dataset="blobs", model="mlp:16", batch_size=16), ("er",), (0,), ("20%", "30%"),
                       ("paper",), 10)
    run_compare(spec, tmp_path, dataset=blobs(), log=lambda line: None)
    config = tmp_path / "paper" / "er-s0" / "config.yaml"
    assert "shrink: 1.0" in config.read_text() and "resolved: true" in config.read_text()
    legacy = yaml.safe_load(config.read_text().replace("shrink: 1.0", "shrink: null").replace("perturb: 0.0", "perturb: null")
                            .replace("resolved: true", "resolved: false"))
    make_legacy(config.parent, legacy)
    run_compare(spec, tmp_path, dataset=blobs(), log=lambda line: None)  # reused
    config.write_text(config.read_text().replace("shrink: null", "shrink: 0.5"))
    with pytest.raises(ConfigError, match="shrink"):
        run_compare(spec, tmp_path, dataset=blobs(), log=lambda line: None)
