"""How a round continues training: the part that differs between standard AL and CAL.

A policy decides two things only: which items form each optimizer step, and the loss on them.
The :class:`~calkit.train.trainer.Trainer` owns the loop, the optimizer, devices and the compute
meter. Replay policies keep per-item state (for example stored targets) in ``state_dict`` so
that ``calkit resume`` restores it with the round checkpoint.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from calkit.tensors import DeviceData


@dataclass(frozen=True)
class RoundData:
    """The labeled items of round ``index``: the new batch D_t and the history L_{t-1}."""

    index: int
    new_ids: np.ndarray
    history_ids: np.ndarray

    @property
    def labeled_ids(self) -> np.ndarray:
        return np.concatenate([self.history_ids, self.new_ids])

    @property
    def new_fraction(self) -> float:
        """lambda_t = |D_t| / |L_t|, the weight CAL's sd loss gives the new batch."""
        return len(self.new_ids) / (len(self.new_ids) + len(self.history_ids))


@dataclass(frozen=True)
class Step:
    """The items of one optimizer step: the first ``n_new`` are new, the rest replayed."""

    ids: np.ndarray
    n_new: int


@dataclass
class StepOutput:
    """A step's loss plus what the trainer needs for accounting and stopping rules."""

    loss: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor
    extra_forward: int = 0


class Policy(ABC):
    """Base class of every retraining policy."""

    name: ClassVar[str]
    #: True for standard AL: fresh weights and a fresh optimizer every round.
    reinitialize: ClassVar[bool] = False

    @abstractmethod
    def epoch_steps(self, rnd: RoundData, rng: np.random.Generator, batch_size: int) -> Iterator[Step]:
        """The steps of one epoch of round ``rnd``."""

    def loss(self, model: nn.Module, step: Step, data: DeviceData, rnd: RoundData) -> StepOutput:
        """Plain cross-entropy over every item of the step."""
        x, y = data.features(step.ids), data.labels(step.ids)
        logits = model(x)
        return StepOutput(F.cross_entropy(logits, y), logits, y)

    def end_round(self, model: nn.Module, rnd: RoundData, data: DeviceData) -> None:
        """Hook after training a round (stored targets are computed here)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def minibatches(ids: np.ndarray, rng: np.random.Generator, batch_size: int) -> Iterator[np.ndarray]:
    """A seeded shuffle of ``ids`` cut into consecutive batches (the last may be short)."""
    order = ids[rng.permutation(len(ids))]
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
