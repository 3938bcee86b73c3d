"""The decision flow: strata, combine rules, hit policies, defaults, errors, texts and the trace.

Every test runs on both back-ends: the durable_rules network and the reference interpreter.
"""

from __future__ import annotations

import datetime as dt

import pytest

from engine.errors import CredoError
from engine.evaluate import decide, evaluate
from tests.engine.helpers import case, library, ruleset_unit

ENGINES = ["rete", "reference"]
AS_OF = dt.date(2026, 6, 30)

POLICY = """
policy: test-policy
rulesets: [test-facts, rs]
defaults: {decision: refer}
on_error: decline
pricing: {base_rate: 0.035}
limit: {requested: application.amount}
outputs:
  covenant: {type: string, combine: unique}
"""

RULES = """
ruleset: rs
rules:
  - id: D-DSCR
    when: financials.dscr < 1.2
    then: {decision: decline, reasons: [R-DSCR]}
  - id: R-IND
    when: borrower.industry == 'real_estate'
    then: {decision: refer, reasons: [R-IND], rate_add_bps: 50}
  - id: A-OK
    when: financials.dscr >= 1.2
    then: {decision: approve}
  - id: CAP-A
    when: tier == 'A'
    then: {limit_cap: 0.5 * borrower.capital, conditions: ["Annual review at {financials.dscr:.1f}x"]}
  - id: CAP-ALL
    when: present(tier)
    then: {limit_cap: 2 * borrower.capital, rate_add_bps: 25}
tables:
  - id: TIER
    hit: first
    inputs: [financials.dscr, borrower.industry]
    outputs: [tier]
    rows:
      - [">= 1.5", "'energy'", A]
      - [">= 1.2", "-", B]
      - ["-", "-", D]
"""


def policy_unit():
    lib = library(RULES, POLICY)
    return lib.compile_policy("test-policy", AS_OF)


@pytest.mark.parametrize("engine", ENGINES)
def test_approve_with_strata_and_combines(engine: str) -> None:
    d = decide(policy_unit(), case(), AS_OF, engine)
    assert d["outcome"] == "approve" and d["tier"] == "A"
    # limit = min(requested, min(caps)) = min(1e6, 2.5e6, 1e7)
    assert d["limit"] == 1_000_000
    assert d["rate"] == pytest.approx(0.035 + 25 / 10000)
    assert d["conditions"] == ["Annual review at 1.5x"]
    assert d["reasons"] == []
    assert [f["rule"] for f in d["fired"]] == ["A-OK", "TIER/1", "CAP-A", "CAP-ALL"]
    assert d["fired"][0]["because"] == [{"test": "financials.dscr >= 1.2", "values": {"financials.dscr": 1.5}}]


@pytest.mark.parametrize("engine", ENGINES)
def test_worst_decision_wins_and_reasons_cite_rules(engine: str) -> None:
    c = case(financials__ebitda=200, borrower__industry="real_estate")
    d = decide(policy_unit(), c, AS_OF, engine)
    assert d["outcome"] == "decline" and d["limit"] is None and d["rate"] is None
    assert d["reasons"] == [
        {"code": "R-DSCR", "text": "DSCR 1.00 is below 1.2", "rule": "D-DSCR"},
        {"code": "R-IND", "text": "Industry real_estate needs review", "rule": "R-IND"},
    ]
    assert d["tier"] == "D"


@pytest.mark.parametrize("engine", ENGINES)
def test_first_hit_keeps_the_lowest_true_row(engine: str) -> None:
    d = decide(policy_unit(), case(financials__ebitda=260), AS_OF, engine)  # dscr 1.3: rows 2 and 3 are true
    assert d["tier"] == "B"
    assert "TIER/3" not in [f["rule"] for f in d["fired"]]


@pytest.mark.parametrize("engine", ENGINES)
def test_default_applies_with_a_system_reason(engine: str) -> None:
    c = case(financials__debt_service=0)  # dscr = x / 0 = null: no decision rule is true
    d = decide(policy_unit(), c, AS_OF, engine)
    assert d["outcome"] == "refer"
    assert [r["code"] for r in d["reasons"]] == ["R-DEFAULT"]
    assert d["tier"] == "D"  # the catch-all row takes a missing value


@pytest.mark.parametrize("engine", ENGINES)
def test_unique_conflict_goes_to_on_error(engine: str) -> None:
    covenant_rules = """\
  - id: COV-1
    when: application.amount > 0
    then: {covenant: tight}
  - id: COV-2
    when: application.amount > 10
    then: {covenant: loose}
"""
    lib = library(RULES.replace("tables:\n", covenant_rules + "tables:\n", 1), POLICY)
    d = decide(lib.compile_policy("test-policy", AS_OF), case(), AS_OF, engine)
    assert d["outcome"] == "decline"
    assert d["error"]["code"] == "unique-conflict"
    assert [r["code"] for r in d["reasons"]] == ["R-ERROR"]


@pytest.mark.parametrize("engine", ENGINES)
def test_ruleset_alone_sees_given_conclusions(engine: str) -> None:
    unit = ruleset_unit("""
        ruleset: rs
        rules:
          - id: LOW
            when: score < 600 and tier >= 'D'
            then: {decision: refer, reasons: [R-IND]}
    """)
    c = case()
    c.update(score=590, tier="E")
    result = evaluate(unit, c, AS_OF, engine, allow_conclusions=True)
    assert result.conclusions["decision"] == "refer" and result.fired == ["LOW"]


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_values_are_unknown_and_present_missing_are_not(engine: str) -> None:
    unit = ruleset_unit("""
        ruleset: rs
        rules:
          - id: NE
            when: financials.dpd != 0
            then: {conditions: [ne]}
          - id: NOT-GT
            when: not (financials.dpd > 5)
            then: {conditions: [not-gt]}
          - id: MISS
            when: missing(financials.dpd)
            then: {conditions: [miss]}
          - id: UNAUDITED
            when: not financials.audited
            then: {conditions: [unaudited]}
    """)
    result = evaluate(unit, case(financials__dpd=None, financials__audited=None), AS_OF, engine)
    assert result.conclusions["conditions"] == ["miss"]
    result = evaluate(unit, case(financials__dpd=3, financials__audited=False), AS_OF, engine)
    assert result.conclusions["conditions"] == ["ne", "not-gt", "unaudited"]


@pytest.mark.parametrize("engine", ENGINES)
def test_collect_table_and_sum(engine: str) -> None:
    unit = ruleset_unit("""
        ruleset: rs
        tables:
          - id: SPREAD
            hit: collect
            inputs: [borrower.industry, financials.dscr]
            outputs: [rate_add_bps]
            rows:
              - ["'energy'", "-", 10]
              - ["-", "< 2", 15]
              - ["'services'", "-", 99]
    """)
    result = evaluate(unit, case(), AS_OF, engine)
    assert result.conclusions["rate_add_bps"] == 25
    assert result.fired == ["SPREAD/1", "SPREAD/2"]


@pytest.mark.parametrize("engine", ENGINES)
def test_alerts_collect_with_interpolated_messages(engine: str) -> None:
    unit = ruleset_unit("""
        ruleset: rs
        rules:
          - id: EW-DSCR
            when: financials.dscr < 2
            then:
              alerts: [{code: EW-DSCR, severity: high, message: "DSCR {financials.dscr:.2f}, {borrower.founded}"}]
    """)
    d = decide(unit, case(), AS_OF, engine)
    assert d["alerts"] == [{"code": "EW-DSCR", "severity": "high", "message": "DSCR 1.50, n/a"}]


@pytest.mark.parametrize("engine", ENGINES)
def test_cross_fact_arithmetic_comparison(engine: str) -> None:
    unit = ruleset_unit("""
        ruleset: rs
        rules:
          - id: BIG
            when: application.amount > 0.2 * borrower.capital
            then: {decision: refer, reasons: [R-IND]}
          - id: OLD
            when: days_between(borrower.founded, date('2026-01-01')) > 3650
            then: {tier: B}
    """)
    result = evaluate(unit, case(borrower__founded="2010-05-01", borrower__capital=4_000_000), AS_OF, engine)
    assert result.fired == ["BIG", "OLD"]
    result = evaluate(unit, case(application__amount=1_000_000 - 1, borrower__capital=10_000_000), AS_OF, engine)
    assert result.fired == []


def test_invalid_case_lists_every_problem_by_path() -> None:
    bad = case(financials__ebitda="lots", application__product="mortgage", financials__debt_service=None)
    bad["borrower"]["industy"] = "energy"
    bad["extra"] = {}
    with pytest.raises(CredoError) as info:
        decide(policy_unit(), bad, AS_OF)
    found = {(p.path, p.code) for p in info.value.problems}
    assert found == {
        ("$.financials.ebitda", "wrong-type"),
        ("$.application.product", "enum-value"),
        ("$.financials.debt_service", "missing-field"),
        ("$.borrower.industy", "unknown-field"),
        ("$.extra", "unknown-fact"),
    }


@pytest.mark.parametrize("amount", [10**400, -(10**400), 10**309])
def test_an_integer_beyond_a_doubles_range_is_a_problem_not_a_crash(amount: int) -> None:
    # JSON allows integers of hundreds of digits; float() of one raises OverflowError.
    with pytest.raises(CredoError) as info:
        decide(policy_unit(), case(application__amount=amount), AS_OF)
    [problem] = info.value.problems
    assert (problem.path, problem.code) == ("$.application.amount", "wrong-type")
    assert "finite number" in problem.message
    assert decide(policy_unit(), case(application__amount=10**20), AS_OF)["outcome"]  # large but fine


def test_a_case_may_not_supply_a_derived_field() -> None:
    bad = case(financials__dscr=9)
    with pytest.raises(CredoError) as info:
        decide(policy_unit(), bad, AS_OF)
    assert info.value.problems[0].code == "derived-field"


def test_decision_names_versions_and_digests() -> None:
    d = decide(policy_unit(), case(), AS_OF)
    assert d["policy"]["name"] == "test-policy" and d["policy"]["digest"].startswith("sha256:")
    assert [r["name"] for r in d["rulesets"]] == ["test-facts", "rs"]
    assert d["as_of"] == "2026-06-30"


def test_an_enum_typo_in_a_case_gets_a_suggestion() -> None:
    with pytest.raises(CredoError) as info:
        decide(policy_unit(), case(application__product="term_laon"), AS_OF)
    [problem] = info.value.problems
    assert (problem.path, problem.code, problem.hint) == (
        "$.application.product",
        "enum-value",
        "did you mean 'term_loan'?",
    )
