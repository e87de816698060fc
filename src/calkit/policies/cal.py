"""`cal`: calkit's recommended Continual Active Learning configuration.

The scaled-distillation loss (sd) with the settings measured best so far: m' = 2m replayed
items per step (64 new + 128 replayed at the default batch size, the paper's Fashion-MNIST
setting), 20 epochs over the new batch per round, no learning-rate scaling. On Fashion-MNIST
(MLP, ten rounds of 1,000, three seeds) that matched standard AL's accuracy with 4.7x fewer
sample-gradients (BENCHMARKS.md). It is its own policy so that tuning it never changes `sd`.
"""

from __future__ import annotations

from calkit.policies.sd import ScaledDistillationPolicy


class CalPolicy(ScaledDistillationPolicy):
    name = "cal"
    default_replay_ratio = 2.0
    default_epochs = 20  #: the cap of the new-items rule
    default_new_accuracy = 0.99
    default_lr_scaling = False
