"""Registries of named extension classes: the built-ins, ``register_*`` calls, and installed
plugins found through Python entry points.

A plugin package declares, in its pyproject.toml,

    [project.entry-points."calkit.policies"]
    my-policy = "my_package.module:MyPolicy"

and `calkit run --policy my-policy` finds it: entry points are read on the first lookup that
needs them, so importing calkit stays cheap, and a plugin that fails to load only fails when it
is asked for by name (listings leave it out).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Callable, Generic, Iterator, Mapping, TypeVar

from calkit.errors import ConfigError

T = TypeVar("T", bound=type)


def normalise(name: str) -> str:
    """Names match case-insensitively (``-`` and ``_`` alike: see Registry.key)."""
    return name.strip().lower()


class Registry(Mapping[str, T], Generic[T]):
    """Name -> class, filled from ``builtins`` and then from the entry-point ``group``."""

    def __init__(self, kind: str, group: str, base: type, builtins: Callable[[], dict[str, T]]):
        self.kind, self.group, self.base = kind, group, base
        self._builtins = builtins
        self._classes: dict[str, T] | None = None
        self._plugins_loaded = False
        self._broken: dict[str, str] = {}  #: plugins that failed to load: name -> why

    def register(self, cls: T, name: str | None = None, *, replace: bool = False) -> T:
        """Make ``cls`` available under ``name`` (default: its ``name`` attribute); returns it,
        so it works as a class decorator."""
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise ConfigError(f"a {self.kind} must be a subclass of {self.base.__module__}.{self.base.__name__}, "
                              f"got {cls!r}")
        key = normalise(name or getattr(cls, "name", "") or "")
        if not key:
            raise ConfigError(f"{cls.__name__} needs a `name` (class attribute or register(..., name=...))")
        classes = self._loaded()
        if key in classes and classes[key] is not cls and not replace:
            raise ConfigError(f"a {self.kind} named {key!r} is already registered ({classes[key].__module__}."
                              f"{classes[key].__name__}); pass replace=True to override it")
        classes[key] = cls
        return cls

    def key(self, name: str) -> str | None:
        """The registered name ``name`` stands for (case and ``-``/``_`` ignored), or None."""
        base = normalise(name)
        for pass_ in ("builtins", "plugins"):
            if pass_ == "plugins":
                self._load_plugins()
            for candidate in (base, base.replace("-", "_"), base.replace("_", "-")):
                if candidate in self._loaded():
                    return candidate
        return None

    def broken(self, name: str) -> str | None:
        """Why the plugin of that name failed to load, if it did."""
        self._load_plugins()
        return self._broken.get(normalise(name))

    def lookup(self, name: str) -> T:
        key = self.key(name)
        if key is None:
            if self.broken(name):
                raise ConfigError(self.broken(name))
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}")
        return self._loaded()[key]

    def names(self) -> list[str]:
        self._load_plugins()
        return list(self._loaded())

    def __getitem__(self, name: str) -> T:
        key = self.key(name)
        if key is None:
            raise KeyError(name)
        return self._loaded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def _loaded(self) -> dict[str, T]:
        if self._classes is None:
            self._classes = {normalise(k): v for k, v in self._builtins().items()}
        return self._classes

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.group):
            if normalise(ep.name) in self._loaded():
                continue  # a built-in or an earlier registration keeps its name
            try:
                self.register(ep.load(), ep.name)
            except Exception as exc:  # one broken plugin must not take the others (or the CLI) down
                self._broken[normalise(ep.name)] = (f"the {self.kind} plugin {ep.name!r} ({ep.value}) failed to load: "
                                                    f"{exc}")
