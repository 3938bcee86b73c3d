"""engine.expr: the expression language (design section 2) and table cells (section 3)."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.errors import CredoError, SourceSpan
from engine.expr import (
    ARITY,
    KEYWORDS,
    MAX_DEPTH,
    MAX_LENGTH,
    names_in,
    parse_cell,
    parse_expression,
    paths_in,
    to_text,
)
from engine.syntax import (
    FUNCTIONS,
    Binary,
    BoolOp,
    Call,
    Compare,
    Expr,
    ListLiteral,
    Literal,
    Membership,
    Name,
    Not,
    Path,
    Unary,
)

AT = SourceSpan("rules/tiering.yaml", 7, 11)
SUBJECT_AT = SourceSpan("rules/tiering.yaml", 3, 15)


def parse(text: str) -> Expr:
    return parse_expression(text, AT)


def subject() -> Expr:
    return parse_expression("financials.dscr", SUBJECT_AT)


def cell(text: str) -> Expr | None:
    return parse_cell(text, AT, subject())


def problems(text: str, *, is_cell: bool = False) -> list[tuple[str, int, int]]:
    with pytest.raises(CredoError) as caught:
        cell(text) if is_cell else parse(text)
    return [(p.code, p.span.line, p.span.column) for p in caught.value.problems]


def only_problem(text: str, *, is_cell: bool = False) -> tuple[str, int, str, str | None]:
    """(code, column offset from AT, message, hint) of the single problem; all tests here stay on line AT.line."""
    with pytest.raises(CredoError) as caught:
        cell(text) if is_cell else parse(text)
    [p] = caught.value.problems
    assert p.span.file == AT.file and p.span.line == AT.line
    return p.code, p.span.column - AT.column, p.message, p.hint


def sexpr(e: Expr) -> str:
    """A fully parenthesised, type-strict rendering: shows exactly how the parser grouped things."""
    if isinstance(e, Literal):
        v = e.value
        if isinstance(v, bool):
            return "#t" if v else "#f"
        if isinstance(v, dt.date):
            return f"#{v.isoformat()}"
        if isinstance(v, str):
            return repr(v)
        return f"{v!r}:{type(v).__name__}"
    if isinstance(e, Path):
        return e.dotted
    if isinstance(e, Name):
        return e.name
    if isinstance(e, ListLiteral):
        return "[" + " ".join(sexpr(i) for i in e.items) + "]"
    if isinstance(e, Unary):
        return f"(neg {sexpr(e.operand)})"
    if isinstance(e, Not):
        return f"(not {sexpr(e.operand)})"
    if isinstance(e, (Binary, Compare)):
        return f"({e.op} {sexpr(e.left)} {sexpr(e.right)})"
    if isinstance(e, Membership):
        return f"({'not-in' if e.negated else 'in'} {sexpr(e.left)} {sexpr(e.right)})"
    if isinstance(e, BoolOp):
        return f"({e.op} " + " ".join(sexpr(i) for i in e.items) + ")"
    if isinstance(e, Call):
        return f"({e.func}" + "".join(" " + sexpr(a) for a in e.args) + ")"
    raise TypeError(e)


def depth(e: Expr) -> int:
    """Operators on the longest path from the root to a leaf (as expr.MAX_DEPTH counts them)."""
    children: tuple[Expr, ...] = ()
    if isinstance(e, (Binary, Compare, Membership)):
        children = (e.left, e.right)
    elif isinstance(e, (Unary, Not)):
        children = (e.operand,)
    elif isinstance(e, BoolOp):
        children = e.items
    elif isinstance(e, Call):
        children = e.args
    else:
        return 0
    return 1 + max((depth(c) for c in children), default=0)


# -- literals, paths, names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", "12:int"),
        ("-0.2", "-0.2:float"),
        ("1.5", "1.5:float"),
        ("5e7", "50000000.0:float"),
        ("1E-3", "0.001:float"),
        ("50_000_000", "50000000:int"),
        ("2.5e+3", "2500.0:float"),
        ("- 3", "-3:int"),
        ("'energy'", "'energy'"),
        ('"energy"', "'energy'"),
        (r"'it\'s \"x\" a\\b\nc'", "'it\\'s \"x\" a\\\\b\\nc'"),
        ("'é ü'", "'é ü'"),
        ("true", "#t"),
        ("false", "#f"),
        ("date('2026-01-01')", "#2026-01-01"),
        ('date( "2024-02-29" )', "#2024-02-29"),
        ("financials.dscr", "financials.dscr"),
        ("tier", "tier"),
        ("_x9", "_x9"),
        ("date", "date"),
        ("min", "min"),
    ],
)
def test_atoms(text: str, expected: str) -> None:
    assert sexpr(parse(text)) == expected


def test_literal_values_keep_their_python_types() -> None:
    assert parse("12") == Literal(AT, 12) and type(parse("12").value) is int  # type: ignore[attr-defined]
    assert type(parse("5e7").value) is float  # type: ignore[attr-defined]
    assert parse("date('2026-01-01')").value == dt.date(2026, 1, 1)  # type: ignore[attr-defined]
    assert parse("x in [1, -2.5, 'a', true, date('2026-01-01')]").right == ListLiteral(  # type: ignore[attr-defined]
        AT, (Literal(AT, 1), Literal(AT, -2.5), Literal(AT, "a"), Literal(AT, True), Literal(AT, dt.date(2026, 1, 1)))
    )


# -- precedence ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", "(+ 1:int (* 2:int 3:int))"),
        ("1 * 2 + 3", "(+ (* 1:int 2:int) 3:int)"),
        ("a - b - c", "(- (- a b) c)"),
        ("a / b * c", "(* (/ a b) c)"),
        ("a - (b - c)", "(- a (- b c))"),
        ("(1 + 2) * 3", "(* (+ 1:int 2:int) 3:int)"),
        ("-a * b", "(* (neg a) b)"),
        ("-2 * b", "(* -2:int b)"),
        ("a - -2", "(- a -2:int)"),
        ("a--b", "(- a (neg b))"),
        ("- - a", "(neg (neg a))"),
        ("-(2)", "(neg 2:int)"),
        ("-(a + b)", "(neg (+ a b))"),
        ("a.b + c < d * 2", "(< (+ a.b c) (* d 2:int))"),
        ("a == b + 1", "(== a (+ b 1:int))"),
        ("not a == b", "(not (== a b))"),
        ("not a and b", "(and (not a) b)"),
        ("not not a", "(not (not a))"),
        ("not (a or b)", "(not (or a b))"),
        ("a or b and c", "(or a (and b c))"),
        ("a and b or c", "(or (and a b) c)"),
        ("a and b and c", "(and a b c)"),
        ("a or b or c and d", "(or a b (and c d))"),
        ("(a and b) and c", "(and (and a b) c)"),
        ("a and (b and c)", "(and a (and b c))"),
        ("a or not b in ['x']", "(or a (not (in b ['x'])))"),
        ("x not in [1, 2] or y", "(or (not-in x [1:int 2:int]) y)"),
        ("x + 1 in [2]", "(in (+ x 1:int) [2:int])"),
        ("(a < b) == c", "(== (< a b) c)"),
        ("a < b and b < c", "(and (< a b) (< b c))"),
        ("min(a, b + 1) * 2", "(* (min a (+ b 1:int)) 2:int)"),
        ("max(a, b, c) / abs(-x)", "(/ (max a b c) (abs (neg x)))"),
        ("round(x.y / 3, 2)", "(round (/ x.y 3:int) 2:int)"),
        ("present(a.b) or missing(c)", "(or (present a.b) (missing c))"),
        ("days_between(a.start, date('2026-01-01')) > 30", "(> (days_between a.start #2026-01-01) 30:int)"),
        ("financials.audited", "financials.audited"),
        ("not financials.audited", "(not financials.audited)"),
        ("((a))", "a"),
        ("a>=1", "(>= a 1:int)"),
        ("a!=b", "(!= a b)"),
        ("a<=1", "(<= a 1:int)"),
    ],
)
def test_precedence(text: str, expected: str) -> None:
    assert sexpr(parse(text)) == expected


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("(a + b) * c", "(a + b) * c"),
        ("a + (b * c)", "a + b * c"),
        ("((a))", "a"),
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("not (a and b)", "not (a and b)"),
        ("(not a) == b", "(not a) == b"),
        ("(a and b) or c", "a and b or c"),
        ("a and (b or c)", "a and (b or c)"),
        ("x   in['a',\"b\"]", "x in ['a', 'b']"),
        ("-(2)", "-(2)"),
        ("-  2", "-2"),
        ("5e7", "50000000.0"),
        ("50_000_000", "50000000"),
        ('"it\'s"', "'it\\'s'"),
        ("min( a ,b )", "min(a, b)"),
        ("a  <\n  b", "a < b"),
    ],
)
def test_to_text_is_canonical_with_minimal_parentheses(text: str, canonical: str) -> None:
    assert to_text(parse(text)) == canonical


# -- spans -------------------------------------------------------------------------------------------


def test_every_node_points_at_its_first_token() -> None:
    e = parse("a.b + min(c, -2) * (d - 1)")
    assert isinstance(e, Binary)
    assert e.span == AT
    assert e.left.span == AT
    mul = e.right
    assert isinstance(mul, Binary) and mul.span == AT.shifted(6)
    call = mul.left
    assert isinstance(call, Call) and call.span == AT.shifted(6)
    assert call.args[0].span == AT.shifted(10)
    assert call.args[1] == Literal(AT, -2) and call.args[1].span == AT.shifted(13)
    group = mul.right
    assert isinstance(group, Binary) and group.span == AT.shifted(20)  # inside the parentheses
    assert group.right.span == AT.shifted(24)


def test_spans_across_lines() -> None:
    text = "financials.dscr >= 1.2\n  and (credit.max_dpd_12m\n\t + 1) < min(a, b)\n or x not in ['y']"
    e = parse(text)
    assert isinstance(e, BoolOp) and e.op == "or" and e.span == AT
    both, member = e.items
    assert isinstance(both, BoolOp) and both.span == AT
    first, second = both.items
    assert isinstance(first, Compare) and first.right.span == SourceSpan(AT.file, 7, 11 + 19)
    assert isinstance(second, Compare)
    assert second.span == SourceSpan(AT.file, 8, 7)  # the '(' that opens its left side
    grouped = second.left
    assert isinstance(grouped, Binary)
    assert grouped.span == SourceSpan(AT.file, 8, 8)
    assert grouped.right.span == SourceSpan(AT.file, 9, 5)  # columns restart at 1 after a newline; a tab is 1
    assert second.right.span == SourceSpan(AT.file, 9, 10)
    assert isinstance(second.right, Call) and second.right.args[1].span == SourceSpan(AT.file, 9, 17)
    assert isinstance(member, Membership) and member.span == SourceSpan(AT.file, 10, 5)
    assert member.right.span == SourceSpan(AT.file, 10, 14)
    assert member.right.items[0].span == SourceSpan(AT.file, 10, 15)


def test_problem_on_a_later_line() -> None:
    assert problems("a and\n   b.c.d") == [("expr-bad-path", 8, 4)]
    assert problems("a and\n\n  (b +") == [("expr-syntax", 9, 7)]


# -- problems --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "column", "message"),
    [
        ("financials.dscr >", "expr-syntax", 17, "expected an operand after '>', found end of expression"),
        ("financials.dscr >  ", "expr-syntax", 17, "expected an operand after '>', found end of expression"),
        ("", "expr-syntax", 0, "expected an expression, found end of expression"),
        ("a b", "expr-syntax", 2, "expected an operator or end of expression, found 'b'"),
        ("a + * b", "expr-syntax", 4, "expected an operand after '+', found '*'"),
        ("(a + b", "expr-syntax", 6, "expected ')' to close the '(' at 7:11, found end of expression"),
        ("a + b)", "expr-syntax", 5, "unmatched ')'"),
        ("a in b", "expr-syntax", 5, "expected a list such as ['a', 'b'] after 'in', found 'b'"),
        ("a not in 'x'", "expr-syntax", 9, "expected a list such as ['a', 'b'] after 'not in', found string 'x'"),
        ("a in ['x' 'y']", "expr-syntax", 10, "expected ',' or ']' in the list, found string 'y'"),
        ("a in ['x', b]", "expr-syntax", 11, "a list may hold only literal values"),
        ("a in ['x',]", "expr-syntax", 10, "a list may hold only literal values"),
        ("['a'] == x", "expr-syntax", 0, "a list such as ['a', 'b'] is only allowed after 'in' or 'not in'"),
        ("a < not b", "expr-syntax", 4, "expected an operand after '<', found 'not'"),
        ("a not b", "expr-syntax", 2, "expected an operator or end of expression, found 'not'"),
        ("a = 1", "expr-syntax", 2, "unexpected character '='"),
        ("a && b", "expr-syntax", 2, "unexpected character '&'"),
        ("a ? b", "expr-syntax", 2, "unexpected character '?'"),
        ("'open", "expr-syntax", 0, "unterminated string"),
        ("x == 'a\\tb'", "expr-syntax", 7, "unknown escape '\\t' in a string"),
        ("12abc", "expr-syntax", 0, "malformed number '12abc'"),
        ("1__0", "expr-syntax", 0, "malformed number '1__0'"),
        ("1.5.2", "expr-syntax", 0, "malformed number '1.5.2'"),
        ("1e999", "expr-syntax", 0, "number out of range"),
        ("x > " + "9" * 500, "expr-syntax", 4, "number out of range"),
        ("a ..b", "expr-syntax", 2, "expected an operator or end of expression, found '..'"),
        ("min(a b)", "expr-syntax", 6, "expected ',' or ')' in the arguments of min(), found 'b'"),
        ("date(x)", "expr-syntax", 5, "expected a quoted date such as '2026-01-01' after 'date(', found 'x'"),
        ("date('2026-01-01', 1)", "expr-syntax", 17, "expected ')' after the date, found ','"),
        ("present(a + 1)", "expr-syntax", 8, "present() takes a field path or a conclusion name, found a + 1"),
        ("True", "expr-syntax", 0, "'True' is not a literal; booleans are written true and false"),
        ("x == null", "expr-null", 5, "there is no null literal ('null')"),
        ("None", "expr-null", 0, "there is no null literal ('None')"),
        ("min(nil, 2)", "expr-null", 4, "there is no null literal ('nil')"),
        ("mni(a, b)", "expr-unknown-function", 0, "unknown function 'mni'"),
        ("a.b(1)", "expr-unknown-function", 0, "'a.b' is a path, not a function"),
        ("min(a)", "expr-arity", 0, "min() takes at least 2 arguments, got 1"),
        ("max()", "expr-arity", 0, "max() takes at least 2 arguments, got 0"),
        ("x + abs(a, b)", "expr-arity", 4, "abs() takes exactly 1 argument, got 2"),
        ("round(a, 1, 2)", "expr-arity", 0, "round() takes 1 or 2 arguments, got 3"),
        ("present()", "expr-arity", 0, "present() takes exactly 1 argument, got 0"),
        ("days_between(a)", "expr-arity", 0, "days_between() takes exactly 2 arguments, got 1"),
        ("a < b < c", "expr-chained-comparison", 6, "comparisons cannot be chained; use and"),
        ("a == b in [1]", "expr-chained-comparison", 7, "comparisons cannot be chained; use and"),
        ("x > date('2026-02-30')", "expr-bad-date", 9, "'2026-02-30' is not a valid date"),
        ("date('2026-1-1')", "expr-bad-date", 5, "'2026-1-1' is not a valid date"),
        ("x in [date('20260101')]", "expr-bad-date", 11, "'20260101' is not a valid date"),
        ("a.b.c > 1", "expr-bad-path", 0, "a path has exactly two parts, fact.field; 'a.b.c' has 3"),
        ("1 + a.", "expr-bad-path", 4, "expected a field name after '.' in 'a.'"),
        ("a.9x", "expr-bad-path", 0, "'9x' is not a valid field name in 'a.9x'"),
        ("(" * 65 + "a" + ")" * 65, "expr-too-deep", 64, "nested more than 64 levels deep"),
        ("-" * 65 + "a", "expr-too-deep", 64, "nested more than 64 levels deep"),
        ("not " * 70 + "a", "expr-too-deep", 4 * 64, "nested more than 64 levels deep"),
        ("abs(" * 70 + "a" + ")" * 70, "expr-too-deep", 4 * 64, "nested more than 64 levels deep"),
        ("+".join(["1"] * 66), "expr-too-deep", 2 * 65 - 1, "nested more than 64 levels deep"),  # the 65th '+'
        ("-(" * 33 + "a" + ")" * 33, "expr-too-deep", 64, "nested more than 64 levels deep"),
        ("x" * (MAX_LENGTH + 1), "expr-too-long", 0, "the expression is 10001 characters long; the limit is 10000"),
    ],
)
def test_problem_code_column_and_message(text: str, code: str, column: int, message: str) -> None:
    got_code, got_column, got_message, _ = only_problem(text)
    assert (got_code, got_column) == (code, column)
    assert message in got_message


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("financials.ebitda == null", "missing(financials.ebitda)"),
        ("financials.ebitda != null", "present(financials.ebitda)"),
        ("null == tier", "missing(tier)"),
        ("a.b + 1 != NULL", "present(a.b + 1)"),
        ("x > null", "missing(x)"),
        ("null", "missing(x)"),
        ("mni(a, b)", "did you mean 'min'?"),
        ("day_between(a, b)", "did you mean 'days_between'?"),
        ("a = b", "use == to compare"),
        ("a && b", "use and"),
        ("a || b", "use or"),
        ("!a", "use not"),
        ("a.b.c", "a.b"),
        ("False", "write false"),
    ],
)
def test_hints(text: str, hint: str) -> None:
    assert only_problem(text)[3] == hint


def test_semantic_problems_are_collected_together() -> None:
    assert problems("a.b.c == null and mni(1) > 0 and min(1) < 2 < 3 or x > date('2026-13-01')") == [
        ("expr-bad-path", 7, 11),
        ("expr-null", 7, 20),
        ("expr-unknown-function", 7, 29),
        ("expr-arity", 7, 44),
        ("expr-chained-comparison", 7, 55),  # the second '<'
        ("expr-bad-date", 7, 71),  # the date's string
    ]


def test_credo_error_formats_file_line_column() -> None:
    with pytest.raises(CredoError) as caught:
        parse("financials.dscr >")
    assert str(caught.value) == (
        "rules/tiering.yaml:7:28: expr-syntax: expected an operand after '>', found end of expression"
    )


def test_limits_are_exact() -> None:
    parse("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
    parse("-" * MAX_DEPTH + "a")
    parse("+".join(["1"] * (MAX_DEPTH + 1)))  # 64 operators: a tree 64 deep
    parse("a and " * 1600 + "a")  # flattened: one BoolOp, however long
    long = "x" + " " * (MAX_LENGTH - 1)
    assert parse(long) == Name(AT, "x")


@pytest.mark.parametrize(
    "text",
    [
        "(" * 5000,
        "(" * 4999 + "a" + ")" * 4999,
        "-" * 9999 + "1",
        "1+" * 4999 + "1",
        "not " * 2499 + "a",
        "min(" * 2000,
        "a in [" + "1," * 4000 + "1]",
    ],
)
def test_pathological_inputs_raise_credo_error_only(text: str) -> None:
    assert len(text) <= MAX_LENGTH
    with contextlib.suppress(CredoError):
        parse(text)


def test_arity_table_covers_every_function() -> None:
    assert set(ARITY) == FUNCTIONS


# -- cells -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("< 1.5", "(< financials.dscr 1.5:float)"),
        (">= 1.2", "(>= financials.dscr 1.2:float)"),
        ("== 0", "(== financials.dscr 0:int)"),
        ("!= 'x'", "(!= financials.dscr 'x')"),
        ("<=-1", "(<= financials.dscr -1:int)"),
        ("< 0.5 * borrower.registered_capital", "(< financials.dscr (* 0.5:float borrower.registered_capital))"),
        (">= date('2026-01-01')", "(>= financials.dscr #2026-01-01)"),
        ("[1.0..1.5)", "(and (>= financials.dscr 1.0:float) (< financials.dscr 1.5:float))"),
        ("(0..10]", "(and (> financials.dscr 0:int) (<= financials.dscr 10:int))"),
        ("[a..b]", "(and (>= financials.dscr a) (<= financials.dscr b))"),
        ("(-1 .. 2 * x.y)", "(and (> financials.dscr -1:int) (< financials.dscr (* 2:int x.y)))"),
        ("[x.lo..x.hi)", "(and (>= financials.dscr x.lo) (< financials.dscr x.hi))"),
        ("'energy', 'infrastructure'", "(in financials.dscr ['energy' 'infrastructure'])"),
        ("'energy'", "(== financials.dscr 'energy')"),
        ("3", "(== financials.dscr 3:int)"),
        ("-3", "(== financials.dscr -3:int)"),
        ("true", "(== financials.dscr #t)"),
        ("1, 2, -3", "(in financials.dscr [1:int 2:int -3:int])"),
        ("x.y * 2", "(== financials.dscr (* x.y 2:int))"),
        ("date('2026-01-01')", "(== financials.dscr #2026-01-01)"),
        ("not 'real_estate'", "(not-in financials.dscr ['real_estate'])"),
        ("not 'a', 'b'", "(not-in financials.dscr ['a' 'b'])"),
        ("not x.y", "(!= financials.dscr x.y)"),
    ],
)
def test_cells(text: str, expected: str) -> None:
    result = cell(text)
    assert result is not None
    assert sexpr(result) == expected


@pytest.mark.parametrize("text", ["-", " - ", "\t-\n"])
def test_any_cell(text: str) -> None:
    assert cell(text) is None


def test_cell_spans_point_into_the_cell_and_keep_the_subject() -> None:
    test = cell("  >= 1.2")
    assert isinstance(test, Compare) and test.span == AT.shifted(2)
    assert test.left.span == SUBJECT_AT and test.right.span == AT.shifted(5)
    rng = cell("[1.0..1.5)")
    assert isinstance(rng, BoolOp) and rng.span == AT
    low, high = rng.items
    assert low.span == AT and high.span == AT.shifted(6)
    member = cell("not 'a', 'b'")
    assert isinstance(member, Membership) and member.span == AT
    assert member.right.span == AT.shifted(4) and member.right.items[1].span == AT.shifted(9)


@pytest.mark.parametrize(
    ("text", "code", "column", "message"),
    [
        ("", "expr-syntax", 0, "empty cell; write '-' for any value"),
        ("<", "expr-syntax", 1, "expected an operand after '<', found end of cell"),
        ("< 1 or > 2", "expr-syntax", 4, "expected end of cell, found 'or'"),
        ("< 1 < 2", "expr-syntax", 4, "expected end of cell, found '<'"),
        ("['a', 'b']", "expr-syntax", 0, "expected a range such as [1.0..1.5)"),
        ("[1..2", "expr-syntax", 5, "expected ']' or ')' to close the range, found end of cell"),
        ("[1, 2..3]", "expr-syntax", 2, "expected '..' between the bounds of a range, found ','"),
        ("[1..2] x", "expr-syntax", 7, "expected end of cell, found 'x'"),
        ("1..2", "expr-syntax", 1, "expected ',' or end of cell, found '..'"),
        ("'a' 'b'", "expr-syntax", 4, "expected ',' or end of cell, found string 'b'"),
        ("'a', x.y", "expr-syntax", 5, "a list of values may hold only literals"),
        ("not", "expr-syntax", 3, "expected an operand after 'not', found end of cell"),
        ("and", "expr-syntax", 0, "expected a test such as"),
        ("== null", "expr-null", 3, "there is no null literal"),
        ("[date('2026-02-31')..date('2027-01-01'))", "expr-bad-date", 6, "not a valid date"),
        ("unknown(1)", "expr-unknown-function", 0, "unknown function 'unknown'"),
        ("< " + "x" * MAX_LENGTH, "expr-too-long", 0, "the cell is 10002 characters long"),
    ],
)
def test_cell_problems(text: str, code: str, column: int, message: str) -> None:
    got_code, got_column, got_message, _ = only_problem(text, is_cell=True)
    assert (got_code, got_column) == (code, column)
    assert message in got_message


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("null", "missing(financials.dscr)"),
        ("== null", "missing(financials.dscr)"),
        ("!= None", "present(financials.dscr)"),
        ("not null", "present(financials.dscr)"),
        ("'a', null", "missing(x)"),
    ],
)
def test_cell_null_hints(text: str, hint: str) -> None:
    assert only_problem(text, is_cell=True)[3] == hint


# -- paths_in / names_in -------------------------------------------------------------------------------


def test_paths_and_names_in_source_order_once() -> None:
    e = parse("b.y > a.x and tier in ['A'] or min(a.x, score, c.z) > b.y + score and not present(d.w) and grade")
    assert [p.dotted for p in paths_in(e)] == ["b.y", "a.x", "c.z", "d.w"]
    assert [n.name for n in names_in(e)] == ["tier", "score", "grade"]
    assert paths_in(e)[0].span == AT  # the first occurrence is kept
    assert paths_in(parse("1 + 2")) == [] and names_in(parse("a.b")) == []


def test_paths_in_a_cell_include_the_subject() -> None:
    result = cell("[x.lo..x.hi)")
    assert result is not None
    assert [p.dotted for p in paths_in(result)] == ["financials.dscr", "x.lo", "x.hi"]


# -- to_text details ---------------------------------------------------------------------------------


def test_to_text_of_hand_built_trees() -> None:
    s = SourceSpan()
    a, b, c = Name(s, "a"), Name(s, "b"), Name(s, "c")
    assert to_text(Unary(s, "-", Literal(s, 2))) == "-(2)"
    assert to_text(Unary(s, "-", Literal(s, -2.5))) == "-(-2.5)"
    assert to_text(Unary(s, "-", Unary(s, "-", a))) == "--a"
    assert to_text(Binary(s, "-", a, Literal(s, -1))) == "a - -1"
    assert to_text(BoolOp(s, "and", (BoolOp(s, "and", (a, b)), c))) == "(a and b) and c"
    assert to_text(BoolOp(s, "and", (BoolOp(s, "or", (a, b)), Not(s, c)))) == "(a or b) and not c"
    assert to_text(Compare(s, "<", Compare(s, "<", a, b), c)) == "(a < b) < c"
    assert to_text(Literal(s, "a'b\\c\nd")) == "'a\\'b\\\\c\\nd'"
    assert to_text(Literal(s, dt.date(999, 1, 2))) == "date('0999-01-02')"
    with pytest.raises(ValueError):
        to_text(Literal(s, float("inf")))


# -- properties ----------------------------------------------------------------------------------------

_RESERVED = KEYWORDS | {"null", "None", "nil", "NULL", "Null", "True", "False", "TRUE", "FALSE"}
_NO_SPAN = SourceSpan()
_idents = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
_names = _idents.filter(lambda s: s not in _RESERVED).map(lambda s: Name(_NO_SPAN, s))
_paths = st.builds(lambda f, n: Path(_NO_SPAN, f, n), _idents, _idents)
_scalars = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.booleans(),
    st.dates(),
)
_literals = _scalars.map(lambda v: Literal(_NO_SPAN, v))
_lists = st.lists(_literals, max_size=4).map(lambda items: ListLiteral(_NO_SPAN, tuple(items)))


def _calls(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    def call(func: str, args: list[Expr]) -> Expr:
        return Call(_NO_SPAN, func, tuple(args))

    presence = st.sampled_from(["present", "missing"])
    return st.one_of(
        st.builds(call, st.sampled_from(["min", "max"]), st.lists(children, min_size=2, max_size=3)),
        st.builds(call, st.just("abs"), st.lists(children, min_size=1, max_size=1)),
        st.builds(call, st.just("round"), st.lists(children, min_size=1, max_size=2)),
        st.builds(call, st.just("days_between"), st.lists(children, min_size=2, max_size=2)),
        st.builds(call, presence, st.lists(st.one_of(_paths, _names), min_size=1, max_size=1)),
    )


def _extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return st.one_of(
        st.builds(lambda e: Unary(_NO_SPAN, "-", e), children),
        st.builds(lambda e: Not(_NO_SPAN, e), children),
        st.builds(lambda op, a, b: Binary(_NO_SPAN, op, a, b), st.sampled_from("+-*/"), children, children),
        st.builds(
            lambda op, a, b: Compare(_NO_SPAN, op, a, b),
            st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
            children,
            children,
        ),
        st.builds(lambda neg, a, items: Membership(_NO_SPAN, neg, a, items), st.booleans(), children, _lists),
        st.builds(
            lambda op, items: BoolOp(_NO_SPAN, op, tuple(items)),
            st.sampled_from(["and", "or"]),
            st.lists(children, min_size=2, max_size=4),
        ),
        _calls(children),
    )


expressions: st.SearchStrategy[Expr] = st.recursive(st.one_of(_literals, _paths, _names), _extend, max_leaves=20)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_to_text_round_trips(expr: Expr) -> None:
    assume(depth(expr) <= MAX_DEPTH)
    text = to_text(expr)
    assume(len(text) <= MAX_LENGTH)
    back = parse_expression(text, AT)
    assert back == expr
    assert sexpr(back) == sexpr(expr)  # type-strict: 1, 1.0 and true stay apart
    assert to_text(back) == text


@settings(deadline=None)
@given(_literals, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
def test_cell_comparison_with_any_literal(value: Literal, op: str) -> None:
    result = cell(f"{op} {to_text(value)}")
    assert result == Compare(AT, op, subject(), value)


@settings(deadline=None)
@given(st.lists(_literals, min_size=2, max_size=4), st.booleans())
def test_cell_value_lists_with_any_literals(values: list[Literal], negated: bool) -> None:
    text = ("not " if negated else "") + ", ".join(to_text(v) for v in values)
    assert cell(text) == Membership(AT, negated, subject(), ListLiteral(AT, tuple(values)))


_SOUP = [
    "a", "x.y", "a.b.c", "1", "-", "2.5", "5e7", "1_0", "'s'", '"t"', "true", "false", "null", "date",
    "date('2026-01-01')",
    "(", ")", "[", "]", ",", "..", "and", "or", "not", "in", "==", "!=", "<", "<=", ">", ">=", "+", "*", "/",
    "min", "abs(", "round", "present", "missing(", "days_between", "\n", " ", "'", "\\", "=", "!", "é", "\x00", "1e",
]  # fmt: skip
_token_soup = st.lists(st.sampled_from(_SOUP), max_size=30).map(lambda parts: " ".join(parts)) | st.lists(
    st.sampled_from(_SOUP), max_size=30
).map("".join)


def _check_only_credo_error(text: str, *, is_cell: bool) -> None:
    try:
        cell(text) if is_cell else parse(text)
    except CredoError as error:
        for p in error.problems:
            assert p.code.startswith("expr-")
            assert p.span.file == AT.file
            assert AT.line <= p.span.line <= AT.line + text.count("\n")
            assert p.span.column >= 1


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=60), _token_soup))
def test_arbitrary_text_only_raises_credo_error(text: str) -> None:
    _check_only_credo_error(text, is_cell=False)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=60), _token_soup))
def test_arbitrary_cell_text_only_raises_credo_error(text: str) -> None:
    _check_only_credo_error(text, is_cell=True)
