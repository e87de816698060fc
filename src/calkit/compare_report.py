"""The numbers and pictures of a comparison: summary.json, report.md and two plots."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from calkit.checkpoint import atomic_write_text
from calkit.data import Dataset
from calkit.evaluate import predictive_entropy
from calkit.loop import ActiveLoop
from calkit.models import batched_inference
from calkit.policies import POLICIES, ReplayPolicy, resolve_policy_name

if TYPE_CHECKING:
    from calkit.compare import CompareSpec

BASELINE = "reset"


def with_baseline(policies: tuple[str, ...]) -> list[str]:
    """The policies to run, standard AL first when the user did not name it."""
    names = [p.strip().lower() for p in policies]
    return names if BASELINE in names else [BASELINE] + names


def is_continual(name: str) -> bool:
    return issubclass(POLICIES[resolve_policy_name(name)], ReplayPolicy)


def mean_std(values: list[float]) -> tuple[float, float]:
    return float(statistics.mean(values)), float(statistics.stdev(values)) if len(values) > 1 else 0.0


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _training_rule(record: dict) -> str:
    """The stopping rule, plus the LR schedule when it is not the constant default."""
    schedule = record.get("schedule", "constant")
    return record["stop_rule"] + ("" if schedule == "constant" else f"; LR schedule {schedule}")


def summarize(out: Path, spec: "CompareSpec", counts: list[int], dataset: Dataset) -> dict:
    policies = with_baseline(spec.policies)
    setups = {}
    for setup in spec.setups:
        runs = {p: [_metrics(out / setup / f"{p}-s{s}") for s in spec.seeds] for p in policies}
        setups[setup] = {
            "policies": {p: _policy_summary(runs[p], runs[BASELINE], counts, dataset.pool_size) for p in policies},
            "stopping_rules": {p: _training_rule(runs[p][0][-1]) for p in policies},
            "forgetting": {p: _forgetting(runs[p]) for p in policies},
            "entropy_correlation": {
                p: _entropy_correlation(out / setup, p, spec.seeds, dataset) for p in policies if is_continual(p)
            },
        }
    primary = setups[spec.setups[0]]
    return {
        "dataset": dataset.name,
        "model": spec.base.model,
        "pool_size": dataset.pool_size,
        "seeds": list(spec.seeds),
        "budgets": counts,
        "setup": spec.setups[0],
        "policies": primary["policies"],
        "stopping_rules": primary["stopping_rules"],
        "setups": setups,
    }


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _at(records: list[dict], labeled: int) -> dict:
    for r in records:
        if r["labeled"] == labeled:
            return r
    raise KeyError(f"no round ends at {labeled} labels")


def _policy_summary(runs: list[list[dict]], base: list[list[dict]], counts: list[int], pool: int) -> dict:
    rows = []
    for labeled in counts:
        mine = [_at(r, labeled) for r in runs]
        ref = [_at(r, labeled) for r in base]
        acc, std = mean_std([m["test_accuracy"] for m in mine])
        ref_acc = float(np.mean([m["test_accuracy"] for m in ref]))
        rows.append({
            "labeled": labeled,
            "fraction": labeled / pool,
            "accuracy_mean": acc,
            "accuracy_std": std,
            "relative_accuracy": acc / ref_acc if ref_acc else None,
            "speedup_train_seconds": _ratio(ref, mine, ("train_seconds",)),
            "speedup_sample_gradients": _ratio(ref, mine, ("sample_gradients",)),
            "speedup_end_to_end": _ratio(ref, mine, ("train_seconds", "select_seconds")),
            "train_seconds": float(np.mean([m["train_seconds"] for m in mine])),
            "select_seconds": float(np.mean([m["select_seconds"] for m in mine])),
            "sample_gradients": float(np.mean([m["sample_gradients"] for m in mine])),
        })
    return {"budgets": rows}


def _ratio(ref: list[dict], mine: list[dict], keys: tuple[str, ...]) -> float:
    cost = lambda records: float(np.mean([sum(r[k] for k in keys) for r in records]))  # noqa: E731
    return cost(ref) / cost(mine) if cost(mine) > 0 else float("inf")


def _forgetting(runs: list[list[dict]]) -> dict:
    """Accuracy on round-0 items after every round, and on each round's items at the end."""
    first = np.mean([[r["round_item_accuracy"][0] for r in run] for run in runs], axis=0)
    final = np.mean([run[-1]["round_item_accuracy"] for run in runs], axis=0)
    return {"round0_items_after_each_round": first.tolist(), "each_rounds_items_at_end": final.tolist()}


def _entropy_correlation(setup_dir: Path, policy: str, seeds: tuple[int, ...], dataset: Dataset) -> list[float]:
    """Per round, Pearson correlation of test-set entropies of reset's and the policy's models."""
    if not dataset.has_test:
        return []
    per_seed = []
    for s in seeds:
        ref = ActiveLoop.open(setup_dir / f"{BASELINE}-s{s}", dataset=dataset)
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
    return predictive_entropy(batched_inference(loop.model_at(t), loop.data.x_test, loop.cfg.score_batch_size))


# -- report -------------------------------------------------------------------------------
def write_report(out: Path, summary: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    plots = _plots(out, summary)
    atomic_write_text(out / "report.md", format_report(summary, plots))


def format_budget_table(summary: dict) -> str:
    """Per budget: each policy's accuracy next to reset's, relative accuracy and speed-ups."""
    base = {b["labeled"]: b for b in summary["policies"][BASELINE]["budgets"]}
    lines = [f"{'policy':<10}{'labeled':>8}{'accuracy':>10}{'reset acc':>11}{'relative':>10}"
             f"{'x grads':>9}{'x train s':>11}{'x end-to-end':>14}"]
    for p, data in summary["policies"].items():
        if p == BASELINE:
            continue
        for b in data["budgets"]:
            lines.append(
                f"{p:<10}{b['labeled']:>8}{b['accuracy_mean']:>10.4f}{base[b['labeled']]['accuracy_mean']:>11.4f}"
                f"{b['relative_accuracy']:>10.4f}{b['speedup_sample_gradients']:>8.2f}x"
                f"{b['speedup_train_seconds']:>10.2f}x{b['speedup_end_to_end']:>13.2f}x"
            )
    return "\n".join(lines)


def format_headline(summary: dict) -> str:
    """One row per policy: mean relative accuracy and speed-ups over the budgets."""
    lines = [f"{'policy':<10}{'rel. accuracy':>14}{'speed-up grads':>16}{'speed-up train s':>18}{'end to end':>12}"]
    for p, data in summary["policies"].items():
        b = data["budgets"]
        mean = lambda k: float(np.mean([x[k] for x in b]))  # noqa: E731
        lines.append(
            f"{p:<10}{mean('relative_accuracy'):>14.4f}{mean('speedup_sample_gradients'):>15.2f}x"
            f"{mean('speedup_train_seconds'):>17.2f}x{mean('speedup_end_to_end'):>11.2f}x"
        )
    return "\n".join(lines)


def format_report(summary: dict, plots: list[str]) -> str:
    lines = [
        f"# {summary['dataset']}: policies against standard AL ({BASELINE})",
        "",
        f"Model `{summary['model']}`, pool {summary['pool_size']:,} items, seeds {summary['seeds']}, "
        f"budgets {summary['budgets']} labels. Relative accuracy = policy mean / {BASELINE} mean; "
        f"speed-ups = {BASELINE}'s cumulative cost / the policy's, up to each budget.",
    ]
    for setup, body in summary["setups"].items():
        lines += ["", f"## Setup `{setup}`", "", "Stopping rules:", ""]
        lines += [f"- `{p}`: {rule}" for p, rule in body["stopping_rules"].items()]
        lines += ["", "| policy | labeled | accuracy | relative | speed-up train s | speed-up sample-grads | speed-up end to end |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for p, data in body["policies"].items():
            for b in data["budgets"]:
                lines.append(
                    f"| {p} | {b['labeled']:,} | {b['accuracy_mean']:.4f} ± {b['accuracy_std']:.4f} | "
                    f"{b['relative_accuracy']:.4f} | {b['speedup_train_seconds']:.2f}x | "
                    f"{b['speedup_sample_gradients']:.2f}x | {b['speedup_end_to_end']:.2f}x |"
                )
        lines += ["", "Mean over budgets:", "", "| policy | relative accuracy | speed-up sample-grads | speed-up train s |",
                  "|---|---:|---:|---:|"]
        for p, data in body["policies"].items():
            rel = np.mean([b["relative_accuracy"] for b in data["budgets"]])
            sg = np.mean([b["speedup_sample_gradients"] for b in data["budgets"]])
            ts = np.mean([b["speedup_train_seconds"] for b in data["budgets"]])
            lines.append(f"| {p} | {rel:.4f} | {sg:.2f}x | {ts:.2f}x |")
        lines += ["", "Forgetting: training accuracy on the initial set's items after each round:", ""]
        for p, f in body["forgetting"].items():
            lines.append(f"- `{p}`: " + ", ".join(f"{a:.3f}" for a in f["round0_items_after_each_round"]))
        if body["entropy_correlation"]:
            lines += ["", f"Pearson correlation of test-set entropies with {BASELINE}'s model, per round:", ""]
            for p, c in body["entropy_correlation"].items():
                lines.append(f"- `{p}`: " + ", ".join(f"{v:.3f}" for v in c))
    lines += [""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _plots(out: Path, summary: dict) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    body = summary["policies"]
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    for p, data in body.items():
        xs = [b["speedup_sample_gradients"] for b in data["budgets"]]
        ys = [b["relative_accuracy"] for b in data["budgets"]]
        ax.scatter(xs, ys, label=p, s=18)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel(f"speed-up over {BASELINE} (sample-gradients, cumulative)")
    ax.set_ylabel(f"relative accuracy (policy / {BASELINE})")
    ax.set_title(f"{summary['dataset']}: accuracy against speed-up, each budget")
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
