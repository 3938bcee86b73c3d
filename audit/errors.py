"""The decision log's failures, as data the CLI prints and the API maps to an HTTP status."""

from __future__ import annotations

from typing import Any


class AuditUnavailable(Exception):
    """The decision could not be recorded (or a sealed record could not be read): answer 503, never a decision.

    `message` is safe to show: it names the failure's kind, never the driver's text (which can quote SQL, values
    or connection details).
    """

    http_status = 503

    def __init__(self, message: str, code: str = "audit-unavailable") -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    def format(self) -> str:
        return f"audit unavailable ({self.code}): {self.message}"


class ReplayError(Exception):
    """A record that cannot be replayed as stored: a version missing or changed, or its digest not matching."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


__all__ = ["AuditUnavailable", "ReplayError"]
