"""Publish a finished `calkit bench` suite into this repository.

    calkit bench cpu --seeds 100-104 --out runs/bench
    python benchmarks/publish.py runs/bench --results benchmarks/results/cpu_suite_2026-11-30

Copies each entry's report, summary and plots (small files, unlike the run directories with
their checkpoints) into ``--results``, and, for a whole cpu suite, rewrites the generated section
of BENCHMARKS.md (``--benchmarks-md``) with links there. It reads only what `calkit bench` wrote
under its ``--out`` (``bench.json`` and each entry's ``summary.json``): the library runs suites,
and this script, which belongs to the repository, is the one thing that edits the repository.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from calkit.compare_report import PAPER_BASELINE, means_table_md

BEGIN, END = "<!-- calkit bench cpu: begin (generated) -->", "<!-- calkit bench cpu: end -->"
#: The files of an entry that are published (the run directories stay under --out).
PUBLISHED = ("report.md", "summary.json", "scatter.png", "learning_curves.png")

#: (entry name, its bench.json record, its summary, the folder its reports are linked from)
Result = tuple[str, dict, dict, Path]


class PublishError(Exception):
    """The bench folder cannot be published as asked; the message says why."""


def read_bench(out: Path) -> tuple[dict, list[Result]]:
    """The suite's record and, per finished entry, its summary (reports linked from ``out``)."""
    manifest_path = out / "bench.json"
    if not manifest_path.is_file():
        raise PublishError(f"{manifest_path} not found: run `calkit bench cpu --out {out}` first")
    manifest = json.loads(manifest_path.read_text())
    results = []
    for name, record in manifest["entries"].items():
        summary_path = out / name / "summary.json"
        if not summary_path.is_file():
            raise PublishError(f"{summary_path} not found; rerun `{manifest['command']}` to finish {name}")
        results.append((name, record, json.loads(summary_path.read_text()), out / name))
    return manifest, results


def copy_results(source: Path, target: Path) -> Path:
    """Copy an entry's published files from its run folder to ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PUBLISHED:
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)
    return target


def headline_table(results: Sequence[Result], policy: str = "cal") -> list[str]:
    """One row per dataset: the parity verdict and the speed-ups against both baselines."""
    lines = [
        f"| dataset | tuned on | `{policy}` at parity (budgets) | relative accuracy | worst budget [95 % interval] "
        "| x sample-grads | x compute | x end to end | against `reset` (paper rule): relative, x sample-grads, "
        "x compute, x end to end |",
        "|---|---|---|---:|---|---:|---:|---:|---|",
    ]
    for name, record, summary, _ in results:
        data = summary["policies"][policy]
        m, paper = data["mean"], data["against"][PAPER_BASELINE]["mean"]
        later = [b for b in data["budgets"] if not b["shared_start"]]
        worst = min(later, key=lambda b: b["relative_accuracy"])
        ci = worst["relative_accuracy_ci95"]
        interval = "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
        verdict = "yes" if m["budgets_at_parity"] == m["budgets"] else "**no**"
        lines.append(
            f"| {name} | {'tuning' if record['tuning'] else 'evaluation only'} | {verdict} "
            f"({m['budgets_at_parity']}/{m['budgets']}) | {m['relative_accuracy']:.4f} | "
            f"{worst['relative_accuracy']:.4f}{interval} at {worst['labeled']:,} | {m['speedup_sample_gradients']:.2f}x | "
            f"{m['speedup_compute']:.2f}x | {m['speedup_end_to_end']:.2f}x | {paper['relative_accuracy']:.4f}, "
            f"{paper['speedup_sample_gradients']:.2f}x, {paper['speedup_compute']:.2f}x, {paper['speedup_end_to_end']:.2f}x |"
        )
    return lines


def entry_section(name: str, record: dict, summary: dict, reports: Path) -> str:
    """One entry's tables, per setup, with the link to its full report."""
    role = "tuning dataset" if record["tuning"] else "evaluation only"
    notes = f"; {record['notes']}" if record["notes"] else ""
    lines = [f"### {name} ({role})", "", f"{summary['dataset']}, model `{summary['model']}`, pool "
             f"{summary['pool_size']:,}, budgets {summary['budgets']}, seeds {summary['seeds']}{notes}. "
             f"{record['seconds'] / 60:.1f} min.", ""]
    for setup, body in summary["setups"].items():
        rules = "; ".join(f"`{p}`: {r}" for p, r in body["stopping_rules"].items())
        lines += [f"Setup `{setup}`, against `{body['baseline']}`. Initial round (shared): {body['initial_rule']}. "
                  f"Later rounds: {rules}.", ""]
        lines += means_table_md({p: d["mean"] for p, d in body["policies"].items()})
        lines.append("")
    lines += [f"Per budget, per seed, against both baselines, with forgetting, entropy correlation and plots: "
              f"`{reports}/report.md`.", ""]
    return "\n".join(lines)


def generated_section(manifest: dict, results: Sequence[Result], command: str) -> str:
    """The whole generated section, between its markers."""
    seconds = sum(record["seconds"] for _, record, _, _ in results)
    tuned = ", ".join(name for name, record, _, _ in results if record["tuning"])
    return "\n".join([
        BEGIN, "## CPU suite (`calkit bench cpu`)", "",
        f"{manifest['machine']}. Regenerate with {command} ({seconds / 60:.1f} min here).", "",
        f"Every number is on the test split, with seeds {manifest['seeds']}; calkit's defaults were chosen on the "
        f"validation splits of the tuning datasets ({tuned}) with seeds 0-2. Every policy of a seed continues "
        "from the same trained initial round, so the first budget is identical by construction and every mean "
        "leaves it out. Relative accuracy is the mean over seeds of each seed's ratio to the baseline run with "
        "the same seed; a budget is at parity when that mean is >= 0.995 and the lower end of its 95 % "
        "t-interval >= 0.99. Speed-ups are the baseline's cumulative cost over the policy's (per seed, then "
        "averaged over seeds and over the budgets after the start); compute counts 3 per sample-gradient and 1 "
        "per forward-only pass. The headline baseline is `reset-tuned`; `reset` keeps the CAL paper's rule.", "",
        *headline_table(results), "",
        *(entry_section(*result) for result in results), END,
    ])


def replace_section(path: Path, body: str) -> None:
    """Put ``body`` in place of the generated section of ``path`` (appended when there is none)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + body + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    path.write_text(text)


def publish(out: Path, results_dir: Path | None, benchmarks_md: Path | None) -> list[str]:
    """Copy the results and, for a whole cpu suite, rewrite the section; returns what was done."""
    manifest, results = read_bench(out)
    done = []
    if results_dir is not None:
        results = [(n, r, s, copy_results(reports, results_dir / n)) for n, r, s, reports in results]
        done.append(f"copied {len(results)} entries' reports to {results_dir}")
    if benchmarks_md is None:
        return done
    missing = [n for n in manifest["suite_entries"] if n not in manifest["entries"]]
    if manifest["suite"] != "cpu" or missing:
        why = f"missing {', '.join(missing)}" if missing else f"the {manifest['suite']} suite has no section"
        done.append(f"{benchmarks_md} left as it is ({why}; only a whole cpu suite rewrites it)")
        return done
    step2 = f"python benchmarks/publish.py {out}" + (f" --results {results_dir}" if results_dir else "")
    replace_section(benchmarks_md, generated_section(manifest, results, f"`{manifest['command']}`, then `{step2}`"))
    done.append(f"{benchmarks_md} updated")
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/publish.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the --out folder of `calkit bench`")
    parser.add_argument("--results", type=Path, default=None,
                        help="copy each entry's report, summary and plots here and link them from BENCHMARKS.md")
    parser.add_argument("--benchmarks-md", type=Path, default=Path("BENCHMARKS.md"),
                        help="markdown file whose generated section is rewritten [BENCHMARKS.md]")
    parser.add_argument("--no-md", action="store_true", help="only copy the results")
    args = parser.parse_args(argv)
    try:
        for line in publish(args.out, args.results, None if args.no_md else args.benchmarks_md):
            print(line)
    except PublishError as exc:
        print(f"publish: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
