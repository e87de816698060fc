"""What to label next. Every strategy implements :class:`Acquisition`."""

from __future__ import annotations

from calkit.acquisition.base import Acquisition, ScoreBased, ScoringContext, Selection
from calkit.acquisition.context import ModelScoringContext
from calkit.acquisition.diverse import Diverse
from calkit.acquisition.random import RandomSampling
from calkit.acquisition.uncertainty import Entropy, LeastConfidence, Margin
from calkit.errors import ConfigError

ACQUISITIONS: dict[str, type[Acquisition]] = {
    cls.name: cls for cls in (RandomSampling, Entropy, Margin, LeastConfidence, Diverse)
}


def make_acquisition(name: str) -> Acquisition:
    """The strategy registered under ``name`` (``least-confidence`` is accepted too)."""
    key = name.strip().lower().replace("-", "_")
    if key not in ACQUISITIONS:
        raise ConfigError(f"unknown acquisition {name!r}; choose one of {', '.join(sorted(ACQUISITIONS))}")
    return ACQUISITIONS[key]()


__all__ = [
    "ACQUISITIONS",
    "Acquisition",
    "Diverse",
    "Entropy",
    "LeastConfidence",
    "Margin",
    "ModelScoringContext",
    "RandomSampling",
    "ScoreBased",
    "ScoringContext",
    "Selection",
    "make_acquisition",
]
