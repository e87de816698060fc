"""What to label next. Every strategy implements :class:`Acquisition`."""

from __future__ import annotations

from calkit.acquisition.base import Acquisition, ScoreBased, ScoringContext, Selection
from calkit.acquisition.context import ModelScoringContext
from calkit.acquisition.diverse import Diverse
from calkit.acquisition.random import RandomSampling
from calkit.acquisition.uncertainty import Entropy, LeastConfidence, Margin
from calkit.registry import Registry

#: Every acquisition class by name: the built-ins, `register_acquisition` calls, and the entry
#: points of the group ``calkit.acquisitions``.
ACQUISITIONS: Registry[type[Acquisition]] = Registry(
    "acquisition", "calkit.acquisitions", Acquisition,
    lambda: {cls.name: cls for cls in (RandomSampling, Entropy, Margin, LeastConfidence, Diverse)},
)


def register_acquisition(cls: type[Acquisition], name: str | None = None, *, replace: bool = False) -> type[Acquisition]:
    """Make an Acquisition subclass available by name (``calkit run --acquisition NAME``)."""
    return ACQUISITIONS.register(cls, name, replace=replace)


def make_acquisition(name: str) -> Acquisition:
    """The strategy registered under ``name`` (``least-confidence`` is accepted too)."""
    return ACQUISITIONS.lookup(name)()


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
    "register_acquisition",
]
