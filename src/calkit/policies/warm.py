"""Standard active learning with a warm start: keep the weights, train on every labeled item.

The paper's "AL w/ WS": little speed-up, because each round still sweeps the whole growing set.
"""

from __future__ import annotations

from calkit.policies.reset import ResetPolicy


class WarmPolicy(ResetPolicy):
    name = "warm"
    reinitialize = False
