"""The numbers and pictures of a comparison: summary.json, report.md and two plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from calkit.checkpoint import atomic_write_text
from calkit.config import RunConfig
from calkit.data import Dataset
from calkit.entropy import predictive_entropy
from calkit.loop import ActiveLoop, later_round_lr
from calkit.models import batched_inference
from calkit.policies import ReplayPolicy, policy_class
from calkit.report import read_metrics
from calkit.stats import PARITY_LOWER, PARITY_MEAN, ci95, mean_std, parity, ratio

if TYPE_CHECKING:
    from calkit.compare import CompareSpec

#: The baseline every headline number is against: standard AL with settings tuned on validation.
BASELINE = "reset-tuned"
#: Standard AL with the CAL paper's rule, reported beside the tuned one.
PAPER_BASELINE = "reset"


def baselines_for(setup: str) -> tuple[str, ...]:
    """The standard-AL runs a setup compares against, the headline one first.

    In `same` every policy gets the same fixed epochs and schedule, which leaves nothing for the
    two resets to differ in: one run serves.
    """
    return (PAPER_BASELINE,) if setup == "same" else (BASELINE, PAPER_BASELINE)


def with_baselines(policies: tuple[str, ...], setup: str) -> list[str]:
    """The policies to run in a setup: its baselines first, then the user's, without repeats."""
    names = list(baselines_for(setup))
    for p in (p.strip().lower() for p in policies):
        if p not in names:
            names.append(p)
    return names


def is_continual(name: str) -> bool:
    return issubclass(policy_class(name), ReplayPolicy)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _training_rule(record: dict, run_dir: Path) -> str:
    """How a policy's later rounds trained: the stopping rule, the learning rate (with its schedule
    when it is not constant) and what a kept model went through before each round."""
    schedule = record.get("schedule", "constant")
    rate = record["lr"] if "lr" in record else later_round_lr(RunConfig.from_yaml(run_dir / "config.yaml"))
    lr = f"; learning rate {rate:g}"
    warm = record.get("warm_start", "none")
    return (record["stop_rule"] + lr + ("" if schedule == "constant" else f", schedule {schedule}")
            + ("" if warm == "none" else f"; before each round {warm}"))


def summarize(out: Path, spec: "CompareSpec", counts: list[int], dataset: Dataset) -> dict:
    setups = {}
    for setup in spec.setups:
        names = with_baselines(spec.policies, setup)
        runs = {p: {s: read_metrics(out / setup / f"{p}-s{s}") for s in spec.seeds} for p in names}
        primary, *others = baselines_for(setup)
        first_seed = spec.seeds[0]
        setups[setup] = {
            "baseline": primary,
            "policies": {
                p: policy_summary(runs[p], runs[primary], counts, dataset.pool_size, {b: runs[b] for b in others})
                for p in names
            },
            "initial_rule": runs[primary][first_seed][0]["stop_rule"],
            "stopping_rules": {p: _training_rule(runs[p][first_seed][-1], out / setup / f"{p}-s{first_seed}")
                               for p in names},
            "forgetting": {p: _forgetting(list(runs[p].values())) for p in names},
            "entropy_correlation": {
                p: _entropy_correlation(out / setup, p, primary, spec.seeds, dataset) for p in names if is_continual(p)
            },
        }
    head = setups[spec.setups[0]]
    return {
        "dataset": dataset.name,
        "model": spec.base.model,
        "pool_size": dataset.pool_size,
        "seeds": list(spec.seeds),
        "budgets": counts,
        "setup": spec.setups[0],
        "baseline": head["baseline"],
        "shared_start": True,
        "initial_rule": head["initial_rule"],
        "policies": head["policies"],
        "stopping_rules": head["stopping_rules"],
        "setups": setups,
    }


def _at(records: list[dict], labeled: int) -> dict:
    for r in records:
        if r["labeled"] == labeled:
            return r
    raise KeyError(f"no round ends at {labeled} labels")


#: Speed-ups: the baseline's cumulative cost over the policy's, per seed, for these costs.
SPEEDUPS = {
    "speedup_train_seconds": ("train_seconds",),
    "speedup_sample_gradients": ("sample_gradients",),
    "speedup_compute": ("compute",),
    "speedup_end_to_end": ("train_seconds", "select_seconds"),
}


def policy_summary(
    runs: dict[int, list[dict]], base: dict[int, list[dict]], counts: list[int], pool: int,
    against: dict[str, dict[int, list[dict]]] | None = None,
) -> dict:
    """Per budget: accuracy, and per-seed paired ratios against ``base`` (means and intervals).

    The first budget is the shared initial round, identical for every policy by construction, so
    the means over budgets (``mean``) leave it out. ``against`` adds the same ratios against
    other baselines (the paper-rule reset beside the tuned one).
    """
    rows = [_budget_row(runs, base, labeled, pool, first=i == 0) for i, labeled in enumerate(counts)]
    summary = {"budgets": rows, "mean": mean_over_budgets(rows)}
    if against:
        summary["against"] = {}
        for name, other in against.items():
            vs = [_budget_row(runs, other, labeled, pool, first=i == 0) for i, labeled in enumerate(counts)]
            summary["against"][name] = {"budgets": vs, "mean": mean_over_budgets(vs)}
    return summary


def _budget_row(runs: dict[int, list[dict]], base: dict[int, list[dict]], labeled: int, pool: int, first: bool) -> dict:
    seeds = sorted(runs)
    mine = {s: _at(runs[s], labeled) for s in seeds}
    ref = {s: _at(base[s], labeled) for s in seeds}
    per_seed = [_seed_row(s, mine[s], ref[s]) for s in seeds]
    accuracies = [m["test_accuracy"] for m in mine.values()]
    row: dict = {
        "labeled": labeled,
        "fraction": labeled / pool,
        "shared_start": first,
        "accuracy_mean": None,
        "accuracy_std": None,
        "val_accuracy_mean": _mean_or_none([m.get("val_accuracy") for m in mine.values()]),
    }
    if None not in accuracies:
        row["accuracy_mean"], row["accuracy_std"] = mean_std(accuracies)
    for key in ("relative_accuracy", "val_relative_accuracy"):
        values = [p[key] for p in per_seed]
        row[key] = _mean_or_none(values)
        row[f"{key}_ci95"] = None if None in values else ci95(values)
    row["parity"] = None if row["relative_accuracy"] is None else parity(row["relative_accuracy"], row["relative_accuracy_ci95"])
    for key in SPEEDUPS:
        row[key] = float(np.mean([p[key] for p in per_seed]))
        row[f"{key}_ci95"] = ci95([p[key] for p in per_seed])
    for key in ("train_seconds", "select_seconds", "sample_gradients", "compute"):
        row[key] = float(np.mean([m[key] for m in mine.values()]))
    row["seeds"] = per_seed
    return row


def _seed_row(seed: int, mine: dict, ref: dict) -> dict:
    """One seed's numbers and its ratios against the same seed's baseline run."""
    out = {"seed": seed, "test_accuracy": mine["test_accuracy"], "val_accuracy": mine.get("val_accuracy")}
    for key, field in (("relative_accuracy", "test_accuracy"), ("val_relative_accuracy", "val_accuracy")):
        a, b = mine.get(field), ref.get(field)
        out[key] = None if a is None or not b else a / b
    for key, costs in SPEEDUPS.items():
        out[key] = ratio(sum(ref[c] for c in costs), sum(mine[c] for c in costs))
    return out


def _mean_or_none(values: list) -> float | None:
    return None if not values or None in values else float(np.mean(values))


def mean_over_budgets(rows: list[dict]) -> dict:
    """Means over the budgets after the shared start (all of them when there is only one)."""
    later = [r for r in rows if not r["shared_start"]] or rows
    keys = ("relative_accuracy", "val_relative_accuracy", *SPEEDUPS)
    out = {key: _mean_or_none([r[key] for r in later]) for key in keys}
    rel = [r["relative_accuracy"] for r in later]
    out["worst_relative_accuracy"] = None if None in rel else min(rel)
    out["budgets_at_parity"] = sum(bool(r["parity"]) for r in later)
    out["budgets"] = len(later)
    return out


def _forgetting(runs: list[list[dict]]) -> dict:
    """Accuracy on round-0 items after every round, and on each round's items at the end."""
    first = np.mean([[r["round_item_accuracy"][0] for r in run] for run in runs], axis=0)
    final = np.mean([run[-1]["round_item_accuracy"] for run in runs], axis=0)
    return {"round0_items_after_each_round": first.tolist(), "each_rounds_items_at_end": final.tolist()}


def _entropy_correlation(
    setup_dir: Path, policy: str, baseline: str, seeds: tuple[int, ...], dataset: Dataset
) -> list[float]:
    """Per round, Pearson correlation of test-set entropies of the baseline's and the policy's models."""
    if not dataset.has_test:
        return []
    per_seed = []
    for s in seeds:
        ref = ActiveLoop.open(setup_dir / f"{baseline}-s{s}", dataset=dataset)
        mine = ActiveLoop.open(setup_dir / f"{policy}-s{s}", dataset=dataset)
        try:
            rounds = len(ref.ledger.metrics())
            per_seed.append([pearson(_entropy(ref, t), _entropy(mine, t)) for t in range(rounds)])
        finally:
            ref.close()
            mine.close()
    return np.nanmean(np.array(per_seed), axis=0).tolist()


def _entropy(loop: ActiveLoop, t: int) -> np.ndarray:
    """Stored with the round when the run has it; recomputed from the checkpointed model otherwise."""
    stored = loop.test_entropy_at(t)
    if stored is not None:
        return np.asarray(stored)
    return predictive_entropy(batched_inference(loop.model_at(t), loop.data.split_batches("test", loop.cfg.score_batch_size)))


# -- report -------------------------------------------------------------------------------
def write_report(out: Path, summary: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    plots = _plots(out, summary)
    atomic_write_text(out / "report.md", format_report(summary, plots))


def _num(value: float | None, fmt: str = "{:.4f}") -> str:
    return "-" if value is None else fmt.format(value)


def _interval(ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:.4f}, {ci[1]:.4f}]"


def _verdict(row: dict) -> str:
    if row.get("shared_start"):
        return "shared start"
    return {True: "parity", False: "below", None: "n/a"}[row["parity"]]


def format_budget_table(summary: dict) -> str:
    """Per budget: each policy's accuracy next to the baseline's, paired relative accuracy with its
    interval, the parity verdict and the speed-ups (the terminal's view of report.md)."""
    baseline = summary["baseline"]
    base = {b["labeled"]: b for b in summary["policies"][baseline]["budgets"]}
    lines = [f"{'policy':<12}{'labeled':>8}{'accuracy':>10}{'baseline':>10}{'relative':>10}{'95% interval':>20}"
             f"{'val rel.':>10}  {'verdict':<13}{'x grads':>8}{'x compute':>10}{'x train s':>10}{'x e2e':>8}"]
    for p, data in summary["policies"].items():
        if p == baseline:
            continue
        for b in data["budgets"]:
            lines.append(
                f"{p:<12}{b['labeled']:>8}{_num(b['accuracy_mean']):>10}{_num(base[b['labeled']]['accuracy_mean']):>10}"
                f"{_num(b['relative_accuracy']):>10}{_interval(b['relative_accuracy_ci95']):>20}"
                f"{_num(b['val_relative_accuracy']):>10}  {_verdict(b):<13}{b['speedup_sample_gradients']:>7.2f}x"
                f"{b['speedup_compute']:>9.2f}x{b['speedup_train_seconds']:>9.2f}x{b['speedup_end_to_end']:>7.2f}x"
            )
    return "\n".join(lines)


def format_headline(summary: dict) -> str:
    """One row per policy: means over the budgets after the shared start."""
    lines = [f"{'policy':<12}{'rel. accuracy':>14}{'worst':>8}{'at parity':>11}{'val rel.':>10}{'x grads':>9}"
             f"{'x compute':>11}{'x train s':>11}{'x e2e':>8}"]
    for p, data in summary["policies"].items():
        m = data["mean"]
        lines.append(
            f"{p:<12}{_num(m['relative_accuracy']):>14}{_num(m['worst_relative_accuracy']):>8}"
            f"{m['budgets_at_parity']:>6}/{m['budgets']:<4}{_num(m['val_relative_accuracy']):>10}"
            f"{m['speedup_sample_gradients']:>8.2f}x{m['speedup_compute']:>10.2f}x{m['speedup_train_seconds']:>10.2f}x"
            f"{m['speedup_end_to_end']:>7.2f}x"
        )
    return "\n".join(lines)


def _budget_rows_md(policies: dict, skip: str | None) -> list[str]:
    lines = ["| policy | labeled | accuracy | relative (paired) | 95 % interval | val relative | verdict "
             "| x sample-grads | x compute | x train s | x end to end |",
             "|---|---:|---:|---:|---|---:|---|---:|---:|---:|---:|"]
    for p, data in policies.items():
        if p == skip:
            continue
        for b in data["budgets"]:
            acc = "-" if b["accuracy_mean"] is None else f"{b['accuracy_mean']:.4f} ± {b['accuracy_std']:.4f}"
            lines.append(
                f"| {p} | {b['labeled']:,} | {acc} | {_num(b['relative_accuracy'])} | "
                f"{_interval(b['relative_accuracy_ci95'])} | {_num(b['val_relative_accuracy'])} | {_verdict(b)} | "
                f"{b['speedup_sample_gradients']:.2f}x | {b['speedup_compute']:.2f}x | "
                f"{b['speedup_train_seconds']:.2f}x | {b['speedup_end_to_end']:.2f}x |"
            )
    return lines


def means_table_md(rows: dict[str, dict]) -> list[str]:
    """Markdown rows of means over the budgets after the shared start, one per policy."""
    lines = ["| policy | relative accuracy | worst budget | budgets at parity | val relative | x sample-grads "
             "| x compute | x train s | x end to end |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p, m in rows.items():
        lines.append(
            f"| {p} | {_num(m['relative_accuracy'])} | {_num(m['worst_relative_accuracy'])} | "
            f"{m['budgets_at_parity']}/{m['budgets']} | {_num(m['val_relative_accuracy'])} | "
            f"{m['speedup_sample_gradients']:.2f}x | {m['speedup_compute']:.2f}x | {m['speedup_train_seconds']:.2f}x | "
            f"{m['speedup_end_to_end']:.2f}x |"
        )
    return lines


def format_report(summary: dict, plots: list[str]) -> str:
    lines = [
        f"# {summary['dataset']}: policies against standard AL",
        "",
        f"Model `{summary['model']}`, pool {summary['pool_size']:,} items, seeds {summary['seeds']}, budgets "
        f"{summary['budgets']} labels.",
        "",
        "Every policy of a seed continues from the same trained initial round (one run per seed, taken over by all), "
        "so the first budget is identical for all of them by construction; means over budgets leave it out. "
        "Relative accuracy is the mean over seeds of each seed's ratio to the baseline run with the same seed, "
        "with a 95 % t-interval; `val relative` is the same ratio on the validation split (what tuning reads). "
        f"A budget is at parity when the mean is >= {PARITY_MEAN} and the interval's lower end >= {PARITY_LOWER}. "
        "Speed-ups are the baseline's cumulative cost over the policy's, per seed, then averaged; compute counts "
        "3 per sample-gradient and 1 per forward-only pass (scoring, candidates, stored targets).",
    ]
    for setup, body in summary["setups"].items():
        baseline = body["baseline"]
        lines += ["", f"## Setup `{setup}`: against `{baseline}`", "",
                  f"Initial round (every policy, shared): {body['initial_rule']}.", "", "Later rounds:", ""]
        lines += [f"- `{p}`: {rule}" for p, rule in body["stopping_rules"].items()]
        lines += [""] + _budget_rows_md(body["policies"], skip=baseline)
        lines += ["", "Mean over the budgets after the shared start:", ""]
        lines += means_table_md({p: d["mean"] for p, d in body["policies"].items()})
        for other in baselines_for(setup)[1:]:
            against = {p: d["against"][other] for p, d in body["policies"].items() if p != other}
            lines += ["", f"### Against `{other}`", ""] + _budget_rows_md(against, skip=None)
            lines += ["", "Mean over the budgets after the shared start:", ""]
            lines += means_table_md({p: d["mean"] for p, d in against.items()})
        lines += ["", "Forgetting: training accuracy on the initial set's items after each round:", ""]
        for p, f in body["forgetting"].items():
            lines.append(f"- `{p}`: " + ", ".join(f"{a:.3f}" for a in f["round0_items_after_each_round"]))
        if body["entropy_correlation"]:
            lines += ["", f"Pearson correlation of test-set entropies with `{baseline}`'s model, per round:", ""]
            for p, c in body["entropy_correlation"].items():
                lines.append(f"- `{p}`: " + ", ".join(f"{v:.3f}" for v in c))
    lines += [""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _plots(out: Path, summary: dict) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return []
    body = summary["policies"]
    if any(b["accuracy_mean"] is None for data in body.values() for b in data["budgets"]):
        return []  # no test split: nothing to draw
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    for p, data in body.items():
        later = [b for b in data["budgets"] if not b["shared_start"]] or data["budgets"]
        xs = np.array([b["speedup_compute"] for b in later])
        ys = np.array([b["relative_accuracy"] for b in later])
        cis = [b["relative_accuracy_ci95"] for b in later]
        err = None if None in cis else np.abs(np.array(cis).T - ys)
        ax.errorbar(xs, ys, yerr=err, fmt="o", ms=4, capsize=2, label=p)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.axhline(PARITY_MEAN, color="grey", lw=0.6, ls=":")
    ax.set_xscale("log")
    times = FuncFormatter(lambda v, _: f"{v:g}x")
    ax.xaxis.set_major_formatter(times)
    ax.xaxis.set_minor_formatter(times)
    ax.set_xlabel(f"speed-up over {summary['baseline']} (compute, cumulative)")
    ax.set_ylabel("relative accuracy (paired, 95 % interval)")
    ax.set_title(f"{summary['dataset']}: each budget after the shared start")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "scatter.png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    for p, data in body.items():
        xs = [b["labeled"] for b in data["budgets"]]
        ys = np.array([b["accuracy_mean"] for b in data["budgets"]])
        sd = np.array([b["accuracy_std"] for b in data["budgets"]])
        ax.plot(xs, ys, marker="o", ms=3, label=p)
        ax.fill_between(xs, ys - sd, ys + sd, alpha=0.15)
    ax.set_xlabel("labeled items")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{summary['dataset']}: learning curves (mean ± sd over seeds)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png")
    plt.close(fig)
    return ["scatter.png", "learning_curves.png"]
