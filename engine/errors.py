"""Problems are data: a stable code, a message, a source position and a hint.

Every stage of the pipeline (loading, parsing, checking, compiling, validating a
case) collects problems instead of raising on the first one; `CredoError`
carries the sorted list when a stage cannot go on.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class SourceSpan:
    """A position in a source file; line and column count from 1."""

    file: str = "<input>"
    line: int = 0
    column: int = 0

    def shifted(self, columns: int) -> SourceSpan:
        return SourceSpan(self.file, self.line, self.column + columns)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NO_SPAN = SourceSpan()


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    span: SourceSpan = NO_SPAN
    hint: str | None = None
    severity: Severity = "error"
    # A JSON path (``$.financials.ebitda``) for problems found in a case rather than a file.
    path: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.span.file, self.span.line, self.span.column, self.code, self.message)

    def format(self) -> str:
        """The one-line form `credo validate` prints: ``file:line:col: code: message (hint)``."""
        where = self.path if self.path is not None else str(self.span)
        text = f"{where}: {self.code}: {self.message}"
        if self.severity == "warning":
            text = f"{where}: {self.code} (warning): {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message, "severity": self.severity}
        if self.path is not None:
            out["path"] = self.path
        else:
            out.update(file=self.span.file, line=self.span.line, column=self.span.column)
        if self.hint:
            out["hint"] = self.hint
        return out


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(set(problems), key=Problem.sort_key)


class CredoError(Exception):
    """The project's one error type: a non-empty, sorted list of problems."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sort_problems(problems)
        if not self.problems:
            raise ValueError("CredoError needs at least one problem")
        super().__init__("\n".join(p.format() for p in self.problems))

    @classmethod
    def single(cls, code: str, message: str, span: SourceSpan = NO_SPAN, hint: str | None = None) -> CredoError:
        return cls([Problem(code, message, span, hint)])


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
