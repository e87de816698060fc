"""Stored targets for distillation: one logit vector per labeled item, keyed by its global id.

Each item's target is written once, at the end of the round in which it was labeled, from the
model in eval mode without augmentation, and never overwritten. (The CAL reference code kept
one tensor for all rounds and overwrote it, so old items were distilled toward other items'
outputs; here an id can hold exactly one target, and writing it twice is an error.)
"""

from __future__ import annotations

import numpy as np
import torch


class StoredTargets:
    def __init__(self) -> None:
        self._ids = np.empty(0, dtype=np.int64)  # sorted
        self._logits: torch.Tensor | None = None  # rows aligned with _ids

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def __contains__(self, item_id: int) -> bool:
        pos = np.searchsorted(self._ids, item_id)
        return bool(pos < len(self._ids) and self._ids[pos] == item_id)

    def add(self, ids: np.ndarray, logits: torch.Tensor) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(np.unique(ids)) != len(ids) or np.isin(ids, self._ids).any():
            raise ValueError("a stored target is written once per item; these ids already have one")
        logits = logits.detach().float()
        merged_ids = np.concatenate([self._ids, ids])
        order = np.argsort(merged_ids, kind="stable")
        rows = logits if self._logits is None else torch.cat([self._logits.to(logits.device), logits])
        self._ids = merged_ids[order]
        self._logits = rows[torch.as_tensor(order, device=rows.device)]

    def get(self, ids: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
        """Targets of these ids, in order (KeyError if any has none), on ``device``.

        The store moves to the device once, on first use there (after a resume it loads on the CPU).
        """
        if self._logits is not None and device is not None and self._logits.device != torch.device(device):
            self._logits = self._logits.to(device)
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self._ids, ids)
        pos = np.clip(pos, 0, max(len(self._ids) - 1, 0))
        if self._logits is None or (self._ids[pos] != ids).any():
            raise KeyError("no stored target for some replayed items")
        return self._logits[torch.as_tensor(pos, device=self._logits.device)]

    def state_dict(self) -> dict:
        return {"ids": self._ids.copy(), "logits": None if self._logits is None else self._logits.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self._ids = np.asarray(state["ids"], dtype=np.int64)
        self._logits = state["logits"]
