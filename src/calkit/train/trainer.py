"""The minibatch loop. It owns the optimizer step and the accounting; policies own the data and loss."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from calkit.distributed import Ranks, current
from calkit.errors import ConfigError
from calkit.policies.base import Policy, RoundContext, RoundData
from calkit.tensors import PoolData
from calkit.train.meter import ComputeMeter
from calkit.train.stopping import EpochStats, StopRule

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class OptimizerConfig:
    """SGD with momentum (the paper's vision runs) or Adam (its text and medical runs)."""

    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.name!r}; choose one of {', '.join(OPTIMIZERS)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"learning rate must be a positive number, got {self.lr}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)) or not 0 <= self.momentum < 1:
            raise ConfigError("weight decay must be >= 0 and momentum in [0, 1)")

    def build(self, model: nn.Module) -> torch.optim.Optimizer:
        if self.name == "sgd":
            return torch.optim.SGD(
                model.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
            )
        return torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)


@dataclass(frozen=True)
class FitSummary:
    epochs: int
    steps: int
    running_accuracy: float
    new_running_accuracy: float


EpochCallback = Callable[[int, int, float], None]
LearningRate = Callable[[int], float]  #: optimizer step within the round -> learning rate


class Trainer:
    """Trains one round: epochs of the policy's steps until the stopping rule fires.

    On several processes (``ranks``) every rank draws the same steps from the same seeded
    generator and trains on its share of each (:meth:`Step.share`) through
    DistributedDataParallel; the stopping rule reads hit counts summed over the ranks, so all
    ranks stop after the same epoch. The compute meter counts whole steps on every rank: the
    work of the job, the same numbers as one process would count.
    """

    def __init__(self, data: PoolData, meter: ComputeMeter, batch_size: int = 64, ranks: Ranks | None = None):
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        self.data = data
        self.meter = meter
        self.batch_size = batch_size
        self.ranks = ranks or current()

    def fit(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        policy: Policy,
        rnd: RoundData,
        stop_rule: StopRule,
        rng: np.random.Generator,
        on_epoch: EpochCallback | None = None,
        lr_at: LearningRate | None = None,
        finish_round: bool = True,
    ) -> FitSummary:
        """Train until ``stop_rule`` fires.

        ``lr_at`` sets the learning rate before every step (a schedule); without it the
        optimizer's rate stays as it is. ``finish_round=False`` skips the policy's end-of-round
        hook, for extra training of a copy (an anneal) after the round itself has finished.
        """
        model.train()
        ctx = RoundContext(rnd, model, optimizer, self.data, rng, self.batch_size, self._wrap(model))
        epochs = steps = 0
        stats = EpochStats(0, 0.0, 0.0)
        with self.meter.phase("train"):
            while True:
                # Hit counts stay on the device until the epoch ends: no host sync per step.
                hits_all = torch.zeros((), dtype=torch.long, device=self.data.device)
                hits_new = torch.zeros((), dtype=torch.long, device=self.data.device)
                seen = new_seen = 0
                for step in policy.epoch_steps(ctx):
                    if lr_at is not None:
                        set_learning_rate(optimizer, lr_at(steps))
                    mine = step.share(self.ranks)
                    with self._own_random_stream(steps):
                        out = policy.loss(mine, ctx)
                    optimizer.zero_grad(set_to_none=True)
                    out.loss.backward()
                    optimizer.step()
                    if self.ranks.distributed:  # BatchNorm statistics: rank 0's, on every rank
                        self.ranks.broadcast_tensors(list(model.buffers()))
                    self.meter.count_step(len(step.ids) + step.extra_gradients, step.extra_forward)
                    steps += 1
                    hits = out.logits.detach().argmax(1) == out.labels
                    hits_all += hits.sum()
                    hits_new += hits[: mine.n_new].sum()
                    seen += hits.numel()
                    new_seen += mine.n_new
                epochs += 1
                if self.ranks.distributed:  # every rank decides on the job's counts, so none trains on alone
                    device = self.data.device
                    counts = torch.stack([hits_all, hits_new, torch.tensor(seen, device=device),
                                          torch.tensor(new_seen, device=device)])
                    hits_all, hits_new, seen, new_seen = (int(c) for c in self.ranks.sum(counts))
                stats = EpochStats(epochs, int(hits_all) / max(seen, 1), int(hits_new) / max(new_seen, 1))
                if on_epoch is not None:
                    on_epoch(epochs, stop_rule.max_epochs, stats.running_accuracy)
                if stop_rule.should_stop(stats):
                    break
        if finish_round:
            self.finish_round(ctx, policy)
        return FitSummary(epochs, steps, stats.running_accuracy, stats.new_accuracy)

    def _own_random_stream(self, step: int):
        """On several processes, a step's loss draws (dropout) from a stream of its rank's own, so
        that each rank's share gets its own masks and torch's main stream, which choosing steps may
        draw from (MIR's virtual step), stays the same on every rank whatever the shares' sizes."""
        if not self.ranks.distributed:
            return nullcontext()
        return _seeded_fork(self.data.device, self._base_seed + 7919 * (self.ranks.rank + 1) + 104729 * step)

    def _wrap(self, model: nn.Module) -> nn.Module | None:
        """The model in DistributedDataParallel on several processes, else None: one process
        trains the model itself."""
        if not self.ranks.distributed:
            return None
        from torch.nn.parallel import DistributedDataParallel

        self._base_seed = torch.initial_seed()
        on_gpu = self.data.device.type == "cuda"
        return DistributedDataParallel(model, device_ids=[self.data.device.index] if on_gpu else None)

    def finish_round(self, ctx: RoundContext, policy: Policy) -> None:
        """The policy's end-of-round hook (stored targets are made here), metered as forward passes."""
        with self.meter.phase("train"):
            self.meter.forward_samples += policy.end_round(ctx)


@contextmanager
def _seeded_fork(device: torch.device, seed: int) -> Iterator[None]:
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed % 2**63)
        yield


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
