"""`cal`: calkit's recommended Continual Active Learning configuration.

The scaled-distillation loss (sd) with settings tuned on the benchmark suite: m' = m replayed
items per step (half of every step is replay), 15 epochs over the new batch per round, and the
learning rate scaled by (m + m') / m. Every setting can still be overridden; `sd` keeps the
paper's plain defaults.
"""

from __future__ import annotations

from calkit.policies.sd import ScaledDistillationPolicy


class CalPolicy(ScaledDistillationPolicy):
    name = "cal"
    default_replay_ratio = 1.0
    default_epochs = 15
    default_lr_scaling = True
