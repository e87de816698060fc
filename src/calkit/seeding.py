"""Per-round, per-phase seeds.

Every random decision of round t (initial set, weight init, batch order, dropout, tie-breaks)
draws from a generator seeded by (run seed, t, phase). A run resumed after a crash therefore
repeats exactly what the uninterrupted run would have done, whatever was lost in between.
"""

from __future__ import annotations

import random

import numpy as np
import torch

PHASES = {"initial": 1, "init": 2, "train": 3, "select": 4, "subset": 5, "anneal": 6, "label-noise": 7}


def derive_seed(seed: int, round_index: int, phase: str) -> int:
    return int(np.random.SeedSequence([seed, round_index, PHASES[phase]]).generate_state(1)[0])


def numpy_rng(seed: int, round_index: int, phase: str) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, round_index, phase))


def seed_torch(seed: int, round_index: int, phase: str) -> None:
    torch.manual_seed(derive_seed(seed, round_index, phase))


def rng_states() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
