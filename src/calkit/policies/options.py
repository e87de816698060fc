"""Settings of the continual policies, typed, with the spec's meaning for each.

``None`` means "the policy's own default"; each policy documents its defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from calkit.errors import ConfigError


@dataclass(frozen=True)
class PolicyOptions:
    replay_size: int | None = None  #: m', replayed items per step
    replay_fraction: float | None = None  #: m' / (m + m'), the alternative way to set m'
    replay_ratio: float | None = None  #: m' / m, the third way (the policies' defaults are ratios)
    alpha: float | None = None  #: der: weight of the logit MSE; sd/sds2: share of KL vs CE in replay
    beta: float | None = None  #: der: weight of CE on replayed items
    candidates: int | None = None  #: C, history candidates scored per step (mir, sds2)
    lam_s: float | None = None  #: sds2: weight of the uncertainty term
    kernel_width: float | None = None  #: sds2: sigma of the RBF kernel (median heuristic if None)
    mir_sampling: bool = False  #: mir: sample by softmax of interference instead of top-k
    lr_scaling: bool | None = None  #: scale the LR by (m + m') / m (the reference code did); None: policy default

    def __post_init__(self) -> None:
        given = [n for n in ("replay_size", "replay_fraction", "replay_ratio") if getattr(self, n) is not None]
        if len(given) > 1:
            shown = " and ".join(n.replace("_", "-") for n in given)
            raise ConfigError(f"give only one of replay-size, replay-fraction and replay-ratio, not both {shown}")
        if self.replay_ratio is not None and not 0.0 <= self.replay_ratio < math.inf:
            raise ConfigError(f"replay-ratio must be >= 0, got {self.replay_ratio}")
        if self.replay_size is not None and self.replay_size < 0:
            raise ConfigError(f"replay-size must be >= 0, got {self.replay_size}")
        if self.replay_fraction is not None and not 0.0 <= self.replay_fraction < 1.0:  # NaN fails too
            raise ConfigError(f"replay-fraction must be in [0, 1), got {self.replay_fraction}")
        for name in ("alpha", "beta", "lam_s"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < math.inf:
                raise ConfigError(f"{name.replace('_', '-')} must be a finite number >= 0, got {value}")
        if self.candidates is not None and self.candidates < 1:
            raise ConfigError(f"candidates must be >= 1, got {self.candidates}")
        if self.kernel_width is not None and not 0 < self.kernel_width < math.inf:
            raise ConfigError(f"kernel-width must be a finite number > 0, got {self.kernel_width}")

    def replay_count(self, new_per_step: int, default_ratio: float) -> int:
        """m' for a step of m new items: set directly, via the fraction or ratio, or m * default_ratio."""
        if self.replay_size is not None:
            return self.replay_size
        if self.replay_fraction is not None:
            f = self.replay_fraction
            return int(round(new_per_step * f / (1.0 - f)))
        ratio = default_ratio if self.replay_ratio is None else self.replay_ratio
        return int(round(new_per_step * ratio))
