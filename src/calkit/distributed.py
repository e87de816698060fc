"""Several processes, one run: what a rank is, and the few collectives calkit uses.

A run goes distributed when it is launched by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``): :func:`init_from_environment` joins the
process group, gloo on CPU and NCCL on GPUs. Everything else asks :func:`current` and behaves as a
single process when there is one rank, so the one-process path has no distributed code in it.

The rules every distributed part follows:

- Rank 0 alone writes (the ledger, checkpoints, metrics, reports). It decides anything read from
  them and sends the answer to the others (:meth:`Ranks.on_main`), so no rank reads a file while
  another writes it, and an error on rank 0 is raised on every rank instead of leaving the others
  waiting for ever.
- Every rank draws the same random numbers for the same choices (the per-phase seeds), so they
  agree on every step and every selection without sending them.
"""

from __future__ import annotations

import datetime
import os
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from calkit.errors import CalkitError, ConfigError

T = TypeVar("T")

#: How long a rank waits for the others at a collective before giving up, unless
#: CALKIT_COLLECTIVE_TIMEOUT_MIN says otherwise. A dead peer ends the job sooner (torchrun stops
#: every rank when one fails); a wait this long is rank 0 alone reading a huge pool (the NaN check
#: and fingerprint of a pool of terabytes take a pass over it each) while the others wait.
DEFAULT_TIMEOUT_MIN = 120


def timeout() -> datetime.timedelta:
    text = os.environ.get("CALKIT_COLLECTIVE_TIMEOUT_MIN", str(DEFAULT_TIMEOUT_MIN))
    try:
        minutes = float(text)
    except ValueError:
        raise ConfigError(f"CALKIT_COLLECTIVE_TIMEOUT_MIN={text!r} is not a number of minutes") from None
    if not minutes > 0:
        raise ConfigError(f"CALKIT_COLLECTIVE_TIMEOUT_MIN must be positive, got {text}")
    return datetime.timedelta(minutes=minutes)


class RemoteError(CalkitError):
    """An error raised on rank 0 while the other ranks waited for its answer."""


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job (one rank of one when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def device(self, name: str) -> torch.device:
        """The device of this rank: ``cuda`` becomes this rank's own GPU (``cuda:LOCAL_RANK``)."""
        device = torch.device(name)
        if self.distributed and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank)
        return device

    # -- collectives (no-ops on one rank) -------------------------------------------------------
    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank."""
        if not self.distributed:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value``, in rank order, on every rank."""
        if not self.distributed:
            return [value]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over ranks (a new tensor on every rank)."""
        if not self.distributed:
            return values
        total = values.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def broadcast_tensors(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite these tensors with rank 0's, in place."""
        if self.distributed:
            for tensor in tensors:
                dist.broadcast(tensor, src=0)

    def on_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on rank 0 only; its result, or its error, reaches every rank.

        While ``fn`` runs, :func:`current` says one rank: rank 0 works alone, so what ``fn`` opens
        (a run, say) makes no collective call the other ranks would not join.
        """
        if not self.distributed:
            return fn()
        outcome: tuple[bool, Any] = (True, None)
        if self.is_main:
            try:
                with _alone():
                    outcome = (True, fn())
            except BaseException as exc:  # noqa: BLE001 - sent to the other ranks, then raised here
                outcome = (False, exc)
        ok, value = self.broadcast(_picklable(outcome))
        if ok:
            return value
        if self.is_main:
            raise outcome[1]
        value.from_rank0 = True  # rank 0 reports it; the others need not say it again
        raise value

    # -- splitting work ----------------------------------------------------------------------------
    def shard(self, n: int, unit: int = 1) -> np.ndarray:
        """This rank's positions of ``n`` items: a contiguous share, in whole ``unit``-sized blocks.

        Blocks keep batch boundaries where a single process has them, so a scoring batch holds the
        same items (and gives the same numbers) whatever the number of ranks.
        """
        blocks = -(-n // unit)
        first, last = blocks * self.rank // self.world, blocks * (self.rank + 1) // self.world
        return np.arange(first * unit, min(last * unit, n))

    def split(self, items: np.ndarray) -> np.ndarray:
        """This rank's share of ``items`` (as even as it gets; ranks past the end get none)."""
        return np.array_split(items, self.world)[self.rank] if self.distributed else items


def _picklable(outcome: tuple[bool, Any]) -> tuple[bool, Any]:
    """An error that does not travel (pickle and unpickle) travels as a RemoteError with its message."""
    ok, value = outcome
    if ok:
        return outcome
    try:
        pickle.loads(pickle.dumps(value))
        return outcome
    except Exception:  # noqa: BLE001
        return False, RemoteError(f"on rank 0: {type(value).__name__}: {value}")


_current = Ranks()


@contextmanager
def _alone() -> Iterator[None]:
    global _current
    saved, _current = _current, Ranks()
    try:
        yield
    finally:
        _current = saved


def current() -> Ranks:
    """The ranks of this job (one rank unless :func:`init_from_environment` joined a group)."""
    return _current


def launched_by_torchrun() -> bool:
    """Whether the environment describes a job of several processes (torchrun sets WORLD_SIZE)."""
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(text) > 1
    except ValueError:
        raise ConfigError(f"WORLD_SIZE={text!r} is not a number of processes; launch with torchrun") from None


def init_from_environment(device: str = "cpu") -> Ranks:
    """Join the process group torchrun describes in the environment (once); one rank without it.

    gloo for CPU runs, NCCL for CUDA ones. Each rank of a CUDA run uses the GPU of its local rank.
    """
    global _current
    if not launched_by_torchrun() or _current.distributed:
        return _current
    try:
        rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"WORLD_SIZE is set but the torchrun environment is incomplete ({exc}); launch "
                          "with torchrun --nproc-per-node N -m calkit ...") from None
    cuda = torch.device(device).type == "cuda"
    if cuda:
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        try:
            dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world, timeout=timeout())
        except ValueError as exc:  # MASTER_ADDR or MASTER_PORT missing
            raise ConfigError(f"cannot join the job's process group ({exc}); launch with torchrun") from None
    _current = Ranks(rank, world, local)
    return _current


def shutdown() -> None:
    """Leave the process group (at the end of a command), so the ranks exit together."""
    global _current
    if dist.is_initialized():
        dist.destroy_process_group()
    _current = Ranks()
