"""Classic uncertainty sampling: score each item from its predicted class probabilities."""

from __future__ import annotations

import numpy as np

from calkit.acquisition.base import ScoreBased
from calkit.entropy import entropy


class Entropy(ScoreBased):
    """Predictive entropy H(f(x)); the CAL paper's main acquisition function."""

    name = "entropy"

    def score(self, probs: np.ndarray) -> np.ndarray:
        return entropy(probs)


class Margin(ScoreBased):
    """Small gap between the two most likely classes = informative; scored as minus the gap."""

    name = "margin"

    def score(self, probs: np.ndarray) -> np.ndarray:
        top2 = np.partition(probs, -2, axis=1)[:, -2:]
        return -(top2[:, 1] - top2[:, 0])


class LeastConfidence(ScoreBased):
    """One minus the probability of the predicted class."""

    name = "least_confidence"

    def score(self, probs: np.ndarray) -> np.ndarray:
        return 1.0 - probs.max(axis=1)
