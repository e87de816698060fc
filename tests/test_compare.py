"""`calkit compare` and `calkit bench`: same initial sets, the summary's shape and arithmetic,
resumability, the report, and the paper suite refusing to run on a CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calkit import ActiveLoop, RunConfig
from calkit.bench import BEGIN, END, _write_generated
from calkit.cli import main
from calkit.compare import CompareSpec, budget_counts, round_plan, run_compare
from calkit.errors import ConfigError
from calkit.ledger import Ledger
from tests.conftest import make_blobs

FIELDS = {"labeled", "fraction", "accuracy_mean", "accuracy_std", "relative_accuracy", "speedup_train_seconds",
          "speedup_sample_gradients", "speedup_end_to_end"}


def test_budget_counts_and_round_plan():
    assert budget_counts(("10%", "20%", "30%"), 1000) == [100, 200, 300]
    assert budget_counts(("50", "80"), 1000) == [50, 80]
    with pytest.raises(ConfigError, match="increasing"):
        budget_counts(("30%", "10%"), 1000)
    with pytest.raises(ConfigError):
        budget_counts(("2000",), 1000)
    assert round_plan([100, 200, 300], None) == [100, 100, 100]
    assert round_plan([100, 250], 60) == [100, 50, 50, 50]
    assert np.cumsum(round_plan([143, 215, 287], 36)).tolist() == [143, 179, 215, 251, 287]


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    base = RunConfig(dataset="blobs", model="mlp:16", rounds=1, batch_size=8, lr=0.01, max_epochs=15, epochs=None)
    spec = CompareSpec(base, ("er", "cal", "finetune"), seeds=(0, 1), budgets=("20%", "30%", "40%"),
                       setups=("paper", "same"), max_round_size=12, same_epochs=4)
    lines: list[str] = []
    summary = run_compare(spec, out, dataset=make_blobs(), log=lines.append)
    return out, spec, summary, lines


def test_summary_has_the_documented_shape(comparison):
    out, spec, summary, lines = comparison
    assert len(lines) == 2 * 2 * 4, "setups x seeds x (policies + reset)"
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["policies"].keys() == {"reset", "er", "cal", "finetune"}
    for data in on_disk["policies"].values():
        assert [b["labeled"] for b in data["budgets"]] == [48, 72, 96]
        for b in data["budgets"]:
            assert FIELDS <= b.keys()
    for b in on_disk["policies"]["reset"]["budgets"]:
        assert b["relative_accuracy"] == 1.0 and b["speedup_sample_gradients"] == 1.0
    assert set(on_disk["setups"]) == {"paper", "same"}
    rules = on_disk["setups"]["paper"]["stopping_rules"]
    assert rules["reset"].startswith("until running train accuracy") and rules["er"].startswith("fixed")
    same = on_disk["setups"]["same"]["stopping_rules"]
    assert {rule.split(";")[0] for rule in same.values()} == {"fixed 4 epochs"}
    assert "LR schedule cosine" in same["cal"] and ";" not in same["er"]  # cal's own schedule is stated


def test_speedups_are_ratios_of_cumulative_costs(comparison):
    out, _, summary, _ = comparison
    er = summary["policies"]["er"]["budgets"][-1]
    reset = [json.loads(x) for x in (out / "paper" / "reset-s0" / "metrics.jsonl").read_text().splitlines()]
    reset1 = [json.loads(x) for x in (out / "paper" / "reset-s1" / "metrics.jsonl").read_text().splitlines()]
    mine = [json.loads(x) for x in (out / "paper" / "er-s0" / "metrics.jsonl").read_text().splitlines()]
    mine1 = [json.loads(x) for x in (out / "paper" / "er-s1" / "metrics.jsonl").read_text().splitlines()]
    expected = (reset[-1]["sample_gradients"] + reset1[-1]["sample_gradients"]) / (
        mine[-1]["sample_gradients"] + mine1[-1]["sample_gradients"])
    assert er["speedup_sample_gradients"] == pytest.approx(expected)
    acc = (mine[-1]["test_accuracy"] + mine1[-1]["test_accuracy"]) / 2
    ref = (reset[-1]["test_accuracy"] + reset1[-1]["test_accuracy"]) / 2
    assert er["relative_accuracy"] == pytest.approx(acc / ref)


def test_every_policy_starts_from_the_same_initial_set(comparison):
    out = comparison[0]
    for seed in (0, 1):
        firsts = []
        for p in ("reset", "er", "cal", "finetune"):
            with Ledger.open(out / "paper" / f"{p}-s{seed}" / "ledger.sqlite") as ledger:
                firsts.append(sorted(ledger.query(0).ids.tolist()))
        assert all(f == firsts[0] for f in firsts)


def test_report_states_stopping_rules_forgetting_and_correlation(comparison):
    out, _, summary, _ = comparison
    report = (out / "report.md").read_text()
    assert "Stopping rules" in report and "fixed 4 epochs" in report
    assert "Forgetting" in report and "Pearson" in report
    assert (out / "scatter.png").exists() and (out / "learning_curves.png").exists()
    corr = summary["setups"]["paper"]["entropy_correlation"]["er"]
    assert len(corr) == 5 and all(-1 <= c <= 1 for c in corr)
    forgetting = summary["setups"]["paper"]["forgetting"]["finetune"]["round0_items_after_each_round"]
    assert len(forgetting) == 5


def test_a_finished_comparison_is_reused_not_rerun(comparison):
    out, spec, summary, _ = comparison
    before = (out / "paper" / "er-s0" / "metrics.jsonl").stat().st_mtime_ns
    again = run_compare(spec, out, dataset=make_blobs(), log=lambda _: None)
    assert again["policies"] == summary["policies"]
    assert (out / "paper" / "er-s0" / "metrics.jsonl").stat().st_mtime_ns >= before


def test_compare_cli_on_a_users_npz(tmp_path, capsys):
    ds = make_blobs()
    path = tmp_path / "mine.npz"
    np.savez(path, X=ds.x_train, y=ds.y_train, X_test=ds.x_test, y_test=ds.y_test)
    code = main(["compare", "--dataset", str(path), "--model", "mlp:16", "--policies", "cal", "--seeds", "1",
                 "--budgets", "40,80", "--epochs", "2", "--out", str(tmp_path / "cmp")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "rel. accuracy" in printed and "cal" in printed
    assert (tmp_path / "cmp" / "summary.json").exists()


def test_paper_suite_refuses_a_cpu_with_an_estimate(tmp_path, capsys):
    assert main(["bench", "paper", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "GPU" in err and "hours" in err and "--force" in err


def test_generated_section_is_replaced_in_place(tmp_path):
    md = tmp_path / "B.md"
    md.write_text(f"# Benchmarks\n\nhand-written\n\n{BEGIN}\nold\n{END}\n\n## GPU\nkept\n")
    _write_generated(md, ["### new section"], 60.0, 3, tmp_path, tmp_path / "pub")
    text = md.read_text()
    assert "old" not in text and "### new section" in text
    assert text.count(BEGIN) == 1 and "hand-written" in text and "## GPU\nkept" in text
    assert f"--publish {tmp_path / 'pub'}" in text  # the command that regenerates it, exactly


def test_publish_copies_the_small_files_only(tmp_path):
    from calkit.bench import _publish

    run = tmp_path / "run"
    (run / "paper" / "reset-s0").mkdir(parents=True)
    for name in ("report.md", "summary.json", "scatter.png"):
        (run / name).write_text(name)
    target = _publish(run, tmp_path / "pub" / "entry")
    assert sorted(p.name for p in target.iterdir()) == ["report.md", "scatter.png", "summary.json"]


def test_entropy_correlation_uses_the_entropies_stored_with_each_round(comparison, monkeypatch):
    """No model is reloaded: the correlation comes from the evaluation pass of each round."""
    from calkit.compare_report import _entropy_correlation
    from calkit.evaluate import predictive_entropy
    from calkit.models import batched_inference

    out, spec, summary, _ = comparison
    loop = ActiveLoop.open(out / "paper" / "er-s0", dataset=make_blobs())
    try:
        stored = loop.test_entropy_at(2)
        fresh = predictive_entropy(batched_inference(loop.model_at(2), loop.data.x_test))
    finally:
        loop.close()
    np.testing.assert_allclose(stored, fresh, rtol=1e-5, atol=1e-6)

    def no_reload(self, t):
        raise AssertionError("model reloaded")

    monkeypatch.setattr(ActiveLoop, "model_at", no_reload)
    again = _entropy_correlation(out / "paper", "er", spec.seeds, make_blobs())
    assert again == pytest.approx(summary["setups"]["paper"]["entropy_correlation"]["er"], nan_ok=True)
