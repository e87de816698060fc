"""Training: the loop, stopping rules and the compute meter."""

from calkit.train.meter import PHASES, ComputeMeter
from calkit.train.stopping import FixedEpochs, StopRule, TrainAccuracy
from calkit.train.trainer import OPTIMIZERS, FitSummary, OptimizerConfig, Trainer

__all__ = [
    "OPTIMIZERS",
    "PHASES",
    "ComputeMeter",
    "FitSummary",
    "FixedEpochs",
    "OptimizerConfig",
    "StopRule",
    "TrainAccuracy",
    "Trainer",
]
