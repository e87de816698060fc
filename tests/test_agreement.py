"""Agreement statistics and the Dawid-Skene label model: hand-worked cases, edge cases, and
cross-checks against the reference packages (skipped where a package is not installed)."""

from __future__ import annotations

import numpy as np
import pytest

from calkit.agreement import (
    PairAgreement,
    cohen_kappa,
    confusion_against,
    dawid_skene,
    disputed,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise,
    raw_agreement,
    summary,
)

SEEDS = range(6)


def random_answers(seed: int, n_items: int = 40, missing: float = 0.25):
    """Answers of 2-5 annotators on 3-10 classes, each right with probability 0.6, some missing
    (so some items have one answer or none)."""
    rng = np.random.default_rng(seed)
    n_annotators, n_classes = int(rng.integers(2, 6)), int(rng.integers(3, 11))
    truth = rng.integers(0, n_classes, n_items)
    answers = {}
    for item in range(n_items):
        row = {}
        for a in range(n_annotators):
            if rng.random() >= missing:
                row[f"w{a}"] = int(truth[item] if rng.random() < 0.6 else rng.integers(0, n_classes))
        answers[item] = row
    return answers, [f"w{a}" for a in range(n_annotators)], n_classes


def simulate(seed: int, n_items: int, n_classes: int, noise: list[float]):
    """Every annotator answers every item; annotator j gives a uniform random class with
    probability noise[j] (1.0: a spammer), otherwise the true class."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    answers = {}
    for item in range(n_items):
        answers[item] = {f"w{j}": int(rng.integers(0, n_classes) if rng.random() < p else truth[item])
                         for j, p in enumerate(noise)}
    return answers, truth


def majority(answers, n_classes):
    return {i: int(np.argmax(np.bincount(list(row.values()), minlength=n_classes)))
            for i, row in answers.items()}


# Two annotators on three items, plus an item only "a" answered (it must change nothing):
#   item 0: a=0 b=0, item 1: a=0 b=1, item 2: a=1 b=1, item 3: a=2.
# Alpha: coincidences o_00 = 2, o_01 = o_10 = 1, o_11 = 2, so n_0 = n_1 = 3, n = 6 and
#   alpha = 1 - (n-1) * (o_01 + o_10) / (2 n_0 n_1) = 1 - 5*2/18 = 4/9.
# Fleiss on items 0-2 pools the raters' marginals: P_i = 1, 0, 1 so P = 2/3; p_0 = p_1 = 3/6, P_e = 1/2;
#   kappa = (2/3 - 1/2) / (1 - 1/2) = 1/3.
# Cohen keeps each rater's marginals: a gives (2/3, 1/3), b (1/3, 2/3), so p_e = 2/9 + 2/9 = 4/9 and
#   kappa = (2/3 - 4/9) / (1 - 4/9) = 2/5.
# Raw: 2 of the 3 pairs agree.
SMALL = {0: {"a": 0, "b": 0}, 1: {"a": 0, "b": 1}, 2: {"b": 1, "a": 1}, 3: {"a": 2}}


def test_small_table_by_hand():
    assert krippendorff_alpha(SMALL) == pytest.approx(4 / 9)
    assert fleiss_kappa(SMALL) == pytest.approx(1 / 3)
    assert cohen_kappa([0, 0, 1], [0, 1, 1]) == pytest.approx(2 / 5)
    assert raw_agreement(SMALL) == pytest.approx(2 / 3)
    assert pairwise(SMALL) == [PairAgreement("a", "b", 3, pytest.approx(2 / 3), pytest.approx(2 / 5))]
    assert disputed(SMALL) == [1]


def test_alpha_with_a_missing_answer_by_hand():
    # Units {0,0,0}, {0,1}, {1,1,1}: o_00 = 3*2/2 = 3, o_01 = o_10 = 1, o_11 = 3; n_0 = n_1 = 4, n = 8;
    # alpha = 1 - 7*2/(2*4*4) = 9/16.
    answers = {0: {"a": 0, "b": 0, "c": 0}, 1: {"a": 0, "b": 1}, 2: {"a": 1, "b": 1, "c": 1}}
    assert krippendorff_alpha(answers) == pytest.approx(9 / 16)
    # Fleiss only sees items 0 and 2, both unanimous, with both classes used: kappa 1.
    assert fleiss_kappa(answers) == pytest.approx(1.0)
    assert raw_agreement(answers) == pytest.approx(6 / 7)  # 3 + 0 + 3 agreeing of 3 + 1 + 3 pairs


def test_perfect_agreement():
    answers = {i: {"a": i % 3, "b": i % 3, "c": i % 3} for i in range(9)}
    assert krippendorff_alpha(answers) == 1.0
    assert fleiss_kappa(answers) == pytest.approx(1.0)
    assert raw_agreement(answers) == 1.0
    assert disputed(answers) == []
    assert all(p.kappa == pytest.approx(1.0) and p.agreement == 1.0 for p in pairwise(answers))


def test_undefined_cases_return_none():
    constant = {i: {"a": 2, "b": 2} for i in range(4)}
    assert krippendorff_alpha(constant) is None  # no variation: expected disagreement 0
    assert fleiss_kappa(constant) is None
    assert cohen_kappa([2, 2, 2], [2, 2, 2]) is None
    assert cohen_kappa([], []) is None
    assert cohen_kappa([0, 0], [1, 1]) == 0.0  # both constant but different classes: defined
    assert pairwise(constant)[0].kappa is None
    assert raw_agreement(constant) == 1.0
    apart = {0: {"a": 0}, 1: {"b": 1}}  # nobody overlaps
    assert krippendorff_alpha(apart) is None and fleiss_kappa(apart) is None and raw_agreement(apart) is None
    assert pairwise(apart) == []  # pairs come from shared items only
    with pytest.raises(ValueError):
        cohen_kappa([0, 1], [0])


def test_edge_cases():
    assert summary({}, 3).to_dict() == {"items": 0, "annotators": 0, "alpha": None, "fleiss": None, "raw": None,
                                        "pairs": [], "disputed": []}
    single_annotator = {i: {"a": i % 2} for i in range(5)}
    s = summary(single_annotator, 2)
    assert (s.items, s.annotators, s.alpha, s.fleiss, s.raw, s.pairs, s.disputed) == (5, 1, None, None, None, [], [])
    one_item = {7: {"a": 0, "b": 1}}
    assert krippendorff_alpha(one_item) == pytest.approx(0.0)  # n=2: 1 - 1*2/2
    assert fleiss_kappa(one_item) == pytest.approx(-1.0)
    assert disputed(one_item) == [7]
    with_single = {0: {"a": 0, "b": 0}, 1: {"a": 1, "b": 1}, 2: {"a": 1}, 3: {}}
    assert krippendorff_alpha(with_single) == 1.0
    assert summary(with_single, 2).items == 3  # the empty item counts as absent
    with pytest.raises(ValueError):
        summary({0: {"a": 3}}, 3)


def test_summary_to_dict_and_order_independence():
    answers, _, n_classes = random_answers(0)
    shuffled = {i: dict(reversed(list(answers[i].items()))) for i in reversed(list(answers))}
    d = summary(answers, n_classes).to_dict()
    assert d == summary(shuffled, n_classes).to_dict()
    assert set(d) == {"items", "annotators", "alpha", "fleiss", "raw", "pairs", "disputed"}
    assert d["pairs"][0].keys() == {"annotator_a", "annotator_b", "items", "agreement", "kappa"}
    assert d["disputed"] == sorted(d["disputed"])


def test_confusion_against_reference():
    answers = {0: {"a": 0, "b": 1}, 1: {"a": 1, "b": 1}, 2: {"a": 2}, 3: {"b": 0}}
    conf = confusion_against(answers, {0: 0, 1: 1, 2: 2, 9: 1}, 3)
    assert conf["a"].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert conf["b"].tolist() == [[0, 1, 0], [0, 1, 0], [0, 0, 0]]  # item 3 has no reference


@pytest.mark.parametrize("seed", SEEDS)
def test_alpha_matches_krippendorff(seed):
    krippendorff = pytest.importorskip("krippendorff")
    answers, annotators, _ = random_answers(seed)
    data = np.array([[answers[i].get(a, np.nan) for i in sorted(answers)] for a in annotators], dtype=float)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert krippendorff_alpha(answers) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_fleiss_matches_statsmodels(seed):
    inter_rater = pytest.importorskip("statsmodels.stats.inter_rater")
    answers, annotators, _ = random_answers(seed, n_items=60, missing=0.1)
    complete = [[answers[i][a] for a in annotators] for i in sorted(answers) if len(answers[i]) == len(annotators)]
    assert complete, "the seed should leave some items answered by everyone"
    table, _ = inter_rater.aggregate_raters(np.array(complete))
    assert fleiss_kappa(answers) == pytest.approx(inter_rater.fleiss_kappa(table, method="fleiss"), abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_cohen_matches_sklearn(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    answers, _, _ = random_answers(seed)
    for pair in pairwise(answers):
        shared = [i for i in sorted(answers) if pair.annotator_a in answers[i] and pair.annotator_b in answers[i]]
        a = [answers[i][pair.annotator_a] for i in shared]
        b = [answers[i][pair.annotator_b] for i in shared]
        assert pair.items == len(shared)
        assert pair.kappa == pytest.approx(metrics.cohen_kappa_score(a, b), abs=1e-10)


def test_dawid_skene_agrees_with_crowdkit():
    pd = pytest.importorskip("pandas")
    aggregation = pytest.importorskip("crowdkit.aggregation")
    answers, _ = simulate(3, n_items=200, n_classes=4, noise=[0.2, 0.3, 0.3, 0.5, 1.0])
    df = pd.DataFrame([(i, w, label) for i, row in answers.items() for w, label in row.items()],
                      columns=["task", "worker", "label"])
    theirs = aggregation.DawidSkene(n_iter=100).fit_predict(df)
    ours = dawid_skene(answers, 4).labels
    # Not exact equality: crowd-kit starts from the same majority vote but has no smoothing, stops
    # on its evidence lower bound and breaks ties its own way, so a few doubtful items may differ.
    same = np.mean([ours[i] == theirs[i] for i in answers])
    assert same >= 0.95


def test_dawid_skene_sees_through_a_spammer():
    # Two good annotators (noise 0.1) and a spammer. Where the good two disagree neither DS nor
    # majority vote can tell who is right, so per seed DS beats majority vote only on average
    # (on about 7 seeds in 20 it loses a few items); hence accuracy pooled over five seeds.
    ds_right = mv_right = 0
    for seed in range(5):
        answers, truth = simulate(seed, n_items=300, n_classes=4, noise=[0.1, 0.1, 1.0])
        result = dawid_skene(answers, 4)
        ds_right += sum(result.labels[i] == truth[i] for i in answers)
        mv_right += sum(label == truth[i] for i, label in majority(answers, 4).items())
        spammer = np.diag(result.confusion["w2"])
        assert abs(spammer.mean() - 0.25) < 0.1 and spammer.max() < 0.5  # flat: right at chance rate
        assert np.diag(result.confusion["w0"]).min() > 0.8 and np.diag(result.confusion["w1"]).min() > 0.8
        assert 1 <= result.iterations <= 100
        assert np.allclose([m.sum(1) for m in result.confusion.values()], 1.0)
        assert result.priors.sum() == pytest.approx(1.0)
    assert ds_right >= mv_right and ds_right > 0.9 * 5 * 300


def test_dawid_skene_edge_cases():
    empty = dawid_skene({}, 3)
    assert (empty.labels, empty.posterior, empty.confusion, empty.iterations) == ({}, {}, {}, 0)
    assert empty.priors.shape == (3,)
    # "late" answered one item, classes 3 and 4 are never used, item 2 has a single answer.
    answers = {0: {"a": 0, "b": 0, "late": 1}, 1: {"a": 1, "b": 1}, 2: {"b": 2}, 3: {"a": 2, "b": 2}}
    result = dawid_skene(answers, 5)
    assert result.labels == {0: 0, 1: 1, 2: 2, 3: 2}
    for p in [*result.posterior.values(), result.priors, *result.confusion.values()]:
        assert np.all(np.isfinite(p)) and np.all(p > 0)
    assert result.posterior[2].sum() == pytest.approx(1.0)
    assert set(result.confusion) == {"a", "b", "late"}
    single = dawid_skene({5: {"a": 1}}, 2)
    assert single.labels == {5: 1}
    # A perfectly symmetric tie goes to the lowest class, whatever the input order.
    assert dawid_skene({0: {"a": 1, "b": 0}}, 2).labels == {0: 0}
    assert dawid_skene({0: {"b": 0, "a": 1}}, 2).labels == {0: 0}
    with pytest.raises(ValueError):
        dawid_skene({0: {"a": 5}}, 3)
