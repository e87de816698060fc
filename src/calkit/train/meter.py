"""Counts the compute behind every number calkit reports.

Wall seconds depend on the machine; optimizer steps, sample-gradients (one per item per
backward pass) and forward samples do not, so comparisons quote both. ``compute`` adds the two
kinds of work in forward-pass equivalents: a sample-gradient (forward and backward) costs about
three forward passes, and a forward-only pass (scoring the pool, MIR's and SDS2's candidates,
stored targets) one.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

PHASES = ("train", "score", "select", "evaluate")


@dataclass
class ComputeMeter:
    optimizer_steps: int = 0
    sample_gradients: int = 0
    forward_samples: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Adds the wall time of the ``with`` body to ``seconds[name]``."""
        if name not in self.seconds:
            raise ValueError(f"unknown phase {name!r}; phases are {PHASES}")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def count_step(self, n_gradients: int, extra_forward: int = 0) -> None:
        """One optimizer step whose gradients covered ``n_gradients`` samples (each also a forward)."""
        self.optimizer_steps += 1
        self.sample_gradients += n_gradients
        self.forward_samples += n_gradients + extra_forward

    @property
    def forward_only_samples(self) -> int:
        """Forward passes that were not part of a sample-gradient (``forward_samples`` counts both)."""
        return self.forward_samples - self.sample_gradients

    @property
    def compute(self) -> int:
        """3 x sample-gradients + forward-only samples, in forward-pass equivalents."""
        return 3 * self.sample_gradients + self.forward_only_samples

    def add(self, other: "ComputeMeter") -> None:
        self.optimizer_steps += other.optimizer_steps
        self.sample_gradients += other.sample_gradients
        self.forward_samples += other.forward_samples
        for k, v in other.seconds.items():
            self.seconds[k] = self.seconds.get(k, 0.0) + v

    def to_dict(self) -> dict:
        return {
            "optimizer_steps": self.optimizer_steps,
            "sample_gradients": self.sample_gradients,
            "forward_samples": self.forward_samples,
            "seconds": dict(self.seconds),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ComputeMeter":
        seconds = dict.fromkeys(PHASES, 0.0)
        seconds.update(d.get("seconds", {}))
        return cls(int(d["optimizer_steps"]), int(d["sample_gradients"]), int(d["forward_samples"]), seconds)
