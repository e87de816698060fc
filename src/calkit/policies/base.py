"""How a round continues training: the part that differs between standard AL and CAL.

A policy decides two things only: which items form each optimizer step, and the loss on them.
The :class:`~calkit.train.trainer.Trainer` owns the loop, the optimizer, devices and the compute
meter. Replay policies keep per-item state (for example stored targets) in ``state_dict`` so
that ``calkit resume`` restores it with the round checkpoint.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from calkit.tensors import PoolData

if TYPE_CHECKING:
    from calkit.distributed import Ranks


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
    def has_history(self) -> bool:
        """False in the initial round: nothing was learned before it, so nothing to continue or replay."""
        return len(self.history_ids) > 0

    @property
    def new_fraction(self) -> float:
        """lambda_t = |D_t| / |L_t|, the weight CAL's sd loss gives the new batch."""
        total = len(self.new_ids) + len(self.history_ids)
        return len(self.new_ids) / total if total else 1.0


@dataclass
class RoundContext:
    """What a policy may use while training one round.

    ``model`` is the network itself, for extra forward passes (choosing replay, stored targets);
    a loss calls :meth:`forward`, which goes through DistributedDataParallel when the round
    trains on several processes, so that the gradients are averaged over them.
    """

    rnd: RoundData
    model: nn.Module
    optimizer: torch.optim.Optimizer | None
    data: PoolData
    rng: np.random.Generator
    batch_size: int
    train_forward: nn.Module | None = None  #: the model wrapped for distributed training, if it is

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training forward pass of a loss."""
        return (self.train_forward or self.model)(x)


@dataclass(frozen=True)
class Shard:
    """One rank's share of a step trained on several processes.

    DistributedDataParallel averages the ranks' gradients, so a mean over a part of the step is
    the rank's sum over its rows of that part times ``world / total``: averaged over the ranks,
    that is the mean over the whole step's part, however unevenly the rows fell.
    """

    world: int
    new_total: int
    replay_total: int

    def weight(self, part: str) -> float:
        total = {"new": self.new_total, "replay": self.replay_total, "all": self.new_total + self.replay_total}[part]
        return self.world / max(total, 1)


@dataclass(frozen=True)
class Step:
    """The items of one optimizer step: the first ``n_new`` are new, the rest replayed.

    ``extra_gradients`` and ``extra_forward`` count work spent choosing the step (MIR's virtual
    update, SDS2's candidate scoring), so the compute meter stays honest.
    """

    ids: np.ndarray
    n_new: int
    extra_gradients: int = 0
    extra_forward: int = 0
    shard: Shard | None = None  #: set on a rank's share of a step (several processes)

    @property
    def new_ids(self) -> np.ndarray:
        return self.ids[: self.n_new]

    @property
    def replay_ids(self) -> np.ndarray:
        return self.ids[self.n_new :]

    @property
    def replays(self) -> bool:
        """Whether the whole step (every rank's share together) has replayed items."""
        return (self.shard.replay_total if self.shard is not None else len(self.ids) - self.n_new) > 0

    def share(self, ranks: "Ranks") -> "Step":
        """This rank's rows of the step: its share of the new part and of the replayed part."""
        if not ranks.distributed:
            return self
        new, replay = ranks.split(self.new_ids), ranks.split(self.replay_ids)
        return Step(np.concatenate([new, replay]), len(new),
                    shard=Shard(ranks.world, self.n_new, len(self.ids) - self.n_new))


@dataclass
class StepOutput:
    """A step's loss plus what the trainer needs for accounting and stopping rules."""

    loss: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor


class Policy(ABC):
    """Base class of every retraining policy."""

    name: ClassVar[str]
    #: True for standard AL: fresh weights and a fresh optimizer every round.
    reinitialize: ClassVar[bool] = False
    #: The learning-rate schedule used unless the run names one (calkit.train.schedules).
    default_schedule: ClassVar[str] = "constant"
    #: Standard AL's rule unless the run names one: train until the epoch's running accuracy
    #: reaches this, capped at ``default_max_epochs`` (the CAL paper's baseline: 0.99, cap 50 here).
    default_train_accuracy: ClassVar[float] = 0.99
    default_max_epochs: ClassVar[int] = 50
    #: Shrink and perturb of a kept model before each later round (1.0 and 0.0: off).
    default_shrink: ClassVar[float] = 1.0
    default_perturb: ClassVar[float] = 0.0
    #: A policy's own settings beyond the run's common ones: a dataclass whose fields use
    #: calkit.options.option. The instance gets them as ``self.settings``; `calkit run` offers
    #: each as ``--NAME-FIELD``; a run stores them as ``policy_settings``.
    Options: ClassVar[type | None] = None

    @property
    def settings(self) -> object | None:
        """This policy's own settings: as configured, else its Options' defaults."""
        given = self.__dict__.get("_settings")
        return given if given is not None else (self.Options() if self.Options is not None else None)

    @settings.setter
    def settings(self, value: object | None) -> None:
        self.__dict__["_settings"] = value

    @abstractmethod
    def epoch_steps(self, ctx: RoundContext) -> Iterator[Step]:
        """The steps of one epoch of the round."""

    def loss(self, step: Step, ctx: RoundContext) -> StepOutput:
        """Plain cross-entropy over every item of the step."""
        x, y = ctx.data.train_features(step.ids), ctx.data.labels(step.ids)
        logits = ctx.forward(x)
        return StepOutput(cross_entropy(logits, y, step, "all"), logits, y)

    def steps_per_epoch(self, rnd: RoundData, batch_size: int) -> int:
        """Optimizer steps in one epoch of round ``rnd`` (schedules size their horizon with it)."""
        return -(-len(rnd.labeled_ids) // batch_size)

    def end_round(self, ctx: RoundContext) -> int:
        """Hook after training a round (stored targets are made here); returns forward samples used."""
        return 0

    def lr_multiplier(self, batch_size: int, rnd: RoundData) -> float:
        """Factor applied to the configured learning rate in round ``rnd`` (CAL's optional linear scaling)."""
        return 1.0

    def defaults(self, batch_size: int) -> dict[str, object]:
        """This policy's value for every run setting it reads, by RunConfig field name.

        A run writes these into its config.yaml at creation wherever the user left a setting
        unset, so the run keeps them whatever later versions of the policy choose. Subclasses
        extend the dict with their own settings.
        """
        return {"schedule": self.default_schedule, "shrink": self.default_shrink, "perturb": self.default_perturb}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, step: Step, part: str) -> torch.Tensor:
    """Mean cross-entropy over the rows of one part of a step (``new``, ``replay`` or ``all``),
    weighted by :meth:`Shard.weight` on a rank's share of a step."""
    if step.shard is None:
        return F.cross_entropy(logits, labels)
    return F.cross_entropy(logits, labels, reduction="sum") * step.shard.weight(part)


def minibatches(ids: np.ndarray, rng: np.random.Generator, batch_size: int) -> Iterator[np.ndarray]:
    """A seeded shuffle of ``ids`` cut into consecutive batches (the last may be short)."""
    order = ids[rng.permutation(len(ids))]
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
