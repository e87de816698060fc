"""Typed exceptions, so callers (and the CLI) can tell bad input from bugs.

Every error raised for bad user input derives from :class:`CalkitError`; the CLI prints
its message without a traceback and exits with status 2.
"""


class CalkitError(Exception):
    """Base class for errors caused by input or state the user can fix."""


class DataError(CalkitError):
    """A dataset is missing, unreadable or inconsistent."""


class ConfigError(CalkitError):
    """A run configuration is invalid (unknown name, impossible budget, ...)."""


class AcquisitionError(CalkitError):
    """An acquisition function was asked for something it cannot do."""


class LedgerError(CalkitError):
    """The run directory or its ledger is missing, foreign or inconsistent."""


class LabelError(CalkitError):
    """Submitted labels were rejected, all of them: nothing was written.

    ``problems`` maps each bad item id to the reason, so a caller (a web form, a script) can
    show them next to the entries.
    """

    def __init__(self, problems: dict[int, str]):
        self.problems = dict(problems)
        shown = "; ".join(f"item {item}: {why}" for item, why in list(self.problems.items())[:20])
        more = f"; and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"labels rejected, nothing was written: {shown}{more}")


class IngestError(CalkitError):
    """An answers file was rejected; nothing from it was written."""


def is_positive_int(value: object) -> bool:
    """The check behind every "must be a positive integer" error (bools are not integers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
