"""`calkit bench` writes only under --out; `benchmarks/publish.py` (the repository's script) copies
the results and rewrites BENCHMARKS.md's generated section from what the bench recorded.

The suites' comparisons are replaced by one small real comparison, so the summaries have the
real shape while the tests take seconds.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from calkit import RunConfig
from calkit import bench as bench_module
from calkit.cli import main
from calkit.compare import CompareSpec, run_compare
from tests.conftest import make_blobs

PUBLISH = Path(__file__).resolve().parents[1] / "benchmarks" / "publish.py"


@pytest.fixture(scope="module")
def publish():
    spec = importlib.util.spec_from_file_location("publish", PUBLISH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def summary(tmp_path_factory) -> dict:
    """The summary of a real (tiny) comparison: two seeds, so intervals exist."""
    base = RunConfig(dataset="blobs", model="mlp:16", rounds=1, batch_size=8, lr=0.01, max_epochs=4, epochs=None,
                     initial_max_epochs=3)
    spec = CompareSpec(base, ("cal",), seeds=(0, 1), budgets=("20%", "30%", "40%"), setups=("paper",),
                       max_round_size=24)
    return run_compare(spec, tmp_path_factory.mktemp("cmp"), dataset=make_blobs(n_val=60, spread=2.5),
                       log=lambda line: None)


@pytest.fixture
def fake_suite(monkeypatch, summary) -> list[str]:
    """Every suite entry's comparison returns ``summary`` and writes the files a real one would
    (plus a checkpoint, which publishing must not copy); returns the entries run."""
    ran: list[str] = []

    def fake_compare(spec, out, **kw):
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary))
        (out / "report.md").write_text(f"# report of {out.name}\n")
        (out / "paper").mkdir(exist_ok=True)
        (out / "paper" / "round-0001.pt").write_bytes(b"checkpoint")
        ran.append(out.name)
        return summary

    monkeypatch.setattr(bench_module, "run_compare", fake_compare)
    return ran


def bench(out: Path, *extra: str) -> int:
    return main(["bench", "cpu", "--seeds", "100-101", "--out", str(out), *extra])


def test_bench_writes_only_under_out_and_records_the_suite(tmp_path, monkeypatch, fake_suite, capsys):
    monkeypatch.chdir(tmp_path)
    Path("BENCHMARKS.md").write_text("# Benchmarks\n")
    assert bench(Path("b"), "--entries", "pbmc-mlp,digits-mlp") == 0
    assert "python benchmarks/publish.py b" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BENCHMARKS.md", "b"]
    assert Path("BENCHMARKS.md").read_text() == "# Benchmarks\n"
    manifest = json.loads(Path("b/bench.json").read_text())
    assert list(manifest["entries"]) == ["digits-mlp", "pbmc-mlp"]  # suite order
    assert manifest["entries"]["digits-mlp"]["tuning"] and not manifest["entries"]["pbmc-mlp"]["tuning"]
    assert manifest["command"] == "calkit bench cpu --seeds 100-101 --out b" and manifest["seeds"] == [100, 101]
    assert bench(Path("b"), "--entries", "fine-foods-mlp") == 0  # a later partial run adds to the record
    assert list(json.loads(Path("b/bench.json").read_text())["entries"]) == ["digits-mlp", "fine-foods-mlp",
                                                                          "pbmc-mlp"]


def test_bench_no_longer_takes_publishing_flags(tmp_path):
    for flag in (["--publish", str(tmp_path)], ["--benchmarks-md", str(tmp_path / "B.md")]):
        with pytest.raises(SystemExit) as info:
            bench(tmp_path / "b", *flag)
        assert info.value.code == 2


def test_publish_of_a_partial_suite_copies_the_small_files_and_leaves_the_markdown(tmp_path, fake_suite, publish,
                                                                                  capsys):
    assert bench(tmp_path / "b", "--entries", "cells-mlp") == 0
    md = tmp_path / "B.md"
    md.write_text("# Benchmarks\n")
    assert publish.main([str(tmp_path / "b"), "--results", str(tmp_path / "pub"), "--benchmarks-md", str(md)]) == 0
    assert "left as it is (missing digits-mlp" in capsys.readouterr().out and md.read_text() == "# Benchmarks\n"
    assert sorted(p.name for p in (tmp_path / "pub" / "cells-mlp").iterdir()) == ["report.md", "summary.json"]


def test_publish_of_the_whole_suite_rewrites_its_section_in_place(tmp_path, fake_suite, publish):
    out, results = tmp_path / "b", tmp_path / "pub"
    assert bench(out) == 0 and fake_suite == [e.name for e in bench_module.CPU_SUITE]
    md = tmp_path / "B.md"
    md.write_text(f"# Benchmarks\n\nhand-written\n\n{publish.BEGIN}\nold\n{publish.END}\n\n## GPU\nkept\n")
    assert publish.main([str(out), "--results", str(results), "--benchmarks-md", str(md)]) == 0
    text = md.read_text()
    assert "old" not in text and "### digits-mlp (tuning dataset)" in text and "### cells-mlp (evaluation only)" in text
    assert text.count(publish.BEGIN) == 1 and "hand-written" in text and "## GPU\nkept" in text
    assert (f"Regenerate with `calkit bench cpu --seeds 100-101 --out {out}`, then "
            f"`python benchmarks/publish.py {out} --results {results}`") in text  # the two commands, exactly
    assert f"`{results / 'pbmc-mlp'}/report.md`" in text and " cores, PyTorch " in text  # the machine that ran it
    verdict_row = next(line for line in text.splitlines() if line.startswith("| vader-amazon-mlp | evaluation only |"))
    assert ("yes" in verdict_row) != ("**no**" in verdict_row)


def test_publish_needs_a_bench_folder(tmp_path, publish, capsys):
    assert publish.main([str(tmp_path)]) == 2
    assert "calkit bench cpu --out" in capsys.readouterr().err
