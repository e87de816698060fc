"""Which labels to check again: confident learning on out-of-sample predictions.

Active learning seems to hand us out-of-sample predictions for free: the model that selected an
item had never trained on it (its probabilities are recomputed exactly from its checkpoint).
Measured, they are poor evidence: uncertainty sampling picks exactly the items that model was
unsure of, and early models are weak (BENCHMARKS.md, "Label-error review"). The default is
therefore cleanlab's recommendation, cross-validation: FOLDS fresh models, each trained on the
other folds of the labeled set under the run's initial-round rule, predict their own fold. The
selecting models' predictions remain available (``selection``, ``ensemble``) for comparison.

Confident learning (Northcutt, Jiang and Chuang, JAIR 2021), in the few lines it takes: a class
j's threshold is the mean probability of j over the items labeled j; an item labeled i whose
probability for some other class j reaches that class's threshold is a suspect, confidently
another class. Suspects come first, least confident in their own label first (self-confidence,
cleanlab's default ranking); then the other items in the same order, so a queue of any length
is defined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


#: Whose predictions rank an item: ``crossval`` (the default: models trained on the other folds
#: of the labeled set), ``selection`` (the model that selected it; the newest for the initial
#: round), ``ensemble`` (that model and every later one, averaged), ``newest`` (in-sample).
PREDICTION_SOURCES = ("crossval", "selection", "ensemble", "newest")


@dataclass(frozen=True)
class Suspect:
    item_id: int
    round: int
    given: int  #: the agreed label
    likely: int  #: the class the predictions favour
    self_confidence: float  #: the predicted probability of the given label
    confident: bool  #: confidently another class (confident learning's off-diagonal)


def rank_suspects(item_ids: np.ndarray, rounds: np.ndarray, given: np.ndarray, probs: np.ndarray) -> list[Suspect]:
    """Every item, most suspect first (see the module's description)."""
    n_classes = probs.shape[1]
    thresholds = np.array([probs[given == j, j].mean() if np.any(given == j) else np.inf for j in range(n_classes)])
    above = probs >= thresholds[None, :]
    above[np.arange(len(given)), given] = False  # confidently *another* class
    masked = np.where(above, probs, -np.inf)
    other = masked.argmax(axis=1)
    confident = np.isfinite(masked.max(axis=1))
    self_conf = probs[np.arange(len(given)), given]
    likely = np.where(confident, other, probs.argmax(axis=1))
    order = np.lexsort((self_conf, ~confident))  # confident suspects first, then by self-confidence
    return [Suspect(int(item_ids[k]), int(rounds[k]), int(given[k]), int(likely[k]), float(self_conf[k]),
                    bool(confident[k])) for k in order]


def selector_round(t: int, lookahead: bool) -> int | None:
    """The trained round whose model chose round ``t``'s items (None for the random initial round)."""
    if t == 0:
        return None
    return t - 2 if lookahead and t >= 2 else t - 1


#: Folds of the cross-validated predictions (``crossval``): each item is predicted by a model
#: trained on the other folds, as cleanlab recommends.
FOLDS = 5


def cross_validated_probabilities(loop, item_ids: np.ndarray, labels: np.ndarray, folds: int = FOLDS) -> np.ndarray:
    """Out-of-sample class probabilities of every labeled item: ``folds`` fresh models, each
    trained under the run's initial-round rule (standard training of fresh weights) on the
    other folds, predicting its own fold. Seeded by the run's seed; the compute goes to the
    run's model factory and device, not to the run's records."""
    import torch

    from calkit.acquisition import ModelScoringContext
    from calkit.policies import make_policy
    from calkit.policies.base import RoundData
    from calkit.rules import initial_rule_for
    from calkit.seeding import numpy_rng, seed_torch
    from calkit.train import ComputeMeter
    from calkit.train.trainer import Trainer

    cfg = loop.cfg
    rng = numpy_rng(cfg.seed, 0, "label-noise")
    fold_of = rng.permutation(len(item_ids)) % folds
    loop.data.set_labels(item_ids, labels)
    plain = make_policy("reset")
    out = np.zeros((len(item_ids), loop.dataset.n_classes))
    for f in range(folds):
        train, held = item_ids[fold_of != f], item_ids[fold_of == f]
        seed_torch(cfg.seed, f, "init")
        model = loop.trainer.model_factory().to(loop.data.device)
        optimizer = cfg.optimizer_config().build(model)
        rule = initial_rule_for(cfg).resolve(RoundData(0, train, np.array([], dtype=np.int64)), 1)
        Trainer(loop.data, ComputeMeter(), cfg.batch_size).fit(
            model, optimizer, plain, RoundData(0, train, np.array([], dtype=np.int64)), rule,
            numpy_rng(cfg.seed, f, "train"))
        with torch.no_grad():
            ctx = ModelScoringContext(model.eval(), loop.data, np.random.default_rng(0), cfg.score_batch_size)
            out[fold_of == f] = ctx.probabilities(held)
    return out
