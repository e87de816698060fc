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


class IngestError(CalkitError):
    """An answers file was rejected; nothing from it was written."""


def is_positive_int(value: object) -> bool:
    """The check behind every "must be a positive integer" error (bools are not integers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
