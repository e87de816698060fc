"""A run's configuration: one typed object, read from YAML and/or command-line flags.

Everything a run needs to be repeated is here; ``calkit resume`` reads it back from the run
directory. Validation that needs no data happens in :meth:`RunConfig.validate`; checks against
the dataset (budget larger than the pool, ...) happen in :func:`plan_rounds`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from os import PathLike
from dataclasses import dataclass
from pathlib import Path

import yaml

from calkit.errors import ConfigError, is_positive_int
from calkit.noise import NoiseModel
from calkit.oracle import oracle_name
from calkit.policies.options import PolicyOptions
from calkit.train.schedules import Schedule
from calkit.train.trainer import OptimizerConfig
from calkit.train.warm_start import check_shrink_perturb


@dataclass
class RunConfig:
    dataset: str = "digits"
    data_dir: str | None = None
    model: str = "mlp"
    dropout: float = 0.0
    policy: str = "reset"
    acquisition: str = "entropy"
    initial: int = 100
    round_size: int = 100
    rounds: int | None = None
    budget: str | None = None
    seed: int = 0
    oracle: str = "simulated"
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int | None = None
    train_accuracy: float | None = None
    new_accuracy: float | None = None
    max_epochs: int | None = None
    max_new_epochs: int | None = None
    labeled_passes: float | None = None
    min_round_steps: int | None = None
    shrink: float | None = None  #: kept models: shrink and perturb before each round (None: the policy's)
    perturb: float | None = None
    replay_size: int | None = None
    replay_fraction: float | None = None
    replay_ratio: float | None = None  #: m' / m (None with size and fraction unset: the policy's)
    alpha: float | None = None
    beta: float | None = None
    candidates: int | None = None
    lam_s: float | None = None
    kernel_width: float | None = None
    mir_sampling: bool = False
    lr_scaling: bool | None = None
    device: str = "cpu"
    #: keep the features off the device and move each batch when it is needed (calkit.tensors);
    #: a pool on disk always streams
    stream: bool = False
    loader_workers: int = 0  #: streamed data: DataLoader processes reading ahead (0: read in this process)
    score_batch_size: int = 4096
    score_multiple: int | None = None
    schedule: str | None = None  #: None: the policy's default (constant; cal: cosine)
    warmup: float = 0.01
    min_lr_factor: float = 0.1
    const_lr_factor: float = 0.55
    cooldown: str = "cosine"
    anneal_epochs: int = 1
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    initial_accuracy: float | None = None  #: None: DEFAULT_INITIAL_ACCURACY (calkit.resolve)
    initial_max_epochs: int | None = None  #: None: DEFAULT_INITIAL_MAX_EPOCHS (calkit.resolve)
    label_column: str = "label"
    keep_checkpoints: str = "all"
    round_sizes: list[int] | None = None
    pool_size: int | None = None
    acquisition_options: dict | None = None  #: the acquisition's own settings (its Options), by field name
    policy_settings: dict | None = None  #: a policy's own settings (its Options, plugins), by field name
    later_lr_factor: float | None = None  #: rounds after the initial one start from lr x this (None: 1)
    #: open round t+1's query as soon as round t's labels are in, chosen by the model of round t-1,
    #: so people label while round t trains (rounds 2 on; round 1 waits for the initial model)
    lookahead: bool = False
    annotators: int = 1  #: oracle simulated: this many annotators share each query (sim-0, sim-1, ...)
    label_noise: float = 0.0  #: oracle simulated: each answer is wrong with this probability
    noise_model: str = "uniform"  #: calkit.noise: uniform (any other class) or pairs (one fixed other class)
    #: True once calkit.resolve filled in every default: a run's config.yaml is, and opens as written
    resolved: bool = False

    def validate(self) -> "RunConfig":
        if isinstance(self.budget, (int, float)) and not isinstance(self.budget, bool):
            self.budget = str(self.budget)  # 300 and "300" mean the same
        for name in ("dataset", "data_dir"):
            if isinstance(getattr(self, name), PathLike):
                setattr(self, name, str(getattr(self, name)))
        _check_types(self)
        oracle_name(self.oracle)
        required = ("initial", "round_size", "batch_size", "score_batch_size")
        optional = ("max_epochs", "max_new_epochs", "score_multiple", "initial_max_epochs")
        for name in required + optional:
            value = getattr(self, name)
            if not (is_positive_int(value) or (name in optional and value is None)):
                raise ConfigError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.rounds is not None and not is_positive_int(self.rounds):
            raise ConfigError(f"rounds must be a positive integer (it counts the initial round), got {self.rounds!r}")
        if self.round_sizes is not None:
            if not self.round_sizes or not all(is_positive_int(r) for r in self.round_sizes):
                raise ConfigError(f"round-sizes must be a list of positive integers, got {self.round_sizes!r}")
        elif self.rounds is None and self.budget is None:
            raise ConfigError("give --rounds, --budget or both, so the run knows when to stop")
        if self.budget is not None:
            parse_budget(self.budget, pool_size=None)
        if self.keep_checkpoints not in ("all", "last"):
            raise ConfigError(f"keep-checkpoints must be 'all' or 'last', got {self.keep_checkpoints!r}")
        for name in ("test_fraction", "val_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name.replace('_', '-')} must be in [0, 1), got {getattr(self, name)}")
        for name in ("initial_accuracy", "train_accuracy", "new_accuracy"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value <= 1.0:
                raise ConfigError(f"{name.replace('_', '-')} must be in (0, 1], got {value}")
        for name in ("epochs", "pool_size"):
            if getattr(self, name) is not None and not is_positive_int(getattr(self, name)):
                raise ConfigError(f"{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)!r}")
        if isinstance(self.loader_workers, bool) or not isinstance(self.loader_workers, int) or self.loader_workers < 0:
            raise ConfigError(f"loader-workers must be a non-negative integer, got {self.loader_workers!r}")
        if self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed}")
        if self.labeled_passes is not None and not (isinstance(self.labeled_passes, (int, float))
                                                    and 0 < self.labeled_passes < float("inf")):
            raise ConfigError(f"labeled-passes must be a positive number, got {self.labeled_passes!r}")
        if self.min_round_steps is not None and not (self.min_round_steps == 0 or is_positive_int(self.min_round_steps)):
            raise ConfigError(f"min-round-steps must be a non-negative integer, got {self.min_round_steps!r}")
        if self.labeled_passes is not None and self.max_new_epochs is not None:
            raise ConfigError("give labeled-passes or max-new-epochs, not both: each sets a continual round's length")
        if self.later_lr_factor is not None and not (isinstance(self.later_lr_factor, (int, float))
                                                     and 0 < self.later_lr_factor < float("inf")):
            raise ConfigError(f"later-lr-factor must be a positive number, got {self.later_lr_factor!r}")
        check_shrink_perturb(1.0 if self.shrink is None else self.shrink, 0.0 if self.perturb is None else self.perturb)
        if not is_positive_int(self.annotators):
            raise ConfigError(f"annotators must be a positive integer, got {self.annotators!r}")
        NoiseModel(self.noise_model, self.label_noise)  # validates them
        self.policy_options()  # validates the policy settings
        self.lr_schedule()
        self.optimizer_config()
        return self

    def optimizer_config(self) -> OptimizerConfig:
        return OptimizerConfig(self.optimizer, self.lr, self.momentum, self.weight_decay)

    def lr_schedule(self, default: str = "constant") -> Schedule:
        return Schedule(self.schedule or default, self.warmup, self.min_lr_factor, self.const_lr_factor, self.cooldown,
                        self.anneal_epochs)

    def policy_options(self) -> PolicyOptions:
        return PolicyOptions(
            replay_size=self.replay_size,
            replay_fraction=self.replay_fraction,
            replay_ratio=self.replay_ratio,
            alpha=self.alpha,
            beta=self.beta,
            candidates=self.candidates,
            lam_s=self.lam_s,
            kernel_width=self.kernel_width,
            mir_sampling=self.mir_sampling,
            lr_scaling=self.lr_scaling,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        normalised = {str(k).replace("-", "_"): v for k, v in (raw or {}).items()}
        unknown = sorted(set(normalised) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
        if normalised.get("budget") is not None:
            normalised["budget"] = str(normalised["budget"])
        return cls(**normalised)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError(f"{path} must hold a mapping of config keys")
        return cls.from_dict(raw or {})

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _check_types(cfg: RunConfig) -> None:
    """Each setting has its field's type (an int is no bool; a float is finite), so that a wrong
    value is refused here, by name, and not deep inside a round."""
    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        value = getattr(cfg, f.name)
        allowed = [a for a in (typing.get_args(hints[f.name]) or (hints[f.name],)) if a is not type(None)]
        if value is None and len(allowed) < len(typing.get_args(hints[f.name]) or (hints[f.name],)):
            continue
        if not any(_is_a(value, kind) for kind in allowed):
            names = " or ".join(_KIND_NAMES.get(typing.get_origin(k) or k, str(k)) for k in allowed)
            hint = ""
            if isinstance(value, str) and float in allowed and re.fullmatch(r"[-+]?\d+e[-+]?\d+", value.strip(), re.I):
                hint = f" (YAML reads {value} as text; write it with a decimal point, e.g. {value.lower().replace('e', '.0e', 1)})"
            raise ConfigError(f"{f.name.replace('_', '-')} must be {names}, got {value!r}{hint}")


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a finite number", str: "text", list: "a list",
               dict: "a mapping"}


def _is_a(value: object, kind: object) -> bool:
    origin = typing.get_origin(kind) or kind
    if origin is bool:
        return isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, origin)  # type: ignore[arg-type]


def parse_budget(text: str, pool_size: int | None) -> int | float:
    """``'6000'`` is a count; ``'0.3'`` or ``'30%'`` a fraction of the pool.

    Returns the count when ``pool_size`` is known, else the parsed number (for validation).
    """
    s = str(text).strip()
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*(%?)", s)
    if not m:
        raise ConfigError(f"cannot read budget {text!r}; give a count (6000), a fraction (0.3) or a percentage (30%)")
    value = float(m.group(1))
    is_fraction = bool(m.group(2)) or "." in m.group(1)
    if m.group(2):
        value /= 100.0
    if is_fraction and not 0.0 < value <= 1.0:
        raise ConfigError(f"budget fraction must be in (0, 1], got {text!r}")
    if not is_fraction and value < 1:
        raise ConfigError(f"budget count must be at least 1, got {text!r}")
    if pool_size is None:
        return value
    return math.floor(value * pool_size + 1e-9) if is_fraction else int(value)


def plan_rounds(cfg: RunConfig, pool_size: int) -> list[int]:
    """Sizes of every round (the initial one first), fixed before any work starts."""
    if cfg.round_sizes is not None:
        if sum(cfg.round_sizes) > pool_size:
            raise ConfigError(f"rounds of {cfg.round_sizes} need {sum(cfg.round_sizes)} labels; the pool has {pool_size}")
        return list(cfg.round_sizes)
    budget = parse_budget(cfg.budget, pool_size) if cfg.budget is not None else None
    if budget is not None and budget > pool_size:
        raise ConfigError(f"budget of {budget} labels is larger than the pool of {pool_size} items")
    if cfg.initial > pool_size:
        raise ConfigError(f"initial set of {cfg.initial} is larger than the pool of {pool_size} items")
    cap = budget if budget is not None else pool_size
    if cfg.initial > cap:
        raise ConfigError(f"initial set of {cfg.initial} is larger than the budget of {cap} labels")
    sizes = [cfg.initial]
    while sum(sizes) < cap and (cfg.rounds is None or len(sizes) < cfg.rounds):
        sizes.append(min(cfg.round_size, cap - sum(sizes)))
    need = cfg.initial + (cfg.rounds - 1) * cfg.round_size if cfg.rounds is not None else 0
    if cfg.rounds is not None and budget is None and need > pool_size:
        raise ConfigError(f"{cfg.rounds} rounds need {need} labels but the pool has only {pool_size} items")
    return sizes
