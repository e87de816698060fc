"""The one error the labeling desk answers with (the web layer maps it to an HTTP response)."""

from __future__ import annotations

from calkit.errors import CalkitError


class Refused(CalkitError):
    """A request the desk turns down, changing nothing: ``status`` is the HTTP status a web
    layer should answer with, ``code`` a stable word for scripts."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}

    def to_dict(self) -> dict:
        return {"error": self.code, "message": self.message, **({"details": self.details} if self.details else {})}
