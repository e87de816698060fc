"""Run configuration: budget parsing, round planning, validation and YAML round trips."""

from __future__ import annotations

import dataclasses

import pytest

from calkit.config import RunConfig, parse_budget, plan_rounds
from calkit.oracle import ORACLES
from calkit.errors import CalkitError, ConfigError

# --------------------------------------------------------------------------------------------
# parse_budget
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, pool, expected",
    [
        ("6000", 10000, 6000),
        ("6000", None, 6000),
        (" 250 ", 1000, 250),
        (6000, 10000, 6000),
        ("0.1", 1000, 100),
        ("0.1", None, 0.1),
        (".5", 1000, 500),
        ("1.0", 1000, 1000),
        ("1.", 1000, 1000),
        ("10%", 1000, 100),
        ("10 %", 1000, 100),
        ("10%", None, 0.1),
        ("100%", 300, 300),
        ("12.5%", 1000, 125),
        ("0.3", 1000, 300),  # 0.3 * 1000 must not round down to 299
        ("0.7", 10, 7),
        ("1", 5, 1),
    ],
)
def test_parse_budget_accepts(text, pool, expected):
    value = parse_budget(text, pool)
    assert value == pytest.approx(expected)
    if pool is not None:
        assert isinstance(value, int)


def test_parse_budget_count_vs_fraction_kinds():
    assert isinstance(parse_budget("6000", 10000), int)
    assert parse_budget("0.1", 1005) == 100  # floor of 100.5


@pytest.mark.parametrize("text", ["abc", "0", "1.5", "-3", "", "0.0", "0%", "150%", "1e3", "10 items", "5-", "--1"])
def test_parse_budget_rejects(text):
    with pytest.raises(ConfigError):
        parse_budget(text, 1000)


def test_parse_budget_error_names_the_input():
    with pytest.raises(ConfigError, match="abc"):
        parse_budget("abc", None)
    with pytest.raises(ConfigError, match="1.5"):
        parse_budget("1.5", None)


# --------------------------------------------------------------------------------------------
# plan_rounds
# --------------------------------------------------------------------------------------------


def cfg(**kw) -> RunConfig:
    return RunConfig(**kw)


def test_plan_budget_only():
    assert plan_rounds(cfg(initial=100, round_size=100, budget="600"), 10000) == [100] * 6


def test_plan_budget_fraction():
    assert plan_rounds(cfg(initial=50, round_size=25, budget="10%"), 1000) == [50, 25, 25]


def test_plan_rounds_only():
    assert plan_rounds(cfg(initial=100, round_size=100, rounds=3), 10000) == [100, 100, 100]
    assert plan_rounds(cfg(initial=20, round_size=5, rounds=1), 100) == [20]


def test_plan_both_whichever_stops_first():
    # rounds stop first
    assert plan_rounds(cfg(initial=100, round_size=100, rounds=3, budget="600"), 10000) == [100] * 3
    # budget stops first (and trims the last round)
    assert plan_rounds(cfg(initial=100, round_size=100, rounds=10, budget="350"), 10000) == [100, 100, 100, 50]
    # both at once
    assert plan_rounds(cfg(initial=100, round_size=100, rounds=4, budget="400"), 10000) == [100] * 4


def test_plan_budget_not_a_multiple_makes_last_round_smaller():
    plan = plan_rounds(cfg(initial=100, round_size=100, budget="650"), 10000)
    assert plan == [100, 100, 100, 100, 100, 100, 50]
    assert sum(plan) == 650
    plan = plan_rounds(cfg(initial=30, round_size=40, budget="100"), 1000)
    assert plan == [30, 40, 30]


def test_plan_budget_equal_to_initial_is_one_round():
    assert plan_rounds(cfg(initial=100, round_size=50, budget="100"), 1000) == [100]


def test_plan_budget_equal_to_pool():
    assert plan_rounds(cfg(initial=40, round_size=30, budget="100"), 100) == [40, 30, 30]
    assert plan_rounds(cfg(initial=40, round_size=30, budget="100%"), 100) == [40, 30, 30]


def test_plan_sizes_are_positive_and_sum_to_budget():
    for initial, round_size, budget in [(1, 1, "7"), (10, 3, "50"), (5, 100, "99"), (17, 13, "0.5")]:
        plan = plan_rounds(cfg(initial=initial, round_size=round_size, budget=budget), 200)
        assert all(s > 0 for s in plan)
        assert plan[0] == initial
        assert all(s <= round_size for s in plan[1:])
        assert sum(plan) == parse_budget(budget, 200)


def test_plan_budget_larger_than_pool():
    with pytest.raises(ConfigError) as info:
        plan_rounds(cfg(initial=10, round_size=10, budget="600"), 500)
    assert "600" in str(info.value) and "500" in str(info.value)


def test_plan_initial_larger_than_pool():
    with pytest.raises(ConfigError) as info:
        plan_rounds(cfg(initial=700, round_size=10, rounds=2), 500)
    assert "700" in str(info.value) and "500" in str(info.value)


def test_plan_initial_larger_than_budget():
    with pytest.raises(ConfigError) as info:
        plan_rounds(cfg(initial=200, round_size=10, budget="150"), 1000)
    assert "200" in str(info.value) and "150" in str(info.value)


def test_plan_rounds_needing_more_than_the_pool():
    with pytest.raises(ConfigError) as info:
        plan_rounds(cfg(initial=100, round_size=100, rounds=8), 500)
    msg = str(info.value)
    assert "8" in msg and "800" in msg and "500" in msg


def test_plan_rounds_needing_slightly_more_than_the_pool():
    # 3 rounds of 100 need 300 labels; a 250-item pool cannot give the third round its 100.
    with pytest.raises(ConfigError) as info:
        plan_rounds(cfg(initial=100, round_size=100, rounds=3), 250)
    msg = str(info.value)
    assert "300" in msg and "250" in msg


def test_plan_rounds_exactly_fitting_the_pool():
    assert plan_rounds(cfg(initial=100, round_size=100, rounds=3), 300) == [100, 100, 100]


def test_plan_rounds_with_budget_within_pool_trims_instead_of_failing():
    # With a budget the budget is the stop: rounds that would need more just do not happen.
    assert plan_rounds(cfg(initial=100, round_size=100, rounds=8, budget="250"), 500) == [100, 100, 50]


# --------------------------------------------------------------------------------------------
# RunConfig.validate
# --------------------------------------------------------------------------------------------


def test_default_config_needs_a_stop():
    with pytest.raises(ConfigError, match="rounds.*budget|budget.*rounds"):
        RunConfig().validate()


def test_valid_configs_validate_and_return_self():
    c = RunConfig(rounds=3)
    assert c.validate() is c
    RunConfig(budget="10%").validate()
    RunConfig(budget="600", rounds=2, oracle="files", keep_checkpoints="last").validate()
    for oracle in ORACLES:
        RunConfig(rounds=2, oracle=oracle).validate()


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"oracle": "human"}, "oracle"),
        ({"round_size": 0}, "round-size"),
        ({"round_size": -5}, "round-size"),
        ({"round_size": 2.5}, "round-size"),
        ({"round_size": True}, "round-size"),
        ({"initial": 0}, "initial"),
        ({"batch_size": 0}, "batch-size"),
        ({"max_epochs": 0}, "max-epochs"),
        ({"score_batch_size": 0}, "score-batch-size"),
        ({"rounds": 0}, "rounds"),
        ({"rounds": 2.5}, "rounds"),
        ({"budget": "abc"}, "budget"),
        ({"budget": "0"}, "budget"),
        ({"keep_checkpoints": "some"}, "keep-checkpoints"),
        ({"keep_checkpoints": "ALL"}, "keep-checkpoints"),
        ({"test_fraction": 1.0}, "test-fraction"),
        ({"test_fraction": -0.1}, "test-fraction"),
    ],
)
def test_validate_rejects(kwargs, fragment):
    base = {"rounds": 3}
    base.update(kwargs)
    with pytest.raises(ConfigError, match=fragment):
        RunConfig(**base).validate()


def test_validate_bad_oracle_lists_choices():
    with pytest.raises(ConfigError) as info:
        RunConfig(rounds=2, oracle="crowd").validate()
    for oracle in ORACLES:
        assert oracle in str(info.value)


# --------------------------------------------------------------------------------------------
# from_dict / to_dict
# --------------------------------------------------------------------------------------------


def test_from_dict_rejects_unknown_keys_listing_them():
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"rounds": 2, "bogus": 1, "also-bad": 2})
    msg = str(info.value)
    assert "bogus" in msg and "also_bad" in msg
    assert isinstance(info.value, CalkitError)


def test_from_dict_accepts_dashed_keys():
    c = RunConfig.from_dict({"round-size": 25, "keep-checkpoints": "last", "score-batch-size": 128, "rounds": 2})
    assert c.round_size == 25 and c.keep_checkpoints == "last" and c.score_batch_size == 128
    c.validate()


def test_from_dict_empty_and_none_give_defaults():
    assert RunConfig.from_dict({}) == RunConfig()
    assert RunConfig.from_dict(None) == RunConfig()


@pytest.mark.parametrize("budget, expected", [(600, "600"), (0.1, "0.1"), ("10%", "10%")])
def test_from_dict_budget_becomes_text(budget, expected):
    c = RunConfig.from_dict({"budget": budget})
    assert c.budget == expected
    c.validate()


def test_to_dict_has_every_field():
    d = RunConfig(rounds=4).to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(RunConfig)}
    assert RunConfig.from_dict(d) == RunConfig(rounds=4)


# --------------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------------


def test_yaml_round_trip(tmp_path):
    c = RunConfig(
        dataset="blobs", data_dir=str(tmp_path), model="mlp:64-32", dropout=0.25, policy="warm",
        acquisition="margin", initial=20, round_size=10, rounds=5, budget="0.5", seed=7, oracle="files",
        optimizer="sgd", lr=0.05, epochs=3, keep_checkpoints="last",
    )
    path = tmp_path / "run.yaml"
    c.to_yaml(path)
    back = RunConfig.from_yaml(path)
    assert back == c
    back.validate()
    # and the defaults
    RunConfig().to_yaml(path)
    assert RunConfig.from_yaml(str(path)) == RunConfig()


def test_from_yaml_hand_written_with_dashes(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("dataset: blobs\nround-size: 7\nbudget: 60\nkeep-checkpoints: last\n")
    c = RunConfig.from_yaml(path)
    assert c.round_size == 7 and c.budget == "60" and c.keep_checkpoints == "last"
    c.validate()


def test_from_yaml_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert RunConfig.from_yaml(path) == RunConfig()


def test_from_yaml_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml"):
        RunConfig.from_yaml(missing)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_from_yaml_non_mapping(tmp_path, text):
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="mapping"):
        RunConfig.from_yaml(path)


def test_from_yaml_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\nb: }\n")
    with pytest.raises(ConfigError):
        RunConfig.from_yaml(path)


def test_from_yaml_unknown_key(tmp_path):
    path = tmp_path / "unknown.yaml"
    path.write_text("rounds: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        RunConfig.from_yaml(path)
