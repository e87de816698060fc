"""Extension in one file: registering policies and acquisition functions, in code and as installed
plugins found through entry points, and the contract checks they must pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from calkit import Run
from calkit.acquisition import ACQUISITIONS, Acquisition, Selection, register_acquisition
from calkit.errors import ConfigError
from calkit.policies import POLICIES, register_policy
from calkit.policies.er import ExperienceReplayPolicy
from calkit.testing import blobs, check_acquisition, check_policy

PLUGIN = '''
from dataclasses import dataclass

import numpy as np
from calkit.acquisition import Acquisition, Selection
from calkit.options import option
from calkit.policies.er import ExperienceReplayPolicy


@dataclass(frozen=True)
class HalfReplayOptions:
    smoothing: float = option(0.0, "label smoothing of the replay loss")


class HalfReplay(ExperienceReplayPolicy):
    """Experience replay with m' = m / 2 and an optional label smoothing."""

    name = "half-replay"
    default_replay_ratio = 0.5
    Options = HalfReplayOptions

    def loss(self, step, ctx):
        import torch.nn.functional as F
        out = super().loss(step, ctx)
        out.loss = F.cross_entropy(out.logits, out.labels, label_smoothing=self.settings.smoothing)
        return out


class LowestId(Acquisition):
    """Deterministic and useless: the k smallest ids."""

    name = "lowest-id"

    def _select(self, ctx, candidates, k):
        picked = np.sort(candidates)[:k]
        return Selection(picked, -picked.astype(float))
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "calkit-tiny-plugin"
version = "0.1"

[project.entry-points."calkit.policies"]
half-replay = "calkit_tiny_plugin:HalfReplay"

[project.entry-points."calkit.acquisitions"]
lowest-id = "calkit_tiny_plugin:LowestId"
'''


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """The plugin package built and installed (pip, no network) into a folder; returns the
    environment that puts it on the path, as `pip install` into a venv would."""
    root = tmp_path_factory.mktemp("plugin")
    (root / "pkg" / "calkit_tiny_plugin").mkdir(parents=True)
    (root / "pkg" / "pyproject.toml").write_text(PYPROJECT)
    (root / "pkg" / "calkit_tiny_plugin" / "__init__.py").write_text(PLUGIN)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(root / "site"), str(root / "pkg")], check=True, capture_output=True, timeout=300)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "site"), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.slow
def test_an_installed_plugin_runs_from_the_command_line_and_passes_the_contract(installed_plugin, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "calkit", "run", "--dataset", "digits", "--policy", "half-replay", "--acquisition",
           "lowest-id", "--half-replay-smoothing", "0.1", "--model", "mlp:32", "--initial", "50", "--round-size", "30", "--rounds", "3", "--epochs", "2",
           "--out", str(out), "--quiet"]
    done = subprocess.run(cmd, env=installed_plugin, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["policy"], r["acquisition"]) for r in records[1:]] == [("half-replay", "lowest-id")] * 2
    written = (out / "config.yaml").read_text()
    assert "replay_ratio: 0.5" in written  # the plugin's default, written out
    assert "policy_settings:\n  smoothing: 0.1" in written  # its own setting, from its derived flag
    help_text = subprocess.run([sys.executable, "-m", "calkit", "run", "--help"], env=installed_plugin,
                               capture_output=True, text=True, timeout=120).stdout
    assert "half-replay" in help_text and "lowest-id" in help_text  # choices come from the registries
    assert "--half-replay-smoothing" in help_text
    check = ("from calkit.testing import check_policy, check_acquisition\n"
             "from calkit.policies import POLICIES\nfrom calkit.acquisition import make_acquisition\n"
             "check_policy(POLICIES['half-replay']); check_acquisition(make_acquisition('lowest-id')); print('ok')")
    done = subprocess.run([sys.executable, "-c", check], env=installed_plugin, capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.strip() == "ok", done.stderr


class QuarterReplay(ExperienceReplayPolicy):
    name = "quarter-replay"
    default_replay_ratio = 0.25


def test_register_policy_in_code_and_run_it_by_name(tmp_path):
    register_policy(QuarterReplay, replace=True)
    try:
        run = Run.create(tmp_path / "run", dataset=blobs(), policy="Quarter-Replay", model="mlp:16", initial=30,
                         round_size=20, rounds=2, epochs=1)
        assert run.advance().complete
        assert run.config.policy == "quarter-replay" and run.config.replay_ratio == 0.25
        run.close()
        with pytest.raises(ConfigError, match="already registered"):
            register_policy(type("Other", (ExperienceReplayPolicy,), {"name": "quarter-replay"}))
    finally:
        POLICIES._loaded().pop("quarter-replay", None)


def test_registration_refuses_what_is_not_a_policy_or_takes_a_presets_name():
    with pytest.raises(ConfigError, match="subclass"):
        register_policy(object)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="preset"):
        register_policy(type("Cal", (ExperienceReplayPolicy,), {"name": "cal"}))
    with pytest.raises(ConfigError, match="subclass"):
        register_acquisition(QuarterReplay)  # type: ignore[arg-type]


class FirstCandidates(Acquisition):
    name = "first-candidates"

    def _select(self, ctx, candidates, k):
        return Selection(candidates[:k], np.zeros(k))


def test_an_acquisition_object_is_accepted_without_registering(tmp_path):
    run = Run.create(tmp_path / "run", dataset=blobs(), acquisition=FirstCandidates(), model="mlp:16", initial=30,
                     round_size=20, rounds=2, epochs=1)
    assert run.advance().complete
    assert run.metrics()[-1]["acquisition"] == "first-candidates"
    run.close()
    check_acquisition(FirstCandidates())
    assert "first-candidates" not in ACQUISITIONS


def test_the_contract_catches_a_policy_that_replays_new_items():
    class Leaky(ExperienceReplayPolicy):
        name = "leaky"

        def choose_replay(self, new, m_rep, ctx):
            step = super().choose_replay(new, m_rep, ctx)
            return type(step)(np.concatenate([new, ctx.rnd.new_ids[:m_rep]]), len(new))

    with pytest.raises(AssertionError, match="leaky: .*(twice|history)"):
        check_policy(Leaky)


def test_the_contract_catches_an_acquisition_that_ignores_its_seed():
    class Restless(Acquisition):
        name = "restless"

        def _select(self, ctx, candidates, k):
            picked = np.random.default_rng().permutation(candidates)[:k]  # unseeded
            return Selection(picked, np.zeros(k))

    with pytest.raises(AssertionError, match="same seed"):
        check_acquisition(Restless())


def test_plugin_docs_example_is_what_the_readme_shows():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    assert '[project.entry-points."calkit.policies"]' in readme and "calkit.testing" in readme


def test_a_broken_plugin_is_left_out_of_listings_and_named_when_asked_for(tmp_path):
    """One plugin that fails to load must not take the command line down with it."""
    site = tmp_path / "site"
    (site / "broken-0.1.dist-info").mkdir(parents=True)
    (site / "broken-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (site / "broken-0.1.dist-info" / "entry_points.txt").write_text("[calkit.policies]\nbroken = no_such_module:X\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    listing = subprocess.run([sys.executable, "-m", "calkit", "run", "--help"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert listing.returncode == 0 and "reset" in listing.stdout and "broken" not in listing.stdout
    asked = subprocess.run([sys.executable, "-m", "calkit", "run", "--dataset", "digits", "--rounds", "2", "--policy",
                            "broken", "--out", str(tmp_path / "run")], env=env, capture_output=True, text=True,
                           timeout=120)
    assert asked.returncode == 2 and "plugin 'broken'" in asked.stderr and "failed to load" in asked.stderr
    assert not (tmp_path / "run").exists()
