"""Typed settings of an extension (an acquisition function's ``Options`` dataclass), and the
command-line flags derived from them, so that a new setting is written once.

A field is declared with :func:`option`, which keeps its help text; `calkit run` offers it as
``--NAME-FIELD`` (``--diverse-lam``), and a run stores the values, defaults filled in, in its
config.yaml.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Mapping

from calkit.errors import ConfigError


def option(default: Any, help: str) -> Any:
    """A dataclass field with a default and the help text its flag shows."""
    return dataclasses.field(default=default, metadata={"help": help})


def build_options(options_type: type, values: Mapping[str, object] | None, owner: str) -> object:
    """An instance of ``options_type`` from plain values, refusing names it does not have."""
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(options_type)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{owner} has no settings {', '.join(unknown)}; it has {', '.join(sorted(known)) or 'none'}")
    try:
        return options_type(**values)
    except TypeError as exc:
        raise ConfigError(f"{owner}: {exc}") from exc


def option_flags(prefix: str, options_type: type) -> list[tuple[str, str, type, str]]:
    """(flag, field, type, help) for every field: ``--PREFIX-FIELD`` with its type and default."""
    hints = typing.get_type_hints(options_type)
    out = []
    for f in dataclasses.fields(options_type):
        kind = _scalar(hints[f.name])
        shown = "unset" if f.default is None else f.default
        text = f"{f.metadata.get('help', '')} [{shown}]".strip()
        out.append((f"{prefix}-{f.name.replace('_', '-')}", f.name, kind, text))
    return out


def _scalar(hint: Any) -> type:
    """int, float or str from a field's type, ``X | None`` included."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    kind = args[0] if args else hint
    return kind if kind in (int, float, str) else str
