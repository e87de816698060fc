"""The loop end to end on tiny data: rounds, metrics, determinism, resume, and bad input."""

from __future__ import annotations


import numpy as np
import yaml
import pytest

from calkit import ActiveLoop, RunConfig
from calkit.errors import ConfigError, LedgerError
from calkit.ledger import Ledger
from tests.conftest import make_blobs
from tests.helpers import comparable, labeled_set, make_legacy, metrics

REQUIRED_FIELDS = {
    "round", "labeled", "test_accuracy", "test_macro_f1", "val_accuracy", "val_macro_f1", "train_seconds",
    "select_seconds", "sample_gradients", "optimizer_steps", "forward_samples", "compute",
}


def small_config(**overrides) -> RunConfig:
    base = dict(dataset="blobs", model="mlp:16", initial=20, round_size=10, rounds=4, epochs=3, batch_size=8)
    base.update(overrides)
    return RunConfig(**base)


def run_to_end(path, **overrides):
    loop = ActiveLoop.create(path, small_config(**overrides), dataset=make_blobs())
    status = loop.run()
    loop.close()
    return status


@pytest.mark.parametrize("policy", ["reset", "warm"])
def test_run_writes_one_metrics_line_per_round(tmp_path, policy):
    status = run_to_end(tmp_path / "run", policy=policy)
    assert status.complete and status.labeled == 50
    records = metrics(tmp_path / "run")
    assert [r["round"] for r in records] == [0, 1, 2, 3]
    assert [r["labeled"] for r in records] == [20, 30, 40, 50]
    for r in records:
        assert REQUIRED_FIELDS <= r.keys()
        assert 0.0 <= r["test_accuracy"] <= 1.0
    grads = [r["sample_gradients"] for r in records]
    assert grads == sorted(grads), "compute fields are cumulative"
    # the shared initial rule in round 0, then fixed 3 epochs over every labeled item (reset and
    # warm both sweep all of L_t)
    assert grads[0] == 20 * records[0]["epochs"] and records[0]["stop_rule"].startswith("until running train")
    assert grads[-1] - grads[0] == 3 * (30 + 40 + 50)
    assert len(list((tmp_path / "run" / "checkpoints").glob("round-*.pt"))) == 4


def test_every_item_labeled_once_and_rounds_follow_the_plan(tmp_path):
    run_to_end(tmp_path / "run", budget="55", rounds=None)
    facts = labeled_set(tmp_path / "run")
    ids = [f[0] for f in facts]
    assert len(ids) == len(set(ids)) == 55
    per_round = np.bincount([f[2] for f in facts])
    assert per_round.tolist() == [20, 10, 10, 10, 5]
    truth = make_blobs()
    assert all(truth.y_train[truth.positions(np.array([i]))[0]] == y for i, y, _ in facts)


def test_same_seed_same_labels_and_numbers(tmp_path):
    run_to_end(tmp_path / "a", seed=3)
    run_to_end(tmp_path / "b", seed=3)
    run_to_end(tmp_path / "c", seed=4)
    assert labeled_set(tmp_path / "a") == labeled_set(tmp_path / "b")
    assert comparable(metrics(tmp_path / "a")) == comparable(metrics(tmp_path / "b"))
    assert labeled_set(tmp_path / "a") != labeled_set(tmp_path / "c")


def test_entropy_picks_items_the_model_is_unsure_of(tmp_path):
    run_to_end(tmp_path / "run", acquisition="entropy")
    ledger = Ledger.open(tmp_path / "run" / "ledger.sqlite")
    query = ledger.query(2)
    ledger.close()
    assert query.acquisition == "entropy"
    assert np.all(np.diff(query.scores) <= 0), "ranked by decreasing entropy"


@pytest.mark.parametrize("policy", ["reset", "warm"])
def test_resume_after_partial_run_matches_uninterrupted(tmp_path, policy):
    run_to_end(tmp_path / "full", policy=policy)
    # a run stopped after two rounds: same config, stopped early by a smaller plan is not the
    # same run, so stop it by hand after the second checkpoint instead
    loop = ActiveLoop.create(tmp_path / "part", small_config(policy=policy), dataset=make_blobs())
    loop.plan = loop.plan[:2]
    loop.run()
    loop.close()
    assert len(metrics(tmp_path / "part")) == 2
    resumed = ActiveLoop.open(tmp_path / "part", dataset=make_blobs())
    assert resumed.run().complete
    resumed.close()
    assert labeled_set(tmp_path / "part") == labeled_set(tmp_path / "full")
    assert comparable(metrics(tmp_path / "part")) == comparable(metrics(tmp_path / "full"))


def test_resume_of_a_finished_run_does_nothing(tmp_path):
    run_to_end(tmp_path / "run")
    before = labeled_set(tmp_path / "run"), metrics(tmp_path / "run")
    loop = ActiveLoop.open(tmp_path / "run", dataset=make_blobs())
    assert loop.run().complete
    loop.close()
    assert (labeled_set(tmp_path / "run"), metrics(tmp_path / "run")) == before


def test_resume_refuses_other_data(tmp_path):
    run_to_end(tmp_path / "run")
    with pytest.raises(LedgerError, match="differs"):
        ActiveLoop.open(tmp_path / "run", dataset=make_blobs(seed=9))


def test_create_refuses_an_existing_run(tmp_path):
    run_to_end(tmp_path / "run")
    with pytest.raises(LedgerError, match="calkit resume"):
        ActiveLoop.create(tmp_path / "run", small_config(), dataset=make_blobs())


def test_keep_last_checkpoint_only(tmp_path):
    run_to_end(tmp_path / "run", keep_checkpoints="last")
    assert [p.name for p in (tmp_path / "run" / "checkpoints").glob("*.pt")] == ["round-0003.pt"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(budget="500", rounds=None), "larger than the pool"),
        (dict(initial=300), "larger than the pool"),
        (dict(policy="nope"), "unknown policy"),
        (dict(acquisition="nope"), "unknown acquisition"),
        (dict(model="resnet"), "unknown model"),
        (dict(device="cuda:0"), "cuda"),
        (dict(rounds=None, budget=None), "--rounds, --budget"),
    ],
)
def test_bad_input_fails_before_any_work(tmp_path, overrides, message):
    with pytest.raises((ConfigError, LedgerError), match=message):
        ActiveLoop.create(tmp_path / "run", small_config(**overrides), dataset=make_blobs())
    assert not (tmp_path / "run").exists(), "nothing is written for a rejected run"


def test_unlabeled_pool_cannot_be_simulated(tmp_path):
    ds = make_blobs()
    unlabeled = type(ds)(name="u", x_train=ds.x_train, y_train=None, class_names=ds.class_names, ids=ds.ids)
    with pytest.raises(ConfigError, match="oracle 'people'"):
        ActiveLoop.create(tmp_path / "run", small_config(), dataset=unlabeled)


def test_run_without_test_split_reports_no_accuracy(tmp_path):
    ds = make_blobs()
    no_test = type(ds)(name="n", x_train=ds.x_train, y_train=ds.y_train, class_names=ds.class_names, ids=ds.ids)
    loop = ActiveLoop.create(tmp_path / "run", small_config(rounds=2), dataset=no_test)
    assert loop.run().complete
    loop.close()
    assert all(r["test_accuracy"] is None for r in metrics(tmp_path / "run"))


def test_custom_model_factory(tmp_path):
    import torch.nn as nn

    def factory() -> nn.Module:
        return nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))

    loop = ActiveLoop.create(tmp_path / "run", small_config(rounds=2, epochs=20), dataset=make_blobs(), model_factory=factory)
    assert loop.run().complete
    loop.close()
    assert metrics(tmp_path / "run")[-1]["test_accuracy"] > 0.5


# -- candidate subsampling for acquisition ---------------------------------------------------


def test_score_subset_is_a_seeded_subset_of_the_requested_size():
    from calkit.loop import score_subset

    pool = np.arange(100, 400, 3)
    a = score_subset(pool, 10, 4, np.random.default_rng(1))
    assert len(a) == 40 and len(set(a)) == 40 and set(a) <= set(pool)
    assert np.array_equal(a, score_subset(pool, 10, 4, np.random.default_rng(1)))
    assert not np.array_equal(a, score_subset(pool, 10, 4, np.random.default_rng(2)))
    assert score_subset(pool, 10, None, np.random.default_rng(1)) is pool
    assert score_subset(pool, 50, 4, np.random.default_rng(1)) is pool  # asking for more than there is


def test_score_multiple_scores_only_the_subset(tmp_path):
    """Each acquisition round runs inference on multiple x round size items, not the whole pool."""
    run_to_end(tmp_path / "sub", score_multiple=2)
    run_to_end(tmp_path / "all")
    sub, full = Ledger.open(tmp_path / "sub" / "ledger.sqlite"), Ledger.open(tmp_path / "all" / "ledger.sqlite")
    try:
        assert [sub.query(t).cost["forward_samples"] for t in (1, 2, 3)] == [20, 20, 20]
        assert all(full.query(t).cost["forward_samples"] > 20 for t in (1, 2, 3))
    finally:
        sub.close()
        full.close()


def test_score_multiple_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="score-multiple"):
        small_config(score_multiple=0).validate()


def _retune_cal(monkeypatch) -> None:
    """As if an upgrade retuned cal and changed the shared initial rule."""
    import calkit.resolve
    from calkit.policies.presets import PRESETS, Preset

    cal = PRESETS["cal"]
    changed = {**cal.settings, "labeled_passes": cal.settings["labeled_passes"] + 1, "shrink": 1.0, "replay_ratio": 2.0}
    monkeypatch.setitem(PRESETS, "cal", Preset(cal.name, cal.policy, changed))
    monkeypatch.setattr(calkit.resolve, "DEFAULT_INITIAL_ACCURACY", 0.5)


def test_a_run_made_before_a_change_of_defaults_keeps_its_own_values(tmp_path, monkeypatch):
    """config.yaml holds every resolved default, so a resumed run ends exactly as if nothing changed."""
    cfg = RunConfig(dataset="blobs", model="mlp:16", policy="cal", initial=20, round_size=10, rounds=3, lr=0.01,
                    batch_size=8)
    whole = ActiveLoop.create(tmp_path / "whole", cfg, dataset=make_blobs())
    assert whole.run().complete
    whole.close()
    part = ActiveLoop.create(tmp_path / "r", cfg, dataset=make_blobs())
    part.plan = part.plan[:2]
    part.run()
    part.close()
    written = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert written["resolved"] is True and written["labeled_passes"] == 2.0 and written["shrink"] == 0.9
    assert written["replay_ratio"] == 1.0 and written["initial_accuracy"] == 0.99 and written["schedule"] == "cosine"
    _retune_cal(monkeypatch)
    resumed = ActiveLoop.open(tmp_path / "r", dataset=make_blobs())
    assert resumed.run().complete
    resumed.close()
    assert comparable(metrics(tmp_path / "r")) == comparable(metrics(tmp_path / "whole"))
    assert labeled_set(tmp_path / "r") == labeled_set(tmp_path / "whole")
    fresh = ActiveLoop.create(tmp_path / "new", cfg, dataset=make_blobs())  # a new run gets the new values
    assert fresh.cfg.labeled_passes == 3.0 and fresh.cfg.initial_accuracy == 0.5
    fresh.close()


def _legacy_cal_run_two_rounds_in(path) -> dict:
    """A cal run of three rounds stopped after two, made to look as calkit 0.2 wrote it; returns
    its (unresolved) settings."""
    cfg = RunConfig(dataset="blobs", model="mlp:16", policy="cal", initial=20, round_size=10, rounds=3, lr=0.01,
                    batch_size=8)
    part = ActiveLoop.create(path, cfg, dataset=make_blobs())
    part.plan = part.plan[:2]
    part.run()
    part.close()
    legacy = {**cfg.to_dict(), "resolved": False}
    make_legacy(path, legacy)
    return legacy


def test_resume_refuses_a_legacy_run_whose_defaults_changed(tmp_path, monkeypatch):
    """A config.yaml from calkit 0.2 left defaults unset: they resolve with this calkit's values,
    so resume checks them against the rules its rounds recorded; config.yaml pins them."""
    legacy = _legacy_cal_run_two_rounds_in(tmp_path / "r")
    config = tmp_path / "r" / "config.yaml"
    _retune_cal(monkeypatch)
    resumed = ActiveLoop.open(tmp_path / "r", dataset=make_blobs())
    with pytest.raises(ConfigError, match="trained with '2 passes.*now '3 passes"):
        resumed.run()
    resumed.close()
    legacy.update(labeled_passes=2.0, shrink=0.9, replay_ratio=1.0)
    config.write_text(yaml.safe_dump(legacy, sort_keys=False))
    pinned = ActiveLoop.open(tmp_path / "r", dataset=make_blobs())
    assert pinned.run().complete
    pinned.close()
    assert len({r["stop_rule"] for r in metrics(tmp_path / "r")[1:]}) == 1  # every later round under the same rule


def test_a_legacy_config_may_pin_a_default_only_to_the_value_it_had(tmp_path):
    legacy = _legacy_cal_run_two_rounds_in(tmp_path / "r")
    config = tmp_path / "r" / "config.yaml"
    config.write_text(yaml.safe_dump({**legacy, "alpha": 5.0}, sort_keys=False))
    with pytest.raises(ConfigError, match="alpha: 0.5 at creation, 5.0 now"):
        ActiveLoop.open(tmp_path / "r", dataset=make_blobs())
    config.write_text(yaml.safe_dump({**legacy, "alpha": 0.5}, sort_keys=False))  # pinning what it was: fine
    ActiveLoop.open(tmp_path / "r", dataset=make_blobs()).close()
