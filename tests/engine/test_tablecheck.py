"""engine.tablecheck: dead rows, overlaps and gaps in decision tables, gaps and overlaps in scorecard bins.

Cells are built from the syntax classes directly (what engine.expr's parse_cell returns),
so these tests do not depend on the parser.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable, Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import Problem, SourceSpan
from engine.model import Bin, Characteristic, FieldDecl, Table, TableRow
from engine.schema import Schema
from engine.syntax import (
    Binary,
    BoolOp,
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
from engine.tablecheck import ANY, GAP_HINT, MISSING, Finding, check_bins, check_table, table_findings

AT = SourceSpan("rulesets/grid.yaml", 1, 1)
TABLE_AT = SourceSpan("rulesets/grid.yaml", 10, 5)

Cell = Callable[[Expr], Expr] | None


def decl(dotted: str, type_name: str, **options: object) -> FieldDecl:
    fact, name = dotted.split(".")
    return FieldDecl(fact, name, type_name, AT, **options)  # type: ignore[arg-type]


SCHEMA = Schema()
for _decl in (
    decl("financials.dscr", "number"),
    decl("financials.leverage", "number", derived=Literal(AT, 1.0), optional=True),
    decl("financials.current_ratio", "number", optional=True),
    decl("financials.debt_service", "number", minimum=0),
    decl("financials.audited", "boolean", optional=True),
    decl("financials.consolidated", "boolean"),
    decl("credit.max_dpd_12m", "integer"),
    decl("credit.defaults_5y", "integer", optional=True),
    decl("borrower.industry", "enum", values=("energy", "infrastructure", "real_estate", "services")),
    decl("borrower.registered_capital", "number", minimum=0),
    decl("borrower.legal_form", "string"),
    decl("borrower.founded", "date"),
):
    SCHEMA.fields[(_decl.fact, _decl.name)] = _decl


def path(dotted: str) -> Path:
    fact, name = dotted.split(".")
    return Path(AT, fact, name)


def lit(value: object) -> Literal:
    return Literal(AT, value)  # type: ignore[arg-type]


# Cell builders: each takes the column's subject, like parse_cell does.
def lt(x: object) -> Cell:
    return lambda s: Compare(AT, "<", s, x if isinstance(x, Expr) else lit(x))


def le(x: object) -> Cell:
    return lambda s: Compare(AT, "<=", s, x if isinstance(x, Expr) else lit(x))


def gt(x: object) -> Cell:
    return lambda s: Compare(AT, ">", s, x if isinstance(x, Expr) else lit(x))


def ge(x: object) -> Cell:
    return lambda s: Compare(AT, ">=", s, x if isinstance(x, Expr) else lit(x))


def eq(x: object) -> Cell:
    return lambda s: Compare(AT, "==", s, lit(x))


def ne(x: object) -> Cell:
    return lambda s: Compare(AT, "!=", s, lit(x))


def between(lo: object, hi: object, closed: str = "[)") -> Cell:
    """`[lo..hi)` and friends."""
    return lambda s: BoolOp(AT, "and", (Compare(AT, ">=" if closed[0] == "[" else ">", s, lit(lo)),
                                        Compare(AT, "<=" if closed[1] == "]" else "<", s, lit(hi))))


def any_of(*values: object) -> Cell:
    return lambda s: Membership(AT, False, s, ListLiteral(AT, tuple(lit(v) for v in values)))


def none_of(*values: object) -> Cell:
    return lambda s: Membership(AT, True, s, ListLiteral(AT, tuple(lit(v) for v in values)))


def negated(cell: Cell) -> Cell:
    assert cell is not None
    return lambda s: Not(AT, cell(s))


DASH: Cell = None


def table(hit: str, inputs: Sequence[str | Expr], rows: Sequence[Sequence[Cell]]) -> Table:
    subjects = tuple(path(i) if isinstance(i, str) else i for i in inputs)
    built = []
    for number, cells in enumerate(rows, 1):
        tests = tuple(None if cell is None else cell(subject) for cell, subject in zip(cells, subjects, strict=True))
        texts = tuple("-" if cell is None else "cell" for cell in cells)
        built.append(TableRow(number, tests, texts, (), SourceSpan("rulesets/grid.yaml", 10 + number, 9)))
    return Table("GRID", hit, subjects, ("tier",), tuple(built), TABLE_AT)


def codes(problems: Sequence[Problem]) -> list[str]:
    return [p.code for p in problems]


# --- unreachable rows (hit: first) ------------------------------------------------------------------------------------


def test_row_shadowed_by_one_earlier_row() -> None:
    problems = check_table(table("first", ["financials.dscr"], [[ge(1.0)], [ge(1.5)], [lt(1.0)]]), SCHEMA)
    assert codes(problems) == ["unreachable-row"]
    (dead,) = problems
    assert dead.message == "row 2 can never fire: row 1 already covers it"
    assert dead.severity == "warning"
    assert dead.span == SourceSpan("rulesets/grid.yaml", 12, 9)


def test_row_shadowed_by_a_union_of_rows() -> None:
    problems = check_table(table("first", ["financials.dscr"], [[lt(1)], [ge(1)], [DASH]]), SCHEMA)
    assert [p.message for p in problems] == ["row 3 can never fire: rows 1, 2 already cover it"]


def test_union_shadowing_across_columns_names_a_minimal_set_of_rows() -> None:
    rows = [
        [lt(1), DASH],
        [ge(1), eq("energy")],
        [ge(5), DASH],  # meets row 4 but is not needed to cover it
        [ge(1), ne("energy")],
        [ge(0.5), any_of("energy", "real_estate")],
    ]
    findings = table_findings(table("first", ["financials.dscr", "borrower.industry"], rows), SCHEMA)
    dead = [f for f in findings if f.problem.code == "unreachable-row"]
    assert [f.rows for f in dead] == [(5, 1, 2, 4)]
    assert dead[0].problem.message == "row 5 can never fire: rows 1, 2, 4 already cover it"


def test_a_dash_row_stays_reachable_for_a_missing_value() -> None:
    for field in ("financials.current_ratio", "financials.leverage"):  # optional, derived
        problems = check_table(table("first", [field], [[lt(1)], [ge(1)], [DASH]]), SCHEMA)
        assert problems == [], field


def test_a_row_covered_except_for_missing_values_is_reachable_but_a_dash_row_after_a_dash_row_is_not() -> None:
    rows = [[DASH, lt(1)], [DASH, ge(1)], [eq(True), DASH], [DASH, DASH], [DASH, DASH]]
    problems = check_table(table("first", ["financials.audited", "financials.current_ratio"], rows), SCHEMA)
    assert [p.message for p in problems] == ["row 5 can never fire: row 4 already covers it"]


def test_integer_reasoning_makes_rows_equal() -> None:
    problems = check_table(table("first", ["credit.max_dpd_12m"], [[gt(0)], [ge(1)], [DASH]]), SCHEMA)
    assert [p.message for p in problems] == ["row 2 can never fire: row 1 already covers it"]
    # ... but not for real numbers: 0.5 is > 0 and not >= 1
    assert check_table(table("first", ["financials.dscr"], [[ge(1)], [gt(0)], [DASH]]), SCHEMA) == []


def test_a_row_no_value_passes_can_never_fire_under_any_hit_policy() -> None:
    for hit in ("first", "unique", "collect"):
        rows = [[between(2, 1)], [DASH]]
        problems = check_table(table(hit, ["credit.max_dpd_12m"], rows), SCHEMA)
        assert codes(problems) == ["unreachable-row"], hit
        assert problems[0].message.startswith("row 1 can never fire: no value of credit.max_dpd_12m passes")
    # on an integer field, (1..2) holds no value either
    assert codes(check_table(table("collect", ["credit.max_dpd_12m"], [[between(1, 2, "()")]]), SCHEMA)) == [
        "unreachable-row"]


def test_min_bound_of_a_field_limits_its_values() -> None:
    # debt_service has min 0: `< 0` holds no value, and `== 0`, `> 0` cover every value
    problems = check_table(table("first", ["financials.debt_service"], [[lt(0)], [eq(0)], [gt(0)]]), SCHEMA)
    assert codes(problems) == ["unreachable-row"]


# --- overlaps (hit: unique) -------------------------------------------------------------------------------------------


def test_unique_overlap_names_both_rows_and_an_example() -> None:
    rows = [
        [between(1.0, 1.5), any_of("energy", "infrastructure")],
        [ge(1.5), DASH],
        [ge(1.3), eq("energy")],
        [lt(1.0), DASH],
        [between(1.0, 1.5), any_of("real_estate", "services")],
    ]
    findings = table_findings(table("unique", ["financials.dscr", "borrower.industry"], rows), SCHEMA)
    overlaps = [f for f in findings if f.problem.code == "table-overlap"]
    assert [f.rows for f in overlaps] == [(1, 3)]
    problem = overlaps[0].problem
    assert problem.message == "rows 1 and 3 both match financials.dscr = 1.4, borrower.industry = 'energy'"
    assert problem.severity == "error"
    assert problem.span == SourceSpan("rulesets/grid.yaml", 13, 9)
    assert overlaps[0].example == (1.4, "energy")
    assert [f.problem.code for f in findings] == ["table-overlap"]  # and no gap: the rows cover every input


def test_unique_rows_that_touch_at_a_closed_bound_overlap() -> None:
    problems = check_table(table("unique", ["financials.dscr"], [[le(1.5)], [ge(1.5)]]), SCHEMA)
    assert [p.message for p in problems] == ["rows 1 and 2 both match financials.dscr = 1.5"]
    assert check_table(table("unique", ["financials.dscr"], [[le(1.5)], [gt(1.5)]]), SCHEMA) == []


def test_unique_overlap_leaves_out_columns_where_both_rows_are_dash() -> None:
    rows = [[lt(2), DASH], [gt(1), DASH]]
    problems = check_table(table("unique", ["financials.dscr", "borrower.industry"], rows), SCHEMA)
    assert [p.message for p in problems] == ["rows 1 and 2 both match financials.dscr = 1.5"]


def test_unique_disjoint_integer_rows_do_not_overlap() -> None:
    rows = [[le(30)], [between(31, 90, "[]")], [gt(90)]]
    assert check_table(table("unique", ["credit.max_dpd_12m"], rows), SCHEMA) == []
    assert codes(check_table(table("unique", ["financials.dscr"], rows), SCHEMA)) == ["table-gap"]  # (30..31)


# --- gaps -------------------------------------------------------------------------------------------------------------


def test_gap_at_a_bound_left_open_on_both_sides() -> None:
    problems = check_table(table("first", ["financials.dscr"], [[lt(1.5)], [gt(1.5)]]), SCHEMA)
    assert len(problems) == 1
    gap = problems[0]
    assert (gap.code, gap.severity, gap.span, gap.hint) == ("table-gap", "warning", TABLE_AT, GAP_HINT)
    assert gap.message == "no row matches financials.dscr = 1.5"
    assert check_table(table("first", ["financials.dscr"], [[le(1.5)], [gt(1.5)]]), SCHEMA) == []


def test_gap_between_two_ranges_gives_a_value_inside_it() -> None:
    rows = [[lt(0.9), DASH], [ge(1.0), le(30)], [ge(1.0), gt(30)]]
    findings = table_findings(table("unique", ["financials.dscr", "credit.max_dpd_12m"], rows), SCHEMA)
    assert [f.problem.message for f in findings] == ["no row matches financials.dscr = 0.95, credit.max_dpd_12m = 29"]
    assert findings[0].example == (0.95, 29)


def test_gap_in_an_enum_column() -> None:
    rows = [[any_of("energy", "infrastructure")], [eq("real_estate")]]
    problems = check_table(table("first", ["borrower.industry"], rows), SCHEMA)
    assert [p.message for p in problems] == ["no row matches borrower.industry = 'services'"]
    complete = [[none_of("energy", "services")], [any_of("energy", "services")]]
    assert check_table(table("unique", ["borrower.industry"], complete), SCHEMA) == []


def test_enum_order_comparisons() -> None:
    rows = [[lt("real_estate")], [ge("real_estate")], [DASH]]  # declared order: energy < infrastructure < ...
    problems = check_table(table("first", ["borrower.industry"], rows), SCHEMA)
    assert [p.message for p in problems] == ["row 3 can never fire: rows 1, 2 already cover it"]


def test_boolean_gaps_and_missing_values() -> None:
    problems = check_table(table("first", ["financials.consolidated"], [[eq(True)]]), SCHEMA)
    assert [p.message for p in problems] == ["no row matches financials.consolidated = false"]
    both = [[eq(True)], [negated(eq(True))]]
    assert check_table(table("first", ["financials.consolidated"], both), SCHEMA) == []
    # an optional field can be missing, and only `-` takes a missing value
    problems = check_table(table("first", ["financials.audited"], both), SCHEMA)
    assert [p.message for p in problems] == ["no row matches financials.audited is missing"]


def test_missing_values_are_gaps_only_for_optional_or_derived_fields() -> None:
    rows = [[lt(1)], [ge(1)]]
    assert check_table(table("first", ["financials.dscr"], rows), SCHEMA) == []
    for field in ("financials.current_ratio", "financials.leverage"):
        problems = check_table(table("first", [field], rows), SCHEMA)
        assert [p.message for p in problems] == [f"no row matches {field} is missing"]


def test_present_and_missing_gaps_are_reported_apart() -> None:
    rows = [[lt(1), eq(True)], [ge(1), DASH]]
    findings = table_findings(table("first", ["financials.dscr", "financials.audited"], rows), SCHEMA)
    assert [f.problem.message for f in findings] == [
        "no row matches financials.dscr = 0, financials.audited = false",
        "no row matches financials.dscr = 0, financials.audited is missing",
    ]
    assert findings[1].example == (0, MISSING)


def test_integer_fields_have_no_values_between_integers() -> None:
    assert check_table(table("first", ["credit.max_dpd_12m"], [[gt(0)], [le(0)]]), SCHEMA) == []
    assert check_table(table("first", ["credit.max_dpd_12m"], [[lt(1)], [ge(1)]]), SCHEMA) == []
    assert check_table(table("unique", ["credit.max_dpd_12m"], [[ge(1)], [le(0)]]), SCHEMA) == []
    problems = check_table(table("unique", ["financials.dscr"], [[ge(1)], [le(0)]]), SCHEMA)
    assert [p.message for p in problems] == ["no row matches financials.dscr = 0.5"]
    problems = check_table(table("unique", ["credit.max_dpd_12m"], [[ge(2)], [le(0)]]), SCHEMA)
    assert [p.message for p in problems] == ["no row matches credit.max_dpd_12m = 1"]


def test_min_bound_closes_a_gap() -> None:
    assert check_table(table("first", ["borrower.registered_capital"], [[eq(0)], [gt(0)]]), SCHEMA) == []
    problems = check_table(table("first", ["financials.dscr"], [[eq(0)], [gt(0)]]), SCHEMA)
    assert [p.message for p in problems] == ["no row matches financials.dscr = -1"]


def test_string_and_date_columns() -> None:
    problems = check_table(table("first", ["borrower.legal_form"], [[any_of("llc", "plc")]]), SCHEMA)
    assert [p.message for p in problems] == ["no row matches borrower.legal_form not in ['llc', 'plc']"]
    assert check_table(table("first", ["borrower.legal_form"], [[eq("llc")], [ne("llc")]]), SCHEMA) == []
    day = dt.date(2026, 1, 1)
    problems = check_table(table("first", ["borrower.founded"], [[lt(day)], [gt(day)]]), SCHEMA)
    assert [p.message for p in problems] == ["no row matches borrower.founded = date('2026-01-01')"]
    findings = table_findings(table("first", ["borrower.founded"], [[ge(day)]]), SCHEMA)
    assert findings[0].example == (dt.date(2025, 12, 31),)


def test_collect_tables_skip_gap_checks() -> None:
    assert check_table(table("collect", ["financials.dscr"], [[lt(1.5)], [gt(1.5)]]), SCHEMA) == []
    # nor are rows shadowed under collect: every matching row fires
    assert check_table(table("collect", ["financials.dscr"], [[DASH], [lt(1)]]), SCHEMA) == []


def test_a_catch_all_row_suppresses_gap_warnings() -> None:
    rows = [[ge(1.5), eq("energy")], [DASH, DASH]]
    assert check_table(table("first", ["financials.current_ratio", "borrower.industry"], rows), SCHEMA) == []


def test_a_table_without_rows_is_all_gap() -> None:
    problems = check_table(table("first", ["financials.dscr"], []), SCHEMA)
    assert [p.message for p in problems] == ["no row matches financials.dscr = 0"]


# --- what cannot be analysed ------------------------------------------------------------------------------------------

CAPITAL_SHARE = Binary(AT, "*", lit(0.5), path("borrower.registered_capital"))


def test_non_literal_bounds_never_give_false_findings() -> None:
    dscr = ["financials.dscr"]
    # A gap below 1 only if 0.5 * capital <= some value below 1: unknown, so no gap.
    assert check_table(table("first", dscr, [[lt(CAPITAL_SHARE)], [ge(1)]]), SCHEMA) == []
    # Row 2 may or may not be covered by row 1.
    assert check_table(table("first", dscr, [[lt(CAPITAL_SHARE)], [lt(1)], [ge(1)]]), SCHEMA) == []
    # The rows may or may not overlap.
    problems = check_table(table("unique", dscr, [[lt(CAPITAL_SHARE)], [ge(1)], [lt(1)]]), SCHEMA)
    assert codes(problems) == []
    # Literal cells in the same column are still analysed: row 3 is dead whatever row 1 holds.
    problems = check_table(table("first", dscr, [[lt(CAPITAL_SHARE)], [lt(1)], [lt(0.5)], [ge(1)]]), SCHEMA)
    assert [p.message for p in problems] == ["row 3 can never fire: row 2 already covers it"]
    # A gap the unknown cell cannot close is still a gap.
    problems = check_table(table("unique", [*dscr, "financials.consolidated"],
                                 [[lt(CAPITAL_SHARE), eq(True)], [ge(1), DASH]]), SCHEMA)
    assert [p.message for p in problems] == ["no row matches financials.dscr = 0, financials.consolidated = false"]


def test_inputs_that_are_not_declared_fields_are_opaque() -> None:
    for subject in (Name(AT, "tier"), path("financials.unknown"), Unary(AT, "-", path("financials.dscr"))):
        rows = [[eq("A")], [eq("B")]]
        assert check_table(table("first", [subject], rows), SCHEMA) == [], subject
        assert check_table(table("unique", [subject], [[eq("A")], [eq("A")]]), SCHEMA) == []
        # `-` is known even there: a later row is dead after a catch-all
        problems = check_table(table("first", [subject], [[DASH], [eq("A")]]), SCHEMA)
        assert [p.message for p in problems] == ["row 2 can never fire: row 1 already covers it"]
    findings = table_findings(table("unique", [Name(AT, "tier"), "financials.dscr"], [[DASH, lt(1)], [DASH, gt(1)]]),
                              SCHEMA)
    assert [f.problem.message for f in findings] == ["no row matches financials.dscr = 1"]
    assert findings[0].example == (ANY, 1)


def test_cells_of_the_wrong_type_are_unknown() -> None:
    rows = [[eq("energy")], [lt(1)]]  # a string compared with a number: the type checker reports it
    assert check_table(table("first", ["financials.dscr"], rows), SCHEMA) == []
    rows = [[lt("zzz")], [DASH]]  # not a value of the enum, so no order
    assert check_table(table("first", ["borrower.industry"], rows), SCHEMA) == []


# --- scorecard bins ---------------------------------------------------------------------------------------------------


def characteristic(field: str, *bins: tuple[str, Cell] | str) -> Characteristic:
    subject = path(field)
    built = []
    for k, spec in enumerate(bins):
        span = SourceSpan("rulesets/scorecard.yaml", 20 + k, 9)
        if spec == "missing":
            built.append(Bin(None, -5, span, "missing", missing=True))
        elif spec == "else":
            built.append(Bin(None, 0, span, "else", otherwise=True))
        else:
            text, cell = spec  # type: ignore[misc]
            built.append(Bin(cell(subject), 10, span, text))  # type: ignore[misc]
    return Characteristic(subject, tuple(built), SourceSpan("rulesets/scorecard.yaml", 19, 5))


def test_bins_that_leave_values_out() -> None:
    char = characteristic("financials.dscr", ("< 1.0", lt(1.0)), ("[1.0..1.2)", between(1.0, 1.2)),
                          ("[1.3..1.5)", between(1.3, 1.5)), ("> 1.5", gt(1.5)))
    problems = check_bins(char, SCHEMA)
    assert [(p.code, p.severity, p.message) for p in problems] == [
        ("bin-gap", "warning", "no bin takes these values of financials.dscr: [1.2..1.3), 1.5 (they score 0 points)")]
    assert problems[0].span == char.span


def test_bins_on_integers_and_enums() -> None:
    char = characteristic("credit.max_dpd_12m", ("< 3", lt(3)), ("[4..10)", between(4, 10)), (">= 10", ge(10)))
    assert [p.message for p in check_bins(char, SCHEMA)] == [
        "no bin takes these values of credit.max_dpd_12m: 3 (they score 0 points)"]
    char = characteristic("credit.max_dpd_12m", ("< 3", lt(3)), ("[3..10)", between(3, 10)), (">= 10", ge(10)))
    assert check_bins(char, SCHEMA) == []
    char = characteristic("borrower.industry", ("energy", any_of("energy", "infrastructure")))
    assert [p.message for p in check_bins(char, SCHEMA)] == [
        "no bin takes these values of borrower.industry: 'real_estate', 'services' (they score 0 points)"]


def test_bins_for_a_field_that_can_be_missing() -> None:
    whole = (("< 1", lt(1)), (">= 1", ge(1)))
    problems = check_bins(characteristic("financials.current_ratio", *whole), SCHEMA)
    assert [(p.code, p.message) for p in problems] == [
        ("bin-gap", "financials.current_ratio can be missing (it is optional), but no bin takes a missing value")]
    problems = check_bins(characteristic("financials.leverage", *whole), SCHEMA)
    assert [p.message for p in problems] == [
        "financials.leverage can be missing (a derived field), but no bin takes a missing value"]
    assert check_bins(characteristic("financials.leverage", *whole, "missing"), SCHEMA) == []
    assert check_bins(characteristic("financials.dscr", *whole), SCHEMA) == []  # required


def test_an_else_bin_takes_everything() -> None:
    assert check_bins(characteristic("financials.current_ratio", ("< 1", lt(1)), "else"), SCHEMA) == []


def test_overlapping_bins() -> None:
    char = characteristic("financials.dscr", ("< 1", lt(1)), ("<= 1.5", le(1.5)), ("< 1.2", lt(1.2)),
                          (">= 1.5", ge(1.5)))
    problems = check_bins(char, SCHEMA)
    assert [(p.code, p.severity, p.span.line, p.message) for p in problems] == [
        ("bin-overlap", "warning", 21, "bin 2 ('<= 1.5') overlaps bin 1 ('< 1') at financials.dscr = 0: "
                                       "the earlier bin takes those values"),
        ("bin-overlap", "warning", 22, "bin 3 ('< 1.2') never takes a value: earlier bins take every value of "
                                       "financials.dscr it holds"),
        ("bin-overlap", "warning", 23, "bin 4 ('>= 1.5') overlaps bin 2 ('<= 1.5') at financials.dscr = 1.5: "
                                       "the earlier bin takes those values"),
    ]


def test_bins_with_unknown_bounds_or_fields_report_nothing_false() -> None:
    char = characteristic("borrower.registered_capital", ("< x", lt(CAPITAL_SHARE)), (">= 1", ge(1)))
    assert check_bins(char, SCHEMA) == []
    assert check_bins(characteristic("financials.nope", ("< 1", lt(1))), SCHEMA) == []


# --- size -------------------------------------------------------------------------------------------------------------


def test_a_200_row_table_is_fast() -> None:
    inputs = ["financials.dscr", "financials.leverage", "credit.max_dpd_12m", "financials.audited"]
    rows: list[list[Cell]] = []
    for a, b, c in itertools.product(range(5), range(5), range(4)):
        for audited in (True, False):
            rows.append([between(a, a + 1) if a < 4 else ge(4), between(b, b + 1) if b < 4 else ge(4),
                         between(c * 30, c * 30 + 30) if c < 3 else ge(90), eq(audited)])
    assert len(rows) == 200
    grid = table("unique", inputs, rows)
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        problems = check_table(grid, SCHEMA)
        best = min(best, time.process_time() - start)
    # dscr < 0, leverage missing, ...: the grid only covers present values from 0 up
    assert codes(problems) == ["table-gap", "table-gap"]
    assert best < 0.5, best  # typically ~10 ms; generous for loaded machines
    first = table("first", inputs, [*rows, [DASH, DASH, DASH, DASH], [lt(1), DASH, DASH, DASH]])
    problems = check_table(first, SCHEMA)
    assert [p.message for p in problems] == ["row 202 can never fire: row 201 already covers it"]


# --- properties: agreement with brute force ---------------------------------------------------------------------------


class _Missing:
    pass


ABSENT = _Missing()


def evaluate(expr: Expr, env: dict[tuple[str, str], object]) -> object:
    """Three-valued evaluation, written independently of the module under test: None is unknown."""
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, Path):
        return env.get((expr.fact, expr.name), ABSENT)
    if isinstance(expr, Binary):
        left, right = evaluate(expr.left, env), evaluate(expr.right, env)
        if left is ABSENT or right is ABSENT:
            return ABSENT
        return {"+": lambda: left + right, "-": lambda: left - right, "*": lambda: left * right,  # type: ignore
                "/": lambda: left / right}[expr.op]()  # type: ignore
    if isinstance(expr, Compare):
        left, right = evaluate(expr.left, env), evaluate(expr.right, env)
        if left is ABSENT or right is ABSENT:
            return None
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right,  # type: ignore
                "==": left == right, "!=": left != right}[expr.op]
    if isinstance(expr, Membership):
        left = evaluate(expr.left, env)
        if left is ABSENT:
            return None
        return (left in [item.value for item in expr.right.items]) != expr.negated
    if isinstance(expr, BoolOp):
        values = [evaluate(item, env) for item in expr.items]
        if expr.op == "and":
            return False if False in values else None if None in values else True
        return True if True in values else None if None in values else False
    if isinstance(expr, Not):
        value = evaluate(expr.operand, env)
        return None if value is None else not value
    raise AssertionError(expr)


PROPERTY_FIELDS = [("p", f"x{i}") for i in range(3)]


ENUM_VALUES = ("a", "b", "c")  # declared in alphabetical order, so Python's string order is the enum's order


def property_schema(types: Sequence[tuple[str, bool]]) -> Schema:
    schema = Schema()
    for (fact, name), (type_name, optional) in zip(PROPERTY_FIELDS, types, strict=False):
        values = ENUM_VALUES if type_name == "enum" else ()
        schema.fields[(fact, name)] = FieldDecl(fact, name, type_name, AT, values=values, optional=optional)
    schema.fields[("aux", "k")] = FieldDecl("aux", "k", "number", AT)
    return schema


def grid_points(type_name: str, optional: bool) -> list[object]:
    """Values that meet every atom the cells below can make: bounds are whole numbers in 0..5."""
    points: list[object] = {
        "number": [x / 2 for x in range(-2, 13)],
        "integer": list(range(-1, 7)),
        "enum": list(ENUM_VALUES),
    }[type_name]
    return [*points, ABSENT] if optional else points


AUX = Path(AT, "aux", "k")


@st.composite
def cells(draw: st.DrawFn, type_name: str, opaque: bool) -> Cell:
    kinds = ["dash", "compare", "compare", "range", "in", "ne", *(["opaque"] * 2 if opaque else [])]
    kind = draw(st.sampled_from(kinds))
    bound: st.SearchStrategy[object] = st.integers(0, 5)
    if type_name == "enum":
        bound = st.sampled_from(ENUM_VALUES)
    if kind == "dash":
        return DASH
    if kind == "compare":
        op, x = draw(st.sampled_from(["<", "<=", ">", ">=", "=="])), draw(bound)
        return lambda s: Compare(AT, op, s, lit(x))
    if kind == "ne":
        return ne(draw(bound))
    if kind == "range":
        lo, hi = sorted((draw(bound), draw(bound)))  # type: ignore[type-var]
        if draw(st.integers(0, 9)) == 0:
            lo, hi = hi, lo  # sometimes empty
        return between(lo, hi, draw(st.sampled_from(["[)", "[]", "(]", "()"])))
    if kind == "in":
        values = draw(st.lists(bound, min_size=1, max_size=3, unique=True))
        return none_of(*values) if draw(st.booleans()) else any_of(*values)
    op = draw(st.sampled_from(["<", "<=", ">", ">="]))
    return lambda s: Compare(AT, op, s, AUX)


@st.composite
def random_tables(draw: st.DrawFn, opaque: bool = False) -> tuple[Table, Schema, list[tuple[str, bool]]]:
    """1-3 inputs (numbers, integers, sometimes an enum), 1-5 rows, hit first or unique."""
    width = draw(st.integers(1, 2 if opaque else 3))
    kinds = st.sampled_from(["number", "integer"] if opaque else ["number", "number", "integer", "integer", "enum"])
    types = [(draw(kinds), draw(st.booleans())) for _ in range(width)]
    height = draw(st.integers(1, 5))
    rows = [[draw(cells(type_name, opaque)) for type_name, _ in types] for _ in range(height)]
    hit = draw(st.sampled_from(["first", "unique"]))
    inputs = [Path(AT, fact, name) for fact, name in PROPERTY_FIELDS[:width]]
    return table(hit, inputs, rows), property_schema(types), types


def row_matches(row: TableRow, inputs: Sequence[Expr], point: Sequence[object], k: float) -> bool:
    env: dict[tuple[str, str], object] = {("aux", "k"): k}
    for subject, value in zip(inputs, point, strict=True):
        assert isinstance(subject, Path)
        if value is not ABSENT:
            env[(subject.fact, subject.name)] = value
    return all(test is None or evaluate(test, env) is True for test in row.tests)


def row_matches_cell(test: Expr | None, subject: Expr, value: object, k: float) -> bool:
    assert isinstance(subject, Path)
    env: dict[tuple[str, str], object] = {("aux", "k"): k}
    if value is not ABSENT:
        env[(subject.fact, subject.name)] = value
    return test is None or evaluate(test, env) is True


def as_point(example: tuple[object, ...]) -> tuple[object, ...]:
    return tuple(ABSENT if value is MISSING else value for value in example)


class BruteForce:
    def __init__(self, grid: Table, types: Sequence[tuple[str, bool]], k: float = 0.0) -> None:
        self.table, self.k = grid, k
        columns = [grid_points(t, o) for t, o in types]
        # Each cell reads one input (and aux.k): decide it once per value of its input.
        passes = [[{value for value in values if row_matches_cell(test, subject, value, k)}
                   for test, subject, values in zip(row.tests, grid.inputs, columns, strict=True)]
                  for row in grid.rows]
        self.matching = {
            point: [row.number for row, ok in zip(grid.rows, passes, strict=True)
                    if all(value in cell for value, cell in zip(point, ok, strict=True))]
            for point in itertools.product(*columns)
        }

    def matches(self, number: int, point: tuple[object, ...]) -> bool:
        row = next(r for r in self.table.rows if r.number == number)
        return row_matches(row, self.table.inputs, point, self.k)

    def dead_rows(self) -> set[int]:
        """Rows that fire for no point (under first: as the first matching row)."""
        fires = set()
        for matched in self.matching.values():
            if self.table.hit == "first":
                fires.update(matched[:1])
            else:
                fires.update(matched)
        return {r.number for r in self.table.rows} - fires

    def overlapping_later_rows(self) -> set[int]:
        return {later for matched in self.matching.values() for later in matched[1:]}

    def gaps(self) -> tuple[bool, bool]:
        """(a point of present values no row matches, a point with a missing value no row matches)."""
        uncovered = [p for p, matched in self.matching.items() if not matched]
        return (any(ABSENT not in p for p in uncovered), any(ABSENT in p for p in uncovered))


def split(findings: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {"unreachable-row": [], "table-overlap": [], "table-gap": []}
    for finding in findings:
        out[finding.problem.code].append(finding)
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_tables())
def test_findings_agree_with_brute_force(drawn: tuple[Table, Schema, list[tuple[str, bool]]]) -> None:
    grid, schema, types = drawn
    brute = BruteForce(grid, types)
    found = split(table_findings(grid, schema))

    dead = {f.rows[0] for f in found["unreachable-row"]}
    if grid.hit == "first":
        assert dead == brute.dead_rows()
    else:  # under unique only rows that match nothing are dead
        assert dead == {n for n in brute.dead_rows() if not any(n in m for m in brute.matching.values())}
    for finding in found["unreachable-row"]:
        number, cover = finding.rows[0], finding.rows[1:]
        for point, matched in brute.matching.items():
            if number in matched:
                assert set(matched) & set(cover), (finding.problem.message, point)

    if grid.hit == "unique":
        assert {f.rows[1] for f in found["table-overlap"]} == brute.overlapping_later_rows()
        for finding in found["table-overlap"]:
            assert finding.example is not None
            point = as_point(finding.example)
            assert brute.matches(finding.rows[0], point) and brute.matches(finding.rows[1], point)
    else:
        assert found["table-overlap"] == []

    catch_all = any(all(t is None for t in row.tests) for row in grid.rows)
    present_gap, missing_gap = brute.gaps()
    gaps = found["table-gap"]
    if catch_all:
        assert gaps == []
    else:
        assert [f for f in gaps if MISSING not in (f.example or ())] == ([gaps[0]] if present_gap else [])
        assert any(MISSING in (f.example or ()) for f in gaps) == missing_gap
        for finding in gaps:
            assert finding.example is not None
            point = as_point(finding.example)
            assert not any(brute.matches(r.number, point) for r in grid.rows), finding.problem.message


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_tables(opaque=True))
def test_unknown_cells_never_give_false_findings(drawn: tuple[Table, Schema, list[tuple[str, bool]]]) -> None:
    """Whatever value the unknown bound takes, every finding holds."""
    grid, schema, types = drawn
    findings = table_findings(grid, schema)
    for k in (x / 2 for x in range(-2, 13)):
        brute = BruteForce(grid, types, k)
        for finding in findings:
            code = finding.problem.code
            if code == "unreachable-row":
                number, cover = finding.rows[0], finding.rows[1:]
                for matched in brute.matching.values():
                    if number in matched:
                        assert cover and set(matched) & set(cover), (finding.problem.message, k)
            elif code == "table-overlap":
                point = as_point(finding.example or ())
                assert brute.matches(finding.rows[0], point) and brute.matches(finding.rows[1], point)
            else:
                point = as_point(finding.example or ())
                assert not any(brute.matches(r.number, point) for r in grid.rows), (finding.problem.message, k)
