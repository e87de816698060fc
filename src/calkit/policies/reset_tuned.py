"""`reset-tuned`: standard active learning with the settings that measured best on validation data.

The baseline every headline number of calkit is measured against. Reset is offered everything
that makes sense for retraining from scratch (learning-rate schedule, epoch cap, the accuracy
threshold of the CAL paper's rule) and tuned over a grid as large as the one `cal` was tuned
over, on the validation splits of the tuning datasets only, ties going to the cheaper setting
(BENCHMARKS.md, "Tuning the baseline"; `python benchmarks/frontier.py --arm reset`).
`reset` keeps the CAL paper's rule (99 % running training accuracy, cap 50, constant rate).
"""

from __future__ import annotations

from calkit.policies.reset import ResetPolicy


class TunedResetPolicy(ResetPolicy):
    name = "reset-tuned"
    default_schedule = "cosine"
    default_train_accuracy = 0.99
    default_max_epochs = 20
