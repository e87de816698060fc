"""Training: the loop, stopping rules and the compute meter."""

from calkit.train.meter import PHASES, ComputeMeter
from calkit.train.stopping import EpochStats, FixedEpochs, LabeledPasses, NewItemsLearned, StopRule, TrainAccuracy
from calkit.train.trainer import OPTIMIZERS, FitSummary, OptimizerConfig, Trainer

__all__ = [
    "OPTIMIZERS",
    "PHASES",
    "ComputeMeter",
    "EpochStats",
    "FitSummary",
    "FixedEpochs",
    "LabeledPasses",
    "NewItemsLearned",
    "OptimizerConfig",
    "StopRule",
    "TrainAccuracy",
    "Trainer",
]
