"""Validating a case against the fact declarations before any rule runs.

A case is rejected with every problem listed by JSON path. A valid case comes
out normalised: numbers as floats, dates as `datetime.date`, nulls dropped,
every declared fact present (possibly empty).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import sys
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
        self._required_names = tuple(
            (fact, tuple(d.name for d in decls)) for fact, decls in self.required.items() if decls
        )
        # Conclusions a test may set directly (design: a ruleset test's given may set what the ruleset reads).
        self.conclusions = conclusions
        # The common case (a valid value) takes one inline check per field (see `_fields`); the general `convert`
        # only runs to explain a problem.
        self.fast = {
            fact: {name: check for name, d in decls.items() if d.derived is None and (check := _fast_check(d))}
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
            if not isinstance(key, str):
                problems.append(_problem("unknown-fact", f"$.{key}", "fact names are text"))
                continue
            out = facts.get(key)
            if out is None:
                if allow_conclusions and key in self.conclusions:
                    if body is not None:
                        given[key] = body if isinstance(body, (str, bool, list)) else _number(body)
                    continue
                problems.append(
                    _problem(
                        "unknown-fact", f"$.{key}", f"'{key}' is not a declared fact", did_you_mean(key, self.facts)
                    )
                )
                continue
            if body is None:
                continue
            if type(body) is not dict and not isinstance(body, Mapping):  # a dict is the common case: no ABC check
                problems.append(_problem("wrong-type", f"$.{key}", f"fact '{key}' must be an object of fields"))
                continue
            self._fields(key, body, out, problems)
        for fact, names in self._required_names:
            present = facts[fact]
            for name in names:
                if name not in present and not any(p.path == f"$.{fact}.{name}" for p in problems):
                    problems.append(_problem("missing-field", f"$.{fact}.{name}", f"{fact}.{name} is required"))
        if problems:
            raise CredoError(problems)
        return facts, given

    def _fields(self, fact: str, body: Mapping[str, Any], out: dict[str, Any], problems: list[Problem]) -> None:
        fast = self.fast[fact]
        for name, value in body.items():
            check = fast.get(name)
            if check is not None:
                # Inline rather than a call per field: this loop runs for every field of every case.
                if value is None:
                    continue
                kind = check[0]
                vtype = type(value)
                if kind == _NUMBER:
                    # An int beyond a double's range (JSON allows 400 digits) takes the general path, which says so.
                    if vtype is float or (vtype is int and -_INT_FLOAT_MAX <= value <= _INT_FLOAT_MAX):
                        number = float(value)
                        _, low, high, whole = check
                        # In range, whole if it must be, finite (inf - inf is nan).
                        if low <= number <= high and (not whole or number.is_integer()) and number - number == 0.0:
                            out[name] = number
                            continue
                elif kind == _ENUM:
                    if vtype is str and value in check[1]:
                        out[name] = value
                        continue
                elif kind == _BOOLEAN:
                    if vtype is bool:
                        out[name] = value
                        continue
                elif vtype is str and len(value) <= MAX_TEXT:
                    out[name] = value
                    continue
            self._field(fact, name, value, out, problems)

    def _field(self, fact: str, name: str, value: Any, out: dict[str, Any], problems: list[Problem]) -> None:
        """The general path of one field: dates, and every value the fast checks did not take (or explain why)."""
        path = f"$.{fact}.{name}"
        decls = self.facts[fact]
        decl = decls.get(name)
        if decl is None:
            problems.append(
                _problem("unknown-field", path, f"'{fact}.{name}' is not declared", did_you_mean(str(name), decls))
            )
            return
        if decl.derived is not None:
            problems.append(_problem("derived-field", path, f"{fact}.{name} is derived; a case may not supply it"))
            return
        if value is None:
            return
        converted = convert(decl, value)
        if isinstance(converted, Problem):
            problems.append(_problem(converted.code, path, converted.message, converted.hint))
        else:
            out[name] = converted


# The fast checks: (kind, ...) tuples read inline by CaseValidator._fields.
_NUMBER, _ENUM, _BOOLEAN, _TEXT = 1, 2, 3, 4
_INT_FLOAT_MAX = int(sys.float_info.max)


def _fast_check(decl: FieldDecl) -> tuple[Any, ...] | None:
    """How to accept a plainly valid value of `decl` without `convert`; None for dates (the general path parses
    them). Numbers: (_NUMBER, low, high, whole); enums: (_ENUM, values); booleans and text: (kind,)."""
    if decl.type in ("number", "integer"):
        low = -math.inf if decl.minimum is None else decl.minimum
        high = math.inf if decl.maximum is None else decl.maximum
        return (_NUMBER, low, high, decl.type == "integer")
    if decl.type == "enum":
        return (_ENUM, frozenset(decl.values))
    if decl.type == "boolean":
        return (_BOOLEAN,)
    if decl.type == "string":
        return (_TEXT,)
    return None


def _number(value: object) -> object:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return value
    try:
        return float(value)
    except OverflowError:  # an int too large for a double
        return math.copysign(math.inf, value)


def convert(decl: FieldDecl, value: object) -> object:
    """The normalised value, or a Problem (without path) saying why it does not fit the declaration."""
    kind = decl.type
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return Problem("wrong-type", f"{decl.dotted} must be a number, found {_shown(value)}")
        try:
            number = float(value)
        except OverflowError:  # an int too large for a double
            number = math.inf
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
