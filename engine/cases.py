"""Validating a case against the fact declarations before any rule runs.

A case is rejected with every problem listed by JSON path. A valid case comes
out normalised: numbers as floats, dates as `datetime.date`, nulls dropped,
every declared fact present (possibly empty).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from engine.errors import CredoError, Problem, did_you_mean
from engine.model import FieldDecl

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_TEXT = 10_000


def _problem(code: str, path: str, message: str, hint: str | None = None) -> Problem:
    return Problem(code, message, hint=hint, path=path)


class CaseValidator:
    def __init__(self, fields: Mapping[tuple[str, str], FieldDecl], conclusions: frozenset[str] = frozenset()) -> None:
        self.facts: dict[str, dict[str, FieldDecl]] = {}
        for (fact, name), decl in fields.items():
            self.facts.setdefault(fact, {})[name] = decl
        self.required = {
            fact: [d for d in decls.values() if not d.optional and d.derived is None]
            for fact, decls in self.facts.items()
        }
        # Conclusions a test may set directly (design: a ruleset test's given may set what the ruleset reads).
        self.conclusions = conclusions
        # The common case (a valid value) takes one specialised check per field; the general `convert` only
        # runs to explain a problem.
        self.fast = {
            fact: {name: _fast_check(d) for name, d in decls.items() if d.derived is None}
            for fact, decls in self.facts.items()
        }

    def validate(
        self, case: object, allow_conclusions: bool = False
    ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """Returns (facts, given conclusions); raises CredoError listing every problem by JSON path."""
        problems: list[Problem] = []
        facts: dict[str, dict[str, Any]] = {fact: {} for fact in self.facts}
        given: dict[str, Any] = {}
        if not isinstance(case, Mapping):
            raise CredoError([_problem("case-not-object", "$", "a case is a JSON object of facts")])
        for key, body in case.items():
            path = f"$.{key}"
            if not isinstance(key, str):
                problems.append(_problem("unknown-fact", path, "fact names are text"))
                continue
            if key not in self.facts:
                if allow_conclusions and key in self.conclusions:
                    if body is not None:
                        given[key] = body if isinstance(body, (str, bool, list)) else _number(body)
                    continue
                problems.append(
                    _problem("unknown-fact", path, f"'{key}' is not a declared fact", did_you_mean(key, self.facts))
                )
                continue
            if body is None:
                continue
            if not isinstance(body, Mapping):
                problems.append(_problem("wrong-type", path, f"fact '{key}' must be an object of fields"))
                continue
            self._fields(key, body, facts[key], problems)
        for fact, required in self.required.items():
            present = facts[fact]
            for decl in required:
                if decl.name not in present and not any(p.path == f"$.{fact}.{decl.name}" for p in problems):
                    problems.append(
                        _problem("missing-field", f"$.{fact}.{decl.name}", f"{fact}.{decl.name} is required")
                    )
        if problems:
            raise CredoError(problems)
        return facts, given

    def _fields(self, fact: str, body: Mapping[str, Any], out: dict[str, Any], problems: list[Problem]) -> None:
        decls = self.facts[fact]
        fast = self.fast[fact]
        for name, value in body.items():
            check = fast.get(name)
            if check is not None:
                if value is None:
                    continue
                converted = check(value)
                if converted is not _SLOW:
                    out[name] = converted
                    continue
            path = f"$.{fact}.{name}"
            decl = decls.get(name)
            if decl is None:
                problems.append(
                    _problem("unknown-field", path, f"'{fact}.{name}' is not declared", did_you_mean(str(name), decls))
                )
                continue
            if decl.derived is not None:
                problems.append(_problem("derived-field", path, f"{fact}.{name} is derived; a case may not supply it"))
                continue
            if value is None:
                continue
            converted = convert(decl, value)
            if isinstance(converted, Problem):
                problems.append(_problem(converted.code, path, converted.message, converted.hint))
            else:
                out[name] = converted


_SLOW = object()


def _fast_check(decl: FieldDecl) -> Any:
    """A check that returns the normalised value when it is plainly valid, else _SLOW."""
    if decl.type in ("number", "integer"):
        low = -math.inf if decl.minimum is None else decl.minimum
        high = math.inf if decl.maximum is None else decl.maximum
        whole = decl.type == "integer"

        def number(value: object) -> object:
            kind = type(value)
            if kind is float or kind is int:
                v = float(value)  # type: ignore[arg-type]
                if low <= v <= high and (not whole or v.is_integer()) and v - v == 0.0:
                    return v
            return _SLOW

        return number
    if decl.type == "enum":
        values = frozenset(decl.values)
        return lambda value: value if type(value) is str and value in values else _SLOW
    if decl.type == "boolean":
        return lambda value: value if type(value) is bool else _SLOW
    if decl.type == "string":
        return lambda value: value if type(value) is str and len(value) <= MAX_TEXT else _SLOW
    return lambda value: _SLOW  # dates: the general path parses them


def _number(value: object) -> object:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def convert(decl: FieldDecl, value: object) -> object:
    """The normalised value, or a Problem (without path) saying why it does not fit the declaration."""
    kind = decl.type
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return Problem("wrong-type", f"{decl.dotted} must be a number, found {_shown(value)}")
        number = float(value)
        if not math.isfinite(number):
            return Problem("wrong-type", f"{decl.dotted} must be a finite number")
        if kind == "integer" and not number.is_integer():
            return Problem("wrong-type", f"{decl.dotted} must be a whole number, found {value}")
        if decl.minimum is not None and number < decl.minimum:
            return Problem("out-of-range", f"{decl.dotted} must be at least {decl.minimum:g}, found {value}")
        if decl.maximum is not None and number > decl.maximum:
            return Problem("out-of-range", f"{decl.dotted} must be at most {decl.maximum:g}, found {value}")
        return number
    if kind == "boolean":
        if not isinstance(value, bool):
            return Problem("wrong-type", f"{decl.dotted} must be true or false, found {_shown(value)}")
        return value
    if not isinstance(value, str):
        return Problem("wrong-type", f"{decl.dotted} must be text, found {_shown(value)}")
    if len(value) > MAX_TEXT:
        return Problem("too-long", f"{decl.dotted} is longer than {MAX_TEXT} characters")
    if kind == "enum" and value not in decl.values:
        return Problem(
            "enum-value",
            f"{decl.dotted} must be one of {', '.join(decl.values)}",
            hint=did_you_mean(value, decl.values),
        )
    if kind == "date":
        try:
            if not DATE_RE.match(value):
                raise ValueError(value)
            return dt.date.fromisoformat(value)
        except ValueError:
            return Problem("wrong-type", f"{decl.dotted} must be a date YYYY-MM-DD")
    return value


def _shown(value: object) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
