"""Simulated annotators who make mistakes: the noise models, and runs with several annotators."""

from __future__ import annotations

import numpy as np
import pytest

from calkit import Run
from calkit.errors import ConfigError
from calkit.noise import NoiseModel
from tests.conftest import make_blobs

QUICK = dict(initial=30, round_size=15, rounds=3, epochs=1, model="mlp:8", seed=4)


@pytest.mark.parametrize("kind", ["uniform", "pairs"])
def test_noise_flips_about_its_rate_and_only_to_other_classes(kind):
    truth = np.arange(20000) % 5
    given, flipped = NoiseModel(kind, 0.2).answers(truth, np.arange(20000), 20000, 5, seed=1)
    assert abs(flipped.mean() - 0.2) < 0.01
    assert np.all(given[flipped] != truth[flipped]) and np.all(given[~flipped] == truth[~flipped])
    if kind == "pairs":  # one fixed wrong class per class, never itself, every class used once
        partner = {int(t): int(g) for t, g in zip(truth[flipped], given[flipped])}
        assert len(partner) == 5 and sorted(partner.values()) == list(range(5))
        assert len({(int(t), int(g)) for t, g in zip(truth[flipped], given[flipped])}) == 5


def test_an_items_answer_does_not_depend_on_when_it_is_asked():
    truth = np.arange(100) % 3
    first, _ = NoiseModel("uniform", 0.5).answers(truth, np.arange(100), 100, 3, seed=2)
    some, _ = NoiseModel("uniform", 0.5).answers(truth[[7, 3]], np.array([7, 3]), 100, 3, seed=2)
    assert some.tolist() == [first[7], first[3]]


@pytest.mark.parametrize("bad", [dict(label_noise=1.0), dict(label_noise=-0.1), dict(noise_model="x"),
                                 dict(annotators=0), dict(oracle="people", annotators=2),
                                 dict(oracle="people", label_noise=0.1)])
def test_bad_noise_settings_are_refused(tmp_path, bad):
    with pytest.raises(ConfigError):
        Run.create(tmp_path / "run", dataset=make_blobs(), **{**QUICK, **bad})
    assert not (tmp_path / "run").exists()


def test_a_noisy_run_with_three_annotators(tmp_path):
    ds = make_blobs()
    run = Run.create(tmp_path / "run", dataset=ds, annotators=3, label_noise=0.3, noise_model="pairs", **QUICK)
    run.advance()
    facts = run._ledger.label_facts()
    assert {f["annotator"] for f in facts} == {"sim-0", "sim-1", "sim-2"} and len(facts) == 60
    truth = {int(i): int(y) for i, y in zip(ds.ids, ds.y_train)}
    wrong = sum(f["label"] != truth[f["item_id"]] for f in facts)
    assert 5 <= wrong <= 35  # about 30 % of 60
    run.close()
