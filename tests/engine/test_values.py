"""The reference semantics: three-valued logic, nulls in arithmetic, enum order."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.errors import SourceSpan
from engine.expr import parse_expression
from engine.values import compile_subject_test, compile_truth, compile_value, round_half_even

SPAN = SourceSpan()
ORDER = {"tier": ("A", "B", "C", "D", "E")}


def truth(expr: str, facts: dict | None = None, **conclusions: object) -> bool | None:
    def enum_order(e: object) -> tuple[str, ...] | None:
        return ORDER.get(getattr(e, "name", ""))

    return compile_truth(parse_expression(expr, SPAN), enum_order)(facts or {}, conclusions)


def value(expr: str, facts: dict | None = None) -> object:
    return compile_value(parse_expression(expr, SPAN))(facts or {}, {})


@pytest.mark.parametrize(
    ("left", "right", "and_", "or_"),
    [
        (True, None, None, True),
        (False, None, False, None),
        (None, None, None, None),
        (True, False, False, True),
    ],
)
def test_kleene_truth_table(left: bool | None, right: bool | None, and_: bool | None, or_: bool | None) -> None:
    facts = {"f": {k: v for k, v in (("a", left), ("b", right)) if v is not None}}
    assert truth("f.a and f.b", facts) is and_
    assert truth("f.a or f.b", facts) is or_
    assert truth("not f.a", facts) is (None if left is None else not left)


def test_missing_operands_make_comparisons_unknown_but_presence_known() -> None:
    assert truth("f.x > 1", {"f": {}}) is None
    assert truth("f.x != 1", {"f": {}}) is None
    assert truth("missing(f.x)", {"f": {}}) is True
    assert truth("present(f.x)", {"f": {}}) is False


def test_arithmetic_nulls_and_division_by_zero() -> None:
    assert value("f.x / f.y", {"f": {"x": 6.0, "y": 0.0}}) is None
    assert value("f.x / f.y", {"f": {"x": 6.0, "y": -12.0}}) == -0.5
    assert value("f.x + 1", {"f": {}}) is None
    assert value("min(f.x, 3)", {"f": {"x": 5.0}}) == 3
    assert value("max(f.x, f.y)", {"f": {"x": 5.0}}) is None
    assert value("abs(-2.5)") == 2.5


def test_round_is_half_even_like_numpy() -> None:
    assert round_half_even(2.5, 0) == 2.0 and round_half_even(3.5, 0) == 4.0
    assert value("round(f.x, 1)", {"f": {"x": 0.25}}) == 0.2


def test_enum_order_and_dates() -> None:
    assert truth("tier <= 'B'", tier="A") is True
    assert truth("tier > 'C'", tier="B") is False
    facts = {"b": {"founded": dt.date(2020, 1, 1)}}
    assert truth("b.founded < date('2021-01-01')", facts) is True
    assert value("days_between(b.founded, date('2020-03-01'))", facts) == 60


SUBJECT_TESTS = [
    "f.x < 1.2",
    "f.x >= 1.2",
    "f.x == 2",
    "f.x != 2",
    "f.x >= 1.0 and f.x < 1.5",
    "f.x > 1.0 and f.x <= 1.5",
    "f.x < 1.5 and f.x >= 1.0",
    "f.x >= 1.0 and f.x <= 1.5",
    "f.x > 1.0 and f.x < 1.5",
    "f.x < 1.0 or f.x > 2.0",
    "f.x > 0 and f.x < 5 and f.x != 2",
    "f.x in [1, 2, 3]",
    "f.x not in [1, 2]",
]


@pytest.mark.parametrize("text", SUBJECT_TESTS)
def test_a_test_on_a_present_subject_is_its_truth(text: str) -> None:
    """compile_subject_test (the scorecard's and the trace's shortcut) agrees with compile_truth on every value."""
    expr = parse_expression(text, SPAN)
    subject = parse_expression("f.x", SPAN)
    test = compile_subject_test(expr, subject)  # type: ignore[arg-type]
    assert test is not None
    full = compile_truth(expr)
    for x in (-1.0, 0.0, 0.5, 1.0, 1.1, 1.2, 1.5, 1.7, 2.0, 3.0, 5.0, 6.0):
        assert test(x) is full({"f": {"x": x}}, {}), x


def test_subject_tests_leave_other_shapes_to_the_truth_function() -> None:
    def enum_order(e: object) -> tuple[str, ...] | None:
        return ORDER.get(getattr(e, "name", ""))

    subject = parse_expression("f.x", SPAN)
    for text in ("f.x > f.y", "f.x * 2 > 1", "f.y > 1", "f.x > 1 and f.y > 1", "missing(f.x)"):
        assert compile_subject_test(parse_expression(text, SPAN), subject) is None, text  # type: ignore[arg-type]
    tier = parse_expression("tier", SPAN)
    assert compile_subject_test(parse_expression("tier <= 'B'", SPAN), tier, enum_order) is None  # type: ignore[arg-type]
    equal = compile_subject_test(parse_expression("tier == 'B'", SPAN), tier, enum_order)  # type: ignore[arg-type]
    assert equal is not None and equal("B") is True and equal("C") is False
    flag = compile_subject_test(parse_expression("f.x", SPAN), subject)  # type: ignore[arg-type]
    assert flag is bool
