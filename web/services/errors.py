"""Refusals: a forbidden or impossible step, as data the CLI prints and the API maps to an HTTP status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.errors import Problem

# The kinds of refusal and the HTTP status the API answers each with.
STATUS = {
    "conflict": 409,  # the step does not fit the current state (four eyes, status, an approval voided by an edit)
    "invalid": 422,  # the content is wrong (problems, failing tests, an unmappable field)
    "forbidden": 403,  # the user lacks the role
    "not-found": 404,
}


class Refused(Exception):
    """A step the service will not take, with a stable code and a reason a person can act on."""

    def __init__(
        self, code: str, message: str, kind: str = "conflict", problems: Sequence[Problem] = (), details: Any = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.kind = kind
        self.problems = list(problems)
        self.details = details

    @property
    def http_status(self) -> int:
        return STATUS[self.kind]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.problems:
            out["problems"] = [p.to_dict() for p in self.problems]
        if self.details is not None:
            out["details"] = self.details
        return out

    def format(self) -> str:
        lines = [f"refused ({self.code}): {self.message}"]
        lines += [f"  {p.format()}" for p in self.problems]
        if isinstance(self.details, list):
            lines += [f"  {d}" for d in self.details]
        return "\n".join(lines)


__all__ = ["Refused"]
