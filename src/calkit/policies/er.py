"""Experience replay (er): m new items plus m' uniform draws from the history, plain CE."""

from __future__ import annotations

from calkit.policies.replay import ReplayPolicy


class ExperienceReplayPolicy(ReplayPolicy):
    """Cross-entropy over the concatenation, so new items weigh m / (m + m')."""

    name = "er"
