"""Predictive entropy, the one definition every part of calkit uses.

Acquisition scores it on float64 probabilities (numpy), sds2 weighs replay candidates by it and
every round stores it for the test items (both torch, float32). One formula keeps the three from
drifting apart; each input keeps its own library and precision, so no number changes.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

#: Floor of the probabilities inside the log: exact zeros contribute 0 instead of NaN.
EPS = 1e-12

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def entropy(probs: Array) -> Array:
    """H(p) = -sum_c p_c log p_c for each row of class probabilities (numpy or torch alike)."""
    log = torch.log if isinstance(probs, torch.Tensor) else np.log
    return -(probs * log(probs.clip(EPS, 1.0))).sum(1)


def predictive_entropy(logits: torch.Tensor) -> np.ndarray:
    """Entropy of the softmax of ``logits``, as float32 numpy (computed in float32)."""
    return entropy(torch.softmax(logits.float(), dim=1)).cpu().numpy().astype(np.float32)
