"""What to label next. Every strategy implements :class:`Acquisition`."""

from __future__ import annotations

import dataclasses
from typing import Mapping

from calkit.acquisition.base import Acquisition, ScoreBased, ScoringContext, Selection
from calkit.acquisition.context import ModelScoringContext, ShardedScoringContext
from calkit.acquisition.diverse import Diverse
from calkit.acquisition.random import RandomSampling
from calkit.acquisition.uncertainty import Entropy, LeastConfidence, Margin
from calkit.errors import ConfigError
from calkit.options import build_options
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


def make_acquisition(name: str, options: Mapping[str, object] | None = None) -> Acquisition:
    """The strategy registered under ``name`` (``least-confidence`` is accepted too), with its
    ``Options`` built from ``options`` (plain values; unset ones keep their defaults)."""
    cls = ACQUISITIONS.lookup(name)
    if cls.Options is None:
        if options:
            raise ConfigError(f"acquisition {cls.name!r} takes no settings, got {', '.join(sorted(options))}")
        return cls()
    return cls(build_options(cls.Options, options, f"acquisition {cls.name!r}"))


def acquisition_defaults(name: str, options: Mapping[str, object] | None = None) -> dict[str, object] | None:
    """Every setting of the named strategy, the given ones and the defaults (None: it has none)."""
    made = make_acquisition(name, options)
    return None if made.options is None else dataclasses.asdict(made.options)


__all__ = [
    "ACQUISITIONS",
    "acquisition_defaults",
    "Acquisition",
    "Diverse",
    "Entropy",
    "LeastConfidence",
    "ShardedScoringContext",
    "Margin",
    "ModelScoringContext",
    "RandomSampling",
    "ScoreBased",
    "ScoringContext",
    "Selection",
    "make_acquisition",
    "register_acquisition",
]
