"""Compiling units: strata, cycles and the static problems of design section 8."""

from __future__ import annotations

import pytest

from engine.errors import CredoError, SourceSpan
from engine.expr import parse_expression, to_text
from engine.policy import _because
from engine.syntax import Name, Path, walk
from engine.values import compile_truth, compile_value, json_value
from tests.engine.helpers import library, ruleset_unit


def compile_problems(text: str) -> list:
    with pytest.raises(CredoError) as info:
        ruleset_unit(text)
    return info.value.problems


def test_strata_follow_conclusion_reads() -> None:
    unit = ruleset_unit("""
        ruleset: rs
        rules:
          - id: T
            when: financials.dscr < 1
            then: {tier: D}
          - id: D
            when: tier == 'D'
            then: {decision: refer, reasons: [R-DSCR]}
          - id: L
            when: decision == 'refer' and tier != 'A'
            then: {limit_cap: 0}
    """)
    strata = {a.key: a.stratum for a in unit.activations}
    assert strata == {"T": 0, "D": 1, "L": 2}
    assert unit.strata == 3
    assert unit.conclusions_at == ((), ("tier",), ("decision",))


def test_a_cycle_between_conclusions_is_an_error_naming_the_chain() -> None:
    [p] = compile_problems("""
        ruleset: rs
        rules:
          - id: A
            when: tier == 'A'
            then: {decision: approve}
          - id: B
            when: decision == 'approve'
            then: {tier: B}
    """)
    assert p.code == "conclusion-cycle" and "decision -> tier -> decision" in p.message


def test_decline_or_refer_without_reason_is_an_error() -> None:
    [p] = compile_problems("""
        ruleset: rs
        rules:
          - id: NO-WHY
            when: financials.dscr < 1
            then: {decision: decline}
    """)
    assert p.code == "missing-reason" and p.span.line == 4


def test_unknown_output_reason_and_enum_symbol() -> None:
    problems = compile_problems("""
        ruleset: rs
        rules:
          - id: X
            when: financials.dscr < 1
            then: {tierr: A, decision: refer, reasons: [R-DSRC]}
          - id: Y
            when: financials.dscr < 1
            then: {tier: F}
    """)
    by_code = {p.code: p for p in problems}
    assert by_code["unknown-output"].hint == "did you mean 'tier'?"
    assert by_code["unknown-reason"].hint == "did you mean 'R-DSCR'?"
    assert by_code["enum-value"].span.line == 9


def test_duplicate_rule_ids() -> None:
    [p] = compile_problems("""
        ruleset: rs
        rules:
          - id: X
            when: financials.dscr < 1
            then: {tier: D}
          - id: X
            when: financials.dscr < 2
            then: {tier: C}
    """)
    assert p.code == "duplicate-id" and p.span.line == 7


def test_scorecard_outputs_are_read_only() -> None:
    [p] = compile_problems("""
        ruleset: rs
        rules:
          - id: X
            when: financials.dscr < 1
            then: {score: 10}
    """)
    assert p.code == "read-only-conclusion"


def test_text_placeholders_are_checked() -> None:
    problems = compile_problems("""
        ruleset: rs
        reasons:
          R-BAD: "DSCR {financials.dcsr:.2f} and {oops:zz}"
        rules:
          - id: X
            when: financials.dscr < 1
            then: {conditions: ["see {borrower.industry}"]}
    """)
    assert {p.code for p in problems} == {"unknown-field", "text-format"}


def test_null_comparison_hint() -> None:
    [p] = compile_problems("""
        ruleset: rs
        rules:
          - id: X
            when: financials.dpd == null
            then: {tier: D}
    """)
    assert p.code == "expr-null" and "missing(financials.dpd)" in (p.hint or "")


def test_table_warnings_do_not_stop_compilation() -> None:
    unit = ruleset_unit("""
        ruleset: rs
        tables:
          - id: T
            hit: first
            inputs: [financials.ebitda]
            outputs: [tier]
            rows:
              - ["< 1", A]
              - [">= 1", B]
              - [">= 5", C]
    """)
    assert [p.code for p in unit.warnings] == ["unreachable-row"]


def test_unique_table_overlap_is_an_error() -> None:
    problems = compile_problems("""
        ruleset: rs
        tables:
          - id: T
            hit: unique
            inputs: [financials.ebitda]
            outputs: [tier]
            rows:
              - ["< 2", A]
              - [">= 1", B]
    """)
    assert "table-overlap" in {p.code for p in problems}


def test_policy_resolution_errors_name_the_reference() -> None:
    lib = library("""
        policy: p
        rulesets: [test-facts, nope]
    """)
    with pytest.raises(CredoError) as info:
        lib.compile_policy("p")
    assert info.value.problems[0].code == "unknown-document"


def test_effective_dating_picks_the_version_in_force() -> None:
    import datetime as dt

    lib = library(
        """
        ruleset: rs
        effective_to: 2025-12-31
        rules:
          - {id: OLD, when: "financials.dscr > 0", then: {tier: C}}
        """,
        """
        ruleset: rs
        effective_from: 2026-01-01
        rules:
          - {id: NEW, when: "financials.dscr > 0", then: {tier: B}}
        """,
        """
        policy: p
        rulesets: [test-facts, rs]
        """,
    )
    assert lib.compile_policy("p", dt.date(2025, 6, 1)).activations[-1].key == "OLD"
    assert lib.compile_policy("p", dt.date(2026, 6, 1)).activations[-1].key == "NEW"


def test_overlapping_versions_of_one_name_are_ambiguous() -> None:
    with pytest.raises(CredoError) as info:
        library("ruleset: rs\nrules: []\n", "ruleset: rs\nrules: []\neffective_from: 2026-01-01\n")
    assert info.value.problems[0].code == "ambiguous-version"


@pytest.mark.parametrize(
    "text",
    [
        "f.x >= 1.2",
        "f.x in [1, 2]",
        "f.flag",
        "tier == 'A'",
        "tier in ['A', 'B']",
        "tier <= 'B'",
        "score < 560",
        "missing(f.x)",
        "present(f.x)",
        "missing(tier)",
        "f.x < f.y",
        "f.x * 2 > 3",
    ],
)
@pytest.mark.parametrize("negated", [False, True])
def test_trace_explanations_read_each_value_once_and_say_the_same(text: str, negated: bool) -> None:
    """The trace's `because` entries, whatever shortcut explains them, are what truth and values say."""
    order = {"tier": ("A", "B", "C", "D", "E")}

    def enum_order(e: object) -> tuple[str, ...] | None:
        return order.get(getattr(e, "name", ""))

    leaf = parse_expression(text, SourceSpan())
    explain = _because(leaf, negated, enum_order).explain
    truth = compile_truth(leaf, enum_order)
    reads = [n for n in walk(leaf) if isinstance(n, Path | Name)]
    labels = {n.dotted if isinstance(n, Path) else n.name: compile_value(n) for n in reads}  # type: ignore[union-attr]
    for x in (None, 0.0, 1.0, 1.2, 2.0, 3.0):
        for y in (None, 1.5):
            for tier in (None, "A", "C"):
                facts = {"f": {k: v for k, v in (("x", x), ("y", y), ("flag", x and x > 1)) if v is not None}}
                conclusions = {k: v for k, v in (("tier", tier), ("score", x and x * 500)) if v is not None}
                expected = None
                if truth(facts, conclusions) is (not negated):
                    shown = {label: json_value(fn(facts, conclusions)) for label, fn in labels.items()}
                    expected = {"test": ("not " if negated else "") + to_text(leaf), "values": shown}
                assert explain(facts, conclusions) == expected, (facts, conclusions)
