from __future__ import annotations

import pytest

from engine.errors import CredoError, SourceSpan
from engine.expr import parse_expression
from engine.schema import TypeChecker
from tests.engine.helpers import library


def check(expr: str) -> list:
    lib = library()
    checker = TypeChecker(lib.schema)
    checker.condition(parse_expression(expr, SourceSpan("r.yaml", 4, 11)))
    return checker.problems


def test_well_typed_conditions_pass() -> None:
    assert check("financials.dscr >= 1.2 and borrower.industry in ['energy', 'services']") == []
    assert check("not financials.audited or missing(financials.dpd)") == []
    assert check("tier <= 'B' and decision != 'decline' and score > 600") == []
    assert check("borrower.founded < date('2020-01-01')") == []
    assert check("application.amount > 0.2 * borrower.capital") == []


def test_unknown_field_gets_did_you_mean_at_its_column() -> None:
    [p] = check("financials.ebitdaa > 1")
    assert p.code == "unknown-field" and p.hint == "did you mean 'financials.ebitda'?"
    assert (p.span.line, p.span.column) == (4, 11)


def test_unknown_fact_and_conclusion() -> None:
    [p] = check("financial.ebitda > 1")
    assert p.code == "unknown-fact" and "financials" in (p.hint or "")
    [p] = check("teir == 'A'")
    assert p.code == "unknown-conclusion" and "tier" in (p.hint or "")


def test_string_compared_with_number_is_an_error() -> None:
    [p] = check("borrower.name > 5")
    assert p.code == "type-mismatch"
    [p] = check("financials.ebitda == 'high'")
    assert p.code == "type-mismatch"


def test_enum_value_outside_the_enum() -> None:
    [p] = check("borrower.industry == 'enrgy'")
    assert p.code == "enum-value" and "energy" in (p.hint or "")
    [p] = check("tier in ['A', 'F']")
    assert p.code == "enum-value"


def test_conditions_must_be_boolean() -> None:
    [p] = check("financials.ebitda + 1")
    assert p.code == "type-mismatch"


def test_dates_need_days_between_for_arithmetic() -> None:
    [p] = check("borrower.founded + 1 > 3")
    assert p.code == "type-mismatch" and "days_between" in (p.hint or "")


def test_ordering_text_is_an_error() -> None:
    [p] = check("borrower.name < 'm'")
    assert p.code == "type-mismatch"


def test_derived_fields_are_typed_and_ordered() -> None:
    lib = library("""
        ruleset: extra
        derive:
          financials.margin: financials.dscr * 2
          financials.weak: financials.dscr < 1
        rules:
          - id: X
            when: financials.weak and financials.margin > 1
            then: {tier: C}
    """)
    order = [d.dotted for d in lib.schema.derived_order]
    assert order.index("financials.dscr") < order.index("financials.margin")
    assert lib.schema.fields[("financials", "weak")].type == "boolean"


def test_derive_cycle_and_conclusion_reads_are_errors() -> None:
    with pytest.raises(CredoError) as info:
        library("""
            ruleset: extra
            derive:
              financials.p: financials.q + 1
              financials.q: financials.p + 1
              financials.t: score + 1
            rules: []
        """)
    codes = {p.code for p in info.value.problems}
    assert {"derive-cycle", "derive-reads-conclusion"} <= codes


def test_conflicting_declarations() -> None:
    with pytest.raises(CredoError) as info:
        library("""
            ruleset: extra
            facts:
              financials:
                ebitda: integer
            rules: []
        """)
    assert info.value.problems[0].code == "conflicting-declaration"
