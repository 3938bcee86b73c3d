"""Expressions compiled to Python closures: values and three-valued truth.

This is the plain reference semantics of the language (design section 2). The
evaluator uses it for derived fields, arithmetic computed before assertion and
output values; the reference interpreter uses it for whole conditions, so the
durable_rules network can be checked against it.

`Facts` maps fact name to its fields; `Conclusions` maps conclusion name to value.
A missing value is None. Numbers are floats (cases are normalised on entry), so
arithmetic here is IEEE double arithmetic, exactly what numpy does.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from engine.syntax import Binary, BoolOp, Call, Compare, Expr, Literal, Membership, Name, Not, Path, Unary

Facts = Mapping[str, Mapping[str, Any]]
Conclusions = Mapping[str, Any]
ValueFn = Callable[[Facts, Conclusions], Any]
TruthFn = Callable[[Facts, Conclusions], "bool | None"]
# A test on a value already read (and present): plain two-valued.
SubjectTest = Callable[[Any], bool]
# Enum ordinal lookup for ordered comparisons: given an expression, its enum values or None.
EnumOrder = Callable[[Expr], "tuple[str, ...] | None"]

_EMPTY: Mapping[str, Any] = {}


def literal_value(value: Any) -> Any:
    if isinstance(value, (bool, str, dt.date)):
        return value
    return float(value)


def compile_value(expr: Expr, enum_order: EnumOrder | None = None) -> ValueFn:
    if isinstance(expr, Literal):
        constant = literal_value(expr.value)
        return lambda facts, conclusions: constant
    if isinstance(expr, Path):
        fact, name = expr.fact, expr.name
        return lambda facts, conclusions: facts.get(fact, _EMPTY).get(name)
    if isinstance(expr, Name):
        conclusion = expr.name
        return lambda facts, conclusions: conclusions.get(conclusion)
    if isinstance(expr, Unary):
        operand = compile_value(expr.operand, enum_order)

        def negate(facts: Facts, conclusions: Conclusions) -> Any:
            v = operand(facts, conclusions)
            return None if v is None else -v

        return negate
    if isinstance(expr, Binary):
        calc = _OPERATIONS[expr.op]
        left, right = expr.left, expr.right
        if isinstance(left, Path) and isinstance(right, Path):
            return _fields_arithmetic(calc, left, right)
        return _arithmetic(calc, compile_value(left, enum_order), compile_value(right, enum_order))
    if isinstance(expr, Call) and expr.func not in ("present", "missing"):
        return _function(expr.func, [compile_value(a, enum_order) for a in expr.args])
    # Conditions used as values (a derived boolean field) are their truth value.
    return compile_truth(expr, enum_order)


def _arithmetic(calc: Callable[[Any, Any], Any], left: ValueFn, right: ValueFn) -> ValueFn:
    def apply(facts: Facts, conclusions: Conclusions) -> Any:
        a = left(facts, conclusions)
        if a is None:
            return None
        b = right(facts, conclusions)
        if b is None:
            return None
        return calc(a, b)

    return apply


def _fields_arithmetic(calc: Callable[[Any, Any], Any], left: Path, right: Path) -> ValueFn:
    """`a op b` on two fields, the usual shape of a derived ratio (`financials.ebitda / financials.debt_service`):
    both read inline, as `_arithmetic` over two `compile_value` paths would."""
    left_fact, left_name, right_fact, right_name = left.fact, left.name, right.fact, right.name

    def apply(facts: Facts, conclusions: Conclusions) -> Any:
        a = facts.get(left_fact, _EMPTY).get(left_name)
        if a is None:
            return None
        b = facts.get(right_fact, _EMPTY).get(right_name)
        if b is None:
            return None
        return calc(a, b)

    return apply


def _add(a: Any, b: Any) -> Any:
    result = a + b
    return result if math.isfinite(result) else None


def _subtract(a: Any, b: Any) -> Any:
    result = a - b
    return result if math.isfinite(result) else None


def _multiply(a: Any, b: Any) -> Any:
    result = a * b
    return result if math.isfinite(result) else None


def _divide(a: Any, b: Any) -> Any:
    if b == 0:
        return None  # x / 0 is null in the language: no value, never an error
    result = a / b
    return result if math.isfinite(result) else None


# Arithmetic on two present operands; a result that leaves the finite floats is null.
_OPERATIONS: dict[str, Callable[[Any, Any], Any]] = {"+": _add, "-": _subtract, "*": _multiply, "/": _divide}


def _function(name: str, args: list[ValueFn]) -> ValueFn:
    def values(facts: Facts, conclusions: Conclusions) -> list[Any] | None:
        out = []
        for arg in args:
            v = arg(facts, conclusions)
            if v is None:
                return None
            out.append(v)
        return out

    if name in ("min", "max") and len(args) == 2:
        return _arithmetic(min if name == "min" else max, args[0], args[1])  # the common `min(a, b)`: no list
    if name == "min":
        return lambda f, c: None if (vs := values(f, c)) is None else min(vs)
    if name == "max":
        return lambda f, c: None if (vs := values(f, c)) is None else max(vs)
    if name == "abs":
        return lambda f, c: None if (vs := values(f, c)) is None else abs(vs[0])
    if name == "round":
        return lambda f, c: (
            None if (vs := values(f, c)) is None else round_half_even(vs[0], int(vs[1]) if len(vs) > 1 else 0)
        )
    if name == "days_between":
        return lambda f, c: None if (vs := values(f, c)) is None else float((vs[1] - vs[0]).days)
    raise ValueError(f"unknown function {name}")


def round_half_even(x: float, digits: int) -> float | None:
    """numpy.round's rule (scale, round half to even, unscale), so both back-ends agree to the bit.

    A result that leaves the floats (x * 10**digits overflows) is null, like any non-finite arithmetic.
    """
    try:
        scale = 10.0**digits
        result = float(round(x * scale) / scale) if digits >= 0 else float(round(x / 10.0**-digits) * 10.0**-digits)
    except (OverflowError, ValueError):
        return None
    return result if math.isfinite(result) else None


def compile_truth(expr: Expr, enum_order: EnumOrder | None = None) -> TruthFn:
    if isinstance(expr, BoolOp):
        items = [compile_truth(i, enum_order) for i in expr.items]
        return _conjunction(items) if expr.op == "and" else _disjunction(items)
    if isinstance(expr, Not):
        operand = compile_truth(expr.operand, enum_order)

        def negate(facts: Facts, conclusions: Conclusions) -> bool | None:
            v = operand(facts, conclusions)
            return None if v is None else not v

        return negate
    if isinstance(expr, Compare):
        return _comparison(expr, enum_order)
    if isinstance(expr, Membership):
        subject = compile_value(expr.left, enum_order)
        choices = frozenset(literal_value(i.value) for i in expr.right.items)
        negated = expr.negated

        def member(facts: Facts, conclusions: Conclusions) -> bool | None:
            v = subject(facts, conclusions)
            if v is None:
                return None
            return (v in choices) != negated

        return member
    if isinstance(expr, Call) and expr.func in ("present", "missing"):
        target = compile_value(expr.args[0], enum_order)
        if expr.func == "present":
            return lambda facts, conclusions: target(facts, conclusions) is not None
        return lambda facts, conclusions: target(facts, conclusions) is None
    if isinstance(expr, Literal) and isinstance(expr.value, bool):
        constant = expr.value
        return lambda facts, conclusions: constant
    # A boolean field or conclusion used as a condition.
    value = compile_value(expr, enum_order)

    def as_truth(facts: Facts, conclusions: Conclusions) -> bool | None:
        v = value(facts, conclusions)
        return v if v is None else bool(v)

    return as_truth


def _conjunction(items: list[TruthFn]) -> TruthFn:
    def conj(facts: Facts, conclusions: Conclusions) -> bool | None:
        unknown = False
        for item in items:
            v = item(facts, conclusions)
            if v is False:
                return False
            if v is None:
                unknown = True
        return None if unknown else True

    return conj


def _disjunction(items: list[TruthFn]) -> TruthFn:
    def disj(facts: Facts, conclusions: Conclusions) -> bool | None:
        unknown = False
        for item in items:
            v = item(facts, conclusions)
            if v is True:
                return True
            if v is None:
                unknown = True
        return None if unknown else False

    return disj


def _field_against_constant(fact: str, name: str, op: Callable[[Any, Any], bool], constant: Any) -> TruthFn:
    """The most common test (`financials.dscr < 1.2`) as one closure: it runs for every rule on every case."""

    def test(facts: Facts, conclusions: Conclusions) -> bool | None:
        v = facts.get(fact, _EMPTY).get(name)
        return None if v is None else op(v, constant)

    return test


_FAST_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _comparison(expr: Compare, enum_order: EnumOrder | None) -> TruthFn:
    left, right = compile_value(expr.left, enum_order), compile_value(expr.right, enum_order)
    op = _OPS[expr.op]
    order = None
    if expr.op in ("<", "<=", ">", ">=") and enum_order is not None:
        order = enum_order(expr.left) or enum_order(expr.right)
    if order is None and isinstance(expr.left, Path) and isinstance(expr.right, Literal):
        return _field_against_constant(
            expr.left.fact, expr.left.name, _FAST_OPS[expr.op], literal_value(expr.right.value)
        )
    if order is not None:
        rank = {v: i for i, v in enumerate(order)}

        def ranked(facts: Facts, conclusions: Conclusions) -> bool | None:
            a, b = left(facts, conclusions), right(facts, conclusions)
            if a is None or b is None:
                return None
            return op(rank[a], rank[b])

        return ranked

    def compare(facts: Facts, conclusions: Conclusions) -> bool | None:
        a = left(facts, conclusions)
        if a is None:
            return None
        b = right(facts, conclusions)
        if b is None:
            return None
        return op(a, b)

    return compare


def compile_subject_test(expr: Expr, subject: Path | Name, enum_order: EnumOrder | None = None) -> SubjectTest | None:
    """A test as a function of its subject's value, already read and known present; None if it reads more.

    Scorecard bins test one field against constants (`< 1.0`, `[1.0..1.2)`, `'energy', 'infrastructure'`), and
    so do most tests a trace explains (`tier == 'A'`, `not financials.audited`): with the value in hand, such a
    test is plain two-valued Python, exactly what `compile_truth` gives once the value is known. Anything else
    (an ordered enum, arithmetic, another field) returns None and the caller keeps the general truth function.
    """
    if _is_subject(expr, subject):
        return bool  # a boolean field or conclusion used as a condition
    if isinstance(expr, Compare):
        left, right = expr.left, expr.right
        if not (_is_subject(left, subject) and isinstance(right, Literal)):
            return None
        if expr.op in ("<", "<=", ">", ">=") and enum_order is not None and enum_order(left) is not None:
            return None  # ordered enums compare by rank
        return _AGAINST[expr.op](literal_value(right.value))
    if isinstance(expr, Membership):
        if not _is_subject(expr.left, subject):
            return None
        choices = frozenset(literal_value(i.value) for i in expr.right.items)
        negated = expr.negated
        return lambda value: (value in choices) != negated
    if isinstance(expr, BoolOp):
        between = _between(expr, subject, enum_order)
        if between is not None:
            return between
        items = [compile_subject_test(item, subject, enum_order) for item in expr.items]
        if any(item is None for item in items):
            return None
        tests: tuple[SubjectTest, ...] = tuple(items)  # type: ignore[arg-type]
        if len(tests) == 2:  # the common shape (`x < 1 or x > 2`), without a generator
            first, second = tests
            if expr.op == "and":
                return lambda value: first(value) and second(value)
            return lambda value: first(value) or second(value)
        if expr.op == "and":
            return lambda value: all(test(value) for test in tests)
        return lambda value: any(test(value) for test in tests)
    return None


# `value op constant` as one closure per operator (not a closure calling an operator function: one call less).
_AGAINST: dict[str, Callable[[Any], SubjectTest]] = {
    "==": lambda c: lambda v: v == c,
    "!=": lambda c: lambda v: v != c,
    "<": lambda c: lambda v: v < c,
    "<=": lambda c: lambda v: v <= c,
    ">": lambda c: lambda v: v > c,
    ">=": lambda c: lambda v: v >= c,
}


def _between(expr: BoolOp, subject: Path | Name, enum_order: EnumOrder | None) -> SubjectTest | None:
    """A range cell (`[1.0..1.2)`: `x >= 1.0 and x < 1.2`) as one chained comparison; None for any other shape."""
    if expr.op != "and" or len(expr.items) != 2:
        return None
    low, high = expr.items
    if not (isinstance(low, Compare) and isinstance(high, Compare)):
        return None
    if low.op in ("<", "<="):
        low, high = high, low
    if low.op not in (">", ">=") or high.op not in ("<", "<="):
        return None
    for bound in (low, high):
        if not (_is_subject(bound.left, subject) and isinstance(bound.right, Literal)):
            return None
        if enum_order is not None and enum_order(bound.left) is not None:
            return None  # ordered enums compare by rank
    lo, hi = literal_value(low.right.value), literal_value(high.right.value)  # type: ignore[attr-defined]
    if low.op == ">=":
        return (lambda v: lo <= v < hi) if high.op == "<" else (lambda v: lo <= v <= hi)
    return (lambda v: lo < v < hi) if high.op == "<" else (lambda v: lo < v <= hi)


def _is_subject(expr: Expr, subject: Path | Name) -> bool:
    if isinstance(subject, Path):
        return isinstance(expr, Path) and expr.fact == subject.fact and expr.name == subject.name
    return isinstance(expr, Name) and expr.name == subject.name


def leaves(expr: Expr, negated: bool = False) -> list[tuple[Expr, bool]]:
    """The atomic tests of a condition, each with whether it sits under an odd number of `not`s."""
    if isinstance(expr, BoolOp):
        return [leaf for item in expr.items for leaf in leaves(item, negated)]
    if isinstance(expr, Not):
        return leaves(expr.operand, not negated)
    return [(expr, negated)]


def json_number(value: Any) -> Any:
    """Whole floats print as integers (48000000, not 48000000.0); numbers are never rounded."""
    if type(value) is float and value.is_integer() and -(2**53) < value < 2**53:
        return int(value)
    return value


def json_value(value: Any) -> Any:
    """A value as the decision's JSON shows it: dates as ISO text, whole floats as integers."""
    kind = type(value)
    if kind is float:
        return int(value) if value.is_integer() and -(2**53) < value < 2**53 else value
    if kind is str or value is None or kind is bool:
        return value
    if kind is dt.date:
        return value.isoformat()
    if kind is list or kind is tuple:
        return [json_value(v) for v in value]
    return value
