"""A trained round's record: one line of metrics.jsonl, a row of the ledger's metrics table.

Readers (reports, comparisons, the coming dashboard) take the JSON form; the loop builds it from
this typed form, so a field is named in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from calkit.train import ComputeMeter


@dataclass(frozen=True)
class RoundRecord:
    round: int
    labeled: int  #: items trained on, this round's included
    new: int  #: this round's items
    scores: dict[str, object]  #: val_/test_ accuracy and macro F1, round_item_accuracy
    epochs: int
    epoch_cap: int
    train_running_accuracy: float
    meter: ComputeMeter  #: cumulative compute from the start of the run
    policy: str
    acquisition: str
    rules: dict[str, object] = field(default_factory=dict)  #: stop_rule, schedule, warm_start, lr

    def to_dict(self) -> dict:
        s, m = self.meter.seconds, self.meter
        return {
            "round": self.round,
            "labeled": self.labeled,
            "new": self.new,
            **self.scores,
            "epochs": self.epochs,
            "epoch_cap": self.epoch_cap,
            "train_running_accuracy": self.train_running_accuracy,
            "train_seconds": s["train"],
            "select_seconds": s["score"] + s["select"],  #: the whole acquisition
            "score_seconds": s["score"],  #: its model-inference part
            "evaluate_seconds": s["evaluate"],
            "sample_gradients": m.sample_gradients,
            "optimizer_steps": m.optimizer_steps,
            "forward_samples": m.forward_samples,
            "compute": m.compute,  #: 3 x sample-gradients + forward-only samples
            "policy": self.policy,
            "acquisition": self.acquisition,
            **self.rules,
        }
