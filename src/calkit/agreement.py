"""How much annotators agree, and what the answers say once each annotator's reliability is known.

Every function takes ``answers``: item id -> {annotator name -> class index}. An item needs two
answers before it says anything about agreement, so the agreement statistics leave items with
fewer answers out (each function says where); an item with an empty mapping counts as absent.
Annotators and items are always visited in sorted order, so every result is deterministic.
Plain numpy on purpose: these numbers go into reports, and the definitions are short enough to
own rather than pull in krippendorff, statsmodels or crowd-kit (the tests check against them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

import numpy as np

Answers = Mapping[int, Mapping[str, int]]

#: Pseudo-count added to every confusion cell and class prior in the Dawid-Skene M-step, so a
#: class an annotator never gave (or nobody gave) keeps a small probability instead of log(0).
SMOOTHING = 0.01


def _items(answers: Answers) -> list[int]:
    return sorted(i for i, row in answers.items() if row)


def _annotators(answers: Answers) -> list[str]:
    return sorted({name for row in answers.values() for name in row})


def _table(answers: Answers, items: Sequence[int], n_classes: int | None = None) -> np.ndarray:
    """Votes per class, one row per item; raises ValueError for a class outside 0..n_classes-1."""
    labels = [[int(v) for v in answers[i].values()] for i in items]
    flat = [v for row in labels for v in row]
    if flat and (min(flat) < 0 or (n_classes is not None and max(flat) >= n_classes)):
        raise ValueError(f"class index out of range: {min(flat)}..{max(flat)}")
    width = n_classes if n_classes is not None else max(flat, default=-1) + 1
    return np.array([np.bincount(row, minlength=width) for row in labels], dtype=np.int64).reshape(len(items), width)


def krippendorff_alpha(answers: Answers) -> float | None:
    """Nominal Krippendorff's alpha, 1 - (n-1) sum_{c!=k} o_ck / sum_{c!=k} n_c n_k.

    Uses the coincidence matrix, which is why missing answers are fine; items with one answer are
    unpairable and dropped. None when no item is pairable or every pairable answer is the same
    class (expected disagreement 0): show "n/a (no variation)" then, not 1.0 or 0.0.
    """
    table = _table(answers, [i for i in _items(answers) if len(answers[i]) >= 2])
    m = table.sum(1)
    observed = float(((m * m - (table * table).sum(1)) / np.maximum(m - 1, 1)).sum())  # sum_{c!=k} o_ck
    totals = table.sum(0)
    n, expected = int(totals.sum()), int(totals.sum()) ** 2 - int(totals @ totals)
    if n < 2 or expected == 0:
        return None
    return float(1.0 - (n - 1) * observed / expected)


def fleiss_kappa(answers: Answers) -> float | None:
    """Fleiss' kappa on the items answered by every annotator who answered anything.

    Fleiss assumes the same number of raters per item, so the other items are left out. None with
    fewer than 2 annotators or no such item, or when every answer is the same class.
    """
    m = len(_annotators(answers))
    table = _table(answers, [i for i in _items(answers) if len(answers[i]) == m]).astype(float)
    if m < 2 or not table.size:
        return None
    p_item = ((table * table).sum(1) - m) / (m * (m - 1))
    p_class = table.sum(0) / table.sum()
    p_chance = float(p_class @ p_class)
    if p_chance >= 1.0:
        return None
    return float((p_item.mean() - p_chance) / (1.0 - p_chance))


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Cohen's kappa of two raters on the same items, in exact integer counts.

    None when undefined: no items, or both raters always give one and the same class (chance
    agreement 1; sklearn returns nan there).
    """
    if len(a) != len(b):
        raise ValueError(f"rater sequences differ in length: {len(a)} != {len(b)}")
    if (n := len(a)) == 0:
        return None
    x, y = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    width = int(max(x.max(), y.max())) + 1
    chance = int(np.bincount(x, minlength=width) @ np.bincount(y, minlength=width))
    if chance == n * n:
        return None
    return float((n * int((x == y).sum()) - chance) / (n * n - chance))


@dataclass(frozen=True)
class PairAgreement:
    """Agreement of two annotators on the items both answered (items 0: agreement, kappa None)."""

    annotator_a: str
    annotator_b: str
    items: int
    agreement: float | None
    kappa: float | None


def pairwise(answers: Answers) -> list[PairAgreement]:
    """Every pair of annotators (sorted) who answered at least one item in common.

    Pairs come from the items, not from all pairs of annotators: the cost grows with the
    answers per item, not with the square of the number of annotators (an import that names
    thousands of people must not stall the lead's page)."""
    shared: dict[tuple[str, str], list[int]] = {}
    for item in _items(answers):
        for a, b in combinations(sorted(answers[item]), 2):
            shared.setdefault((a, b), []).append(item)
    out = []
    for (a, b), items in sorted(shared.items()):
        xa, xb = [answers[i][a] for i in items], [answers[i][b] for i in items]
        agree = sum(p == q for p, q in zip(xa, xb, strict=True)) / len(items)
        out.append(PairAgreement(a, b, len(items), agree, cohen_kappa(xa, xb)))
    return out


def raw_agreement(answers: Answers) -> float | None:
    """Share of agreeing annotator pairs over all items; an item with m answers weighs m(m-1)/2.

    Items with one answer have no pair and so no weight. None when there is no pair at all.
    """
    table = _table(answers, _items(answers))
    m = table.sum(1)
    pairs = int((m * (m - 1)).sum()) // 2
    return int((table * (table - 1)).sum()) // 2 / pairs if pairs else None


def disputed(answers: Answers) -> list[int]:
    """Items whose answers are not all the same class, in item order (one answer: not disputed)."""
    return [i for i in _items(answers) if len(set(answers[i].values())) > 1]


@dataclass(frozen=True)
class AgreementSummary:
    """The agreement numbers a report shows for one set of answers."""

    items: int
    annotators: int
    alpha: float | None
    fleiss: float | None
    raw: float | None
    pairs: list[PairAgreement]
    disputed: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pairs": [asdict(p) for p in self.pairs]}


def summary(answers: Answers, n_classes: int) -> AgreementSummary:
    """All agreement statistics at once; raises ValueError for a class outside 0..n_classes-1."""
    _table(answers, _items(answers), n_classes)
    return AgreementSummary(len(_items(answers)), len(_annotators(answers)), krippendorff_alpha(answers),
                            fleiss_kappa(answers), raw_agreement(answers), pairwise(answers), disputed(answers))


def confusion_against(answers: Answers, reference: Mapping[int, int], n_classes: int) -> dict[str, np.ndarray]:
    """Per annotator, counts of (reference class row, own answer column) on items with a reference."""
    out = {name: np.zeros((n_classes, n_classes), dtype=np.int64) for name in _annotators(answers)}
    for item in _items(answers):
        if item in reference:
            for name, label in answers[item].items():
                out[name][int(reference[item]), int(label)] += 1
    return out


@dataclass
class DawidSkene:
    """Estimated true labels, their posteriors, and each annotator's confusion (rows = true class)."""

    labels: dict[int, int]
    posterior: dict[int, np.ndarray]
    confusion: dict[str, np.ndarray]
    priors: np.ndarray
    iterations: int


def _m_step(post: np.ndarray, obs: tuple[np.ndarray, ...], n_workers: int) -> tuple[np.ndarray, np.ndarray]:
    """Class priors and row-normalised confusions from the current posteriors, smoothed."""
    item, worker, label = obs
    k = post.shape[1]
    counts = np.full((n_workers, k, k), SMOOTHING)  # [worker, given label, true class]
    np.add.at(counts, (worker, label), post[item])
    conf = counts.transpose(0, 2, 1)  # [worker, true class, given label]
    priors = (post.sum(0) + SMOOTHING) / (post.shape[0] + k * SMOOTHING)
    return priors, conf / conf.sum(2, keepdims=True)


def _e_step(priors: np.ndarray, conf: np.ndarray, obs: tuple[np.ndarray, ...], n_items: int) -> np.ndarray:
    """Posterior over true classes per item, computed in log space."""
    item, worker, label = obs
    log_post = np.tile(np.log(priors), (n_items, 1))
    np.add.at(log_post, item, np.log(conf[worker, :, label]))
    post = np.exp(log_post - log_post.max(1, keepdims=True))
    return post / post.sum(1, keepdims=True)


def dawid_skene(answers: Answers, n_classes: int, max_iter: int = 100, tol: float = 1e-6) -> DawidSkene:
    """Dawid & Skene (1979) EM: weigh each annotator by an estimated confusion matrix.

    Starts from per-item vote shares (majority vote) and stops once no posterior moves by more
    than ``tol``. Every answered item gets a posterior, single answers included; ties in the
    final posterior go to the lowest class index.
    """
    if max_iter < 1:
        raise ValueError("max_iter must be at least 1")
    items, workers = _items(answers), _annotators(answers)
    if not items:
        return DawidSkene({}, {}, {}, np.full(n_classes, 1.0 / n_classes), 0)
    w_index = {w: j for j, w in enumerate(workers)}
    triples = [(i, w_index[w], int(answers[it][w])) for i, it in enumerate(items) for w in sorted(answers[it])]
    obs = tuple(np.array(col, dtype=int) for col in zip(*triples, strict=True))
    post = _table(answers, items, n_classes).astype(float)
    post /= post.sum(1, keepdims=True)
    for iteration in range(1, max_iter + 1):
        priors, conf = _m_step(post, obs, len(workers))
        new = _e_step(priors, conf, obs, len(items))
        moved, post = float(np.abs(new - post).max()), new
        if moved < tol:
            break
    return DawidSkene(labels={it: int(np.argmax(post[i])) for i, it in enumerate(items)},
                      posterior={it: post[i] for i, it in enumerate(items)},
                      confusion={w: conf[j] for j, w in enumerate(workers)}, priors=priors, iterations=iteration)
