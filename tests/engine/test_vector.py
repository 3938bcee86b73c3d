"""engine.vector: the vectorised back-end decides every case exactly as engine.evaluate does.

Each semantic point has a small hand-written ruleset and cases chosen to hit its edges; every test
compares the vector decision of each case with the reference interpreter's (without `because`), the
result arrays with that decision, and every combined output with evaluate's conclusions, bit for bit
(signed zeros included). The baseline policies are checked on the example book and 2,000 variations.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.evaluate import decide, evaluate
from engine.library import Library
from engine.outputs import DECISIONS
from engine.policy import CompiledPolicy
from engine.vector import Columns, VectorPlan, VectorResult, _fsum_rows, _object_codes
from tests.engine.helpers import case, library, ruleset_unit

AS_OF = dt.date(2026, 6, 30)
ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------------------------------
# Comparing with the reference


def comparable(decision: dict, exact_messages: bool = True) -> dict:
    """A decision as JSON, `because` emptied for rules (the vector path keeps no per-test values)."""
    out = json.loads(json.dumps(decision))
    for entry in out["fired"]:
        entry["because"] = []
    error = out.get("error")
    if error and not exact_messages and error["message"].startswith("unique table"):
        # evaluate names the first two true rows it meets in a set: with three, any two of them.
        error["message"] = re.sub(r" matched rows .*", "", error["message"])
    return out


def same_number(got: float, want: Any) -> bool:
    """Equal as floats, with the same sign for zeros; NaN stands for None."""
    if want is None:
        return math.isnan(got)
    return got == want and math.copysign(1.0, got) == math.copysign(1.0, float(want))


def run_vector(unit: CompiledPolicy, batch: list[dict]) -> VectorResult:
    facts = [unit.validator.validate(c)[0] for c in batch]
    return VectorPlan(unit).run(Columns.from_facts(unit, facts), AS_OF)


def assert_matches_reference(
    unit: CompiledPolicy, batch: list[dict], exact_messages: bool = True, engine: str = "reference"
) -> VectorResult:
    """Decisions, result arrays and every combined conclusion agree with evaluate for every case."""
    result = run_vector(unit, batch)
    names = [*unit.schema.outputs, "score", "pd", "score_reasons"]
    conclusions = {name: result.conclusions(name) for name in names}
    tiers = unit.schema.outputs["tier"].values
    for i, c in enumerate(batch):
        expected = evaluate(unit, c, AS_OF, engine)
        want, got = expected.decision, result.decision(i)
        assert comparable(got, exact_messages) == comparable(want, exact_messages), f"case {i}: {c}"
        # The scorecard's trace entries are complete, `because` included.
        card = len(unit.characteristics) if unit.scorecard else 0
        assert got["fired"][:card] == want["fired"][:card]
        assert DECISIONS[result.outcome[i]] == want["outcome"]
        assert (tiers[result.tier[i]] if result.tier[i] >= 0 else None) == want["tier"]
        for array, key in ((result.score, "score"), (result.pd, "pd"), (result.limit, "limit"), (result.rate, "rate")):
            assert same_number(array[i], want[key]) or (want[key] == 0 and array[i] == 0), (key, array[i], want[key])
        codes = {code for code, on in zip(result.reason_codes, result.reasons[i], strict=True) if on}
        assert codes == {r["code"] for r in want["reasons"]}
        assert bool(result.error[i]) == ("error" in want)
        keys = {a.key for a, on in zip(unit.activations, result.fired[i], strict=True) if on}
        assert keys == set(expected.fired)
        for name in names:
            decl = unit.schema.conclusion(name)
            reference = expected.conclusions.get(name)
            value = conclusions[name][i]
            if isinstance(value, float):
                assert same_number(value, reference), (name, value, reference)
            elif decl is not None and decl.type == "enum" and not isinstance(value, list):
                assert (decl.values[value] if value >= 0 else None) == reference, name
            else:
                assert value == reference, (name, value, reference)
    return result


# ----------------------------------------------------------------------------------------------------
# Expressions and derived fields


EXTRA_FACTS = """
facts:
  extra:
    a: {type: number, optional: true}
    b: {type: number, optional: true}
    since: {type: date, optional: true}
    alias: {type: string, optional: true}
    kind: {type: enum, values: [low, mid, high], optional: true}
    flag: {type: boolean, optional: true}
"""

DERIVED = (
    """
ruleset: rs
"""
    + EXTRA_FACTS
    + """
derive:
  extra.q: extra.a / extra.b
  extra.big: extra.a * 1e308 * 10
  extra.lo: min(extra.a, extra.b, 0)
  extra.hi: max(extra.a, extra.b)
  extra.r2: round(extra.a, 2)
  extra.r0: round(extra.a)
  extra.abs: abs(extra.a)
  extra.neg: -extra.a
  extra.days: days_between(borrower.founded, extra.since)
  extra.chain: extra.q + extra.r0 - 1 / 3
  extra.positive: extra.a > 0
  extra.same: extra.kind
  extra.label: "'fixed'"
rules:
  - id: SHOW
    when: application.amount >= 0
    then:
      conditions:
        - "q={extra.q:.17g} big={extra.big} lo={extra.lo:.17g} hi={extra.hi:.17g}"
        - "r2={extra.r2:.17g} r0={extra.r0:.17g} abs={extra.abs:.17g} neg={extra.neg:.17g}"
        - "days={extra.days} chain={extra.chain:.17g} positive={extra.positive} same={extra.same} {extra.label}"
  - id: POSITIVE
    when: extra.positive
    then: {conditions: [positive]}
  - id: NOT-POSITIVE
    when: not extra.positive
    then: {conditions: [not-positive]}
"""
)

NUMBERS = [None, 0.0, -0.0, 2.5, -2.5, -0.4, 0.125, 1.005, 3, 1e306, -7.75]  # round(1e308, 2) raises in Python


def extra_case(**extra: Any) -> dict:
    c = case(borrower__founded="2020-02-29")
    c["extra"] = {k: v for k, v in extra.items() if v is not None}
    return c


def test_derived_fields_match_python_arithmetic_to_the_bit() -> None:
    unit = ruleset_unit(DERIVED)
    batch = [extra_case(a=a, b=b) for a in NUMBERS for b in [None, 0.0, -0.0, 3, -0.5, 1e-308]]
    batch += [extra_case(a=1.0, since="2024-03-01", kind="mid"), extra_case(a=-0.0, b=-0.0, since="2019-12-31")]
    result = assert_matches_reference(unit, batch)
    texts = [result.decision(i)["conditions"] for i in range(len(batch))]
    # The edges were reached: x / 0 and overflow are null, min keeps the first zero, round gives +0.0.
    assert texts[NUMBERS.index(3) * 6 + 1][0].startswith("q=n/a big=n/a lo=0 hi=3")  # a = 3, b = 0.0
    assert any("lo=-0 " in t[0] for t in texts) and any("lo=0 " in t[0] for t in texts)
    assert "r2=-0.40000000000000002 r0=0 " in texts[NUMBERS.index(-0.4) * 6][1]
    assert "r2=1 r0=1 " in texts[NUMBERS.index(1.005) * 6][1]  # 1.005 * 100 is 100.49999999999999
    assert "r0=2 " in texts[NUMBERS.index(2.5) * 6][1] and "r0=-2 " in texts[NUMBERS.index(-2.5) * 6][1]
    assert "days=1462" in texts[-2][2] and "same=mid fixed" in texts[-2][2]


def test_three_valued_conditions() -> None:
    unit = ruleset_unit(
        """
        ruleset: rs
        facts:
          extra:
            alias: {type: string, optional: true}
            since: {type: date, optional: true}
        rules:
          - {id: NE, when: financials.dpd != 0, then: {conditions: [ne]}}
          - {id: NOT-GT, when: not (financials.dpd > 5), then: {conditions: [not-gt]}}
          - {id: MISS, when: missing(financials.dpd), then: {conditions: [miss]}}
          - {id: PRES, when: not present(borrower.stage), then: {conditions: [not-present]}}
          - {id: UNAUDITED, when: not financials.audited, then: {conditions: [unaudited]}}
          - {id: AUDITED-EQ, when: financials.audited == true, then: {conditions: [audited-eq]}}
          - {id: LATER, when: "borrower.stage >= 'maturity'", then: {conditions: [later]}}
          - {id: EARLIER, when: "not (borrower.stage > 'growth')", then: {conditions: [earlier]}}
          - {id: IN, when: "borrower.stage in ['growth', 'decline']", then: {conditions: [in]}}
          - {id: NOT-IN, when: "borrower.stage not in ['decline']", then: {conditions: [not-in]}}
          - {id: NOT-NOT-IN, when: "not (borrower.stage not in ['decline'])", then: {conditions: [not-not-in]}}
          - {id: NAME, when: "borrower.name == 'Acme'", then: {conditions: [name]}}
          - {id: NOT-NAME, when: "borrower.name != 'Acme'", then: {conditions: [not-name]}}
          - {id: ALIAS, when: "borrower.name == extra.alias", then: {conditions: [alias]}}
          - {id: NOT-ALIAS, when: "not (borrower.name == extra.alias)", then: {conditions: [not-alias]}}
          - {id: KLEENE-OR, when: "financials.dpd > 5 or borrower.stage == 'growth'", then: {conditions: [or]}}
          - {id: KLEENE-NOT-AND, when: "not (financials.dpd > 5 and financials.audited)", then: {conditions: [nand]}}
          - {id: DATE, when: "borrower.founded < date('2020-01-01')", then: {conditions: [old]}}
          - {id: DATE-NE, when: "borrower.founded != extra.since", then: {conditions: [date-ne]}}
          - {id: INDUSTRY, when: "borrower.industry > 'energy'", then: {conditions: [industry]}}
        """
    )
    batch = []
    for dpd in (None, 0, 3, 9):
        for audited in (None, True, False):
            for stage in (None, "growth", "maturity", "decline"):
                for name, alias in ((None, None), ("Acme", None), ("Acme", "Acme"), ("Other", "Acme"), (None, "x")):
                    c = case(financials__dpd=dpd, financials__audited=audited, borrower__stage=stage)
                    if name is not None:
                        c["borrower"]["name"] = name
                    c["extra"] = {"alias": alias} if alias else {}
                    batch.append(c)
    batch[0]["borrower"].update(founded="2019-05-01", industry="services")
    batch[1]["borrower"]["founded"] = "2021-05-01"
    batch[1]["extra"]["since"] = "2021-05-01"
    result = assert_matches_reference(unit, batch)
    # Everything unknown but the facts given: only present/missing and the known comparisons hold.
    assert result.decision(0)["conditions"] == ["miss", "not-present", "old", "industry"]


# ----------------------------------------------------------------------------------------------------
# Scorecards


SCORECARD = """
scorecard: sc
scaling: {base_points: 600, base_odds: 50, pdo: 20}
characteristics:
  - field: financials.dscr
    bins:
      - {when: "< 1.0", points: -30, reason: R-DSCR}
      - {when: "[1.0..1.3)", points: 0}
      - {when: ">= 1.3", points: 25}
      - {missing: true, points: -10, reason: R-DSCR}
  - field: borrower.stage
    bins:
      - {when: "'growth'", points: 5}
      - {when: "< 'decline'", points: 10}
      - {else: true, points: -30, reason: R-IND}
  - field: financials.dpd
    bins:
      - {when: "< 1", points: 20}
      - {when: ">= 1", points: -10, reason: R-DPD}
  - field: borrower.industry
    bins:
      - {when: "'energy'", points: 10}
      - {when: "'real_estate'", points: -20, reason: R-IND}
"""

SCORED_RULES = """
ruleset: rs
rules:
  - id: LOW
    when: score < 600
    then:
      decision: refer
      reasons: [R-DSCR]
      conditions: ["score {score} pd {pd:.17g} {score_reasons}"]
  - id: LISTED
    when: present(score_reasons) and pd > 0.01
    then: {conditions: ["pd high"]}
"""

SCORED_POLICY = """
policy: scored
rulesets: [test-facts, rs]
scorecard: sc
defaults: {decision: approve}
"""


def test_scorecard_bins_score_pd_and_reasons() -> None:
    unit = library(SCORED_RULES, SCORECARD, SCORED_POLICY).compile_policy("scored", AS_OF)
    batch = [
        case(
            financials__debt_service=0, borrower__stage="decline", financials__dpd=4, borrower__industry="real_estate"
        ),
        case(financials__ebitda=100, borrower__stage=None, financials__dpd=None),  # dscr 0.5; unbinned dpd
        case(borrower__stage="maturity"),
        case(financials__ebitda=260, borrower__industry="services"),
        case(financials__ebitda=200, financials__dpd=2),
    ]
    result = assert_matches_reference(unit, batch)
    assert list(result.score) == [600 - 10 - 30 - 10 - 20, 600 - 30 - 30 + 0 + 10, 665, 650, 605]
    # Losses against each characteristic's best bin: 35 (dscr), 40 (stage), 30 (dpd), 30 (industry);
    # stage first, ties in file order, the same code once.
    assert list(result.conclusions("score_reasons")[0]) == ["R-IND", "R-DSCR", "R-DPD"]
    assert result.decision(1)["fired"][2]["because"] == [{"test": "unbinned", "values": {"financials.dpd": None}}]


def test_fractional_points_and_scaling() -> None:
    fractional = SCORECARD.replace("points: 25", "points: 12.5").replace("base_points: 600", "base_points: 600.25")
    unit = library(SCORED_RULES, fractional, SCORED_POLICY).compile_policy("scored", AS_OF)
    batch = [case(financials__ebitda=e, borrower__stage=s) for e in (100, 260, 300, 900) for s in ("growth", None)]
    result = assert_matches_reference(unit, batch)
    assert result.score[4] == 600.25 + 12.5 + 5 + 20 + 10


# ----------------------------------------------------------------------------------------------------
# Strata, hit policies and combine rules


POLICY = """
policy: test-policy
rulesets: [test-facts, rs]
defaults: {decision: refer}
on_error: decline
pricing: {base_rate: 0.035}
limit: {requested: application.amount}
outputs:
  covenant: {type: string, combine: unique}
  grade: {type: enum, values: [gold, silver, bronze], combine: best}
  peak: {type: number, combine: max}
  low: {type: number, combine: min}
  spread: {type: number, combine: sum}
  level: {type: number, combine: unique}
  notes: {type: strings, combine: collect}
"""

RULES = """
ruleset: rs
rules:
  - id: D-DSCR
    when: financials.dscr < 1.2
    then: {decision: decline, reasons: [R-DSCR, R-IND]}
  - id: R-IND
    when: borrower.industry == 'real_estate'
    then: {decision: refer, reasons: [R-IND, R-DPD], rate_add_bps: 50}
  - id: A-OK
    when: financials.dscr >= 1.2
    then: {decision: approve, conditions: ["tier is {tier} at stratum 0"]}
  - id: CAP-A
    when: tier == 'A'
    then: {limit_cap: 0.5 * borrower.capital, conditions: ["Annual review at {financials.dscr:.1f}x, tier {tier}"]}
  - id: CAP-ALL
    when: present(tier)
    then: {limit_cap: 2 * borrower.capital, rate_add_bps: 25}
  - id: CAP-NULL
    when: present(tier)
    then: {limit_cap: borrower.capital / (financials.dpd - financials.dpd)}
tables:
  - id: TIER
    hit: first
    inputs: [financials.dscr, borrower.industry, financials.dpd]
    outputs: [tier]
    rows:
      - [">= 1.5", "'energy'", "-", A]
      - ["> financials.dpd", "-", "-", C]
      - [">= 1.2", "-", "-", B]
      - ["-", "-", "-", D]
"""


def policy_unit(rules: str = RULES, policy: str = POLICY) -> CompiledPolicy:
    return library(rules, policy).compile_policy("test-policy", AS_OF)


def test_strata_hit_policies_and_standard_combines() -> None:
    batch = [
        case(),
        case(financials__ebitda=200, borrower__industry="real_estate"),
        case(financials__ebitda=260),  # dscr 1.3: rows 2, 3 and 4 true, row 2 wins
        case(financials__ebitda=260, financials__dpd=None),  # row 2 unknown: it does not block row 3
        case(financials__debt_service=0),  # dscr null: only the catch-all row
        case(application__amount=10),
    ]
    result = assert_matches_reference(policy_unit(), batch)
    tiers = ["A", "C", "C", "B", "D", "A"]  # dscr 1.0 > dpd 0: row 2
    assert [result.decision(i)["tier"] for i in range(len(batch))] == tiers
    first = result.decision(0)
    assert first["conditions"] == ["tier is n/a at stratum 0", "Annual review at 1.5x, tier A"]
    assert [f["rule"] for f in first["fired"]] == ["A-OK", "TIER/1", "CAP-A", "CAP-ALL", "CAP-NULL"]
    assert first["fired"][-1]["outputs"] == {"limit_cap": None}  # null contributes nothing to min
    assert first["limit"] == 1_000_000 and result.limit[5] == 10
    second = result.decision(1)
    assert second["outcome"] == "decline" and second["limit"] is None and second["rate"] is None
    assert [(r["code"], r["rule"]) for r in second["reasons"]] == [
        ("R-DSCR", "D-DSCR"),
        ("R-IND", "D-DSCR"),
        ("R-DPD", "R-IND"),
    ]
    assert result.reason_codes == ["R-DSCR", "R-IND", "R-DPD", "R-DEFAULT", "R-ERROR"]
    assert result.reasons[1].tolist() == [True, True, True, False, False]
    assert result.reasons[4].tolist() == [False, False, False, True, False]  # defaults to refer
    assert result.fired[2, [a.key for a in policy_unit().activations].index("TIER/3")] == np.False_


def test_union_order_and_citing_rule_follow_each_case() -> None:
    unit = ruleset_unit(
        """
        ruleset: rs
        rules:
          - {id: ONE, when: financials.dpd > 5, then: {decision: refer, reasons: [R-DPD]}}
          - {id: TWO, when: financials.dpd > 0, then: {decision: refer, reasons: [R-IND, R-DPD]}}
          - {id: THREE, when: present(financials.dpd), then: {conditions: [same, "dpd {financials.dpd}", same]}}
          - {id: FOUR, when: financials.dpd < 9, then: {conditions: ["dpd {financials.dpd}"], reasons: []}}
        """
    )
    result = assert_matches_reference(unit, [case(financials__dpd=d) for d in (None, 0, 3, 7, 12)])
    assert [r["rule"] for r in result.decision(3)["reasons"]] == ["ONE", "TWO"]
    assert [r["code"] for r in result.decision(2)["reasons"]] == ["R-IND", "R-DPD"]
    assert result.decision(2)["conditions"] == ["same", "dpd 3"]


def test_custom_outputs_of_every_combine() -> None:
    rules = RULES.replace(
        "tables:",
        """  - id: G1
    when: financials.dscr > 1
    then: {grade: bronze, peak: financials.dscr, low: 0 - financials.dpd, spread: 0.1, notes: ["n {tier}"]}
  - id: G2
    when: borrower.industry == 'energy'
    then: {grade: silver, peak: 0 * financials.dpd, low: financials.dpd * 0, level: financials.dpd * 0, spread: 0.2}
  - id: G3
    when: present(financials.audited)
    then: {peak: -0.0, low: -0.0, level: -0.0, spread: financials.ebitda / 3, notes: ["{grade} and {peak}"]}
  - id: G4
    when: financials.dpd >= 0
    then: {spread: 1e16, notes: [late]}
  - id: G5
    when: financials.dpd >= 0
    then: {spread: 1}
  - id: G6
    when: grade == 'silver'
    then: {spread: 1, notes: ["{grade} and {peak} {low:.1f}"]}
tables:""",
    )
    unit = policy_unit(rules)
    batch = [
        case(),
        case(financials__dpd=None, financials__audited=None),
        case(borrower__industry="services", financials__dpd=4),
        case(financials__ebitda=100, financials__dpd=0, borrower__industry="services"),
        case(financials__ebitda=100, financials__dpd=0),  # G2 gives 0.0, then G3 -0.0: Python keeps 0.0
    ]
    result = assert_matches_reference(unit, batch)
    assert result.conclusions("grade").tolist() == [1, 1, 2, -1, 1]  # best: silver beats bronze
    assert result.conclusions("spread")[0] == math.fsum([0.1, 0.2, 100.0, 1e16, 1, 1]) != 0.1 + 0.2 + 100 + 1e16 + 1 + 1
    # A zero tie keeps the first zero, as Python's min and max (numpy's fmin/fmax return the second).
    for name in ("peak", "low", "level"):
        assert math.copysign(1, result.conclusions(name)[4]) == 1.0, name
    assert math.copysign(1, result.conclusions("peak")[3]) == -1.0  # only G3: -0.0
    assert result.decision(4)["outputs"]["notes"][-1] == "silver and 0 0.0"  # a -0.0 would print -0.0
    assert result.decision(1)["outputs"]["notes"] == ["n n/a", "silver and 1.5 n/a"]


def test_unique_conflicts_fail_the_case_with_on_error() -> None:
    rules = RULES.replace(
        "tables:",
        """  - id: COV-1
    when: application.amount > 0
    then: {covenant: tight}
  - id: COV-2
    when: application.amount > 10
    then: {covenant: loose}
  - id: COV-3
    when: application.amount > 100
    then: {covenant: tight}
tables:
  - id: U
    hit: unique
    inputs: [financials.dscr]
    outputs: [peak]
    rows:
      - ["> financials.dpd", 1]
      - ["< borrower.capital", 2]
      - ["< 0", 3]""",
    )
    unit = policy_unit(rules)
    batch = [
        case(application__amount=5, financials__dpd=None),  # one covenant, one row
        case(application__amount=50, financials__dpd=None),  # covenant conflict at combine
        case(application__amount=5, financials__dpd=0),  # rows 1 and 2: conflict at resolve
        case(application__amount=500, financials__dpd=None, financials__ebitda=-300),  # rows 2 and 3, COV 1-3
    ]
    result = assert_matches_reference(unit, batch)
    assert result.error.tolist() == [False, True, True, True]
    assert result.decision(1)["error"]["message"] == "covenant has conflicting values from COV-1, COV-2"
    assert result.decision(2)["error"]["message"] == "unique table U matched rows 1 and 2"
    assert result.decision(3)["error"]["message"] == "unique table U matched rows 2 and 3"
    failed = result.decision(2)
    assert failed["outcome"] == "decline" and failed["tier"] is None and failed["limit"] is None
    assert [r["code"] for r in failed["reasons"]] == ["R-ERROR"]
    assert result.outcome.tolist()[1:] == [2, 2, 2] and result.reasons[2].tolist()[-1]


def test_defaults_limit_and_rate() -> None:
    policy = POLICY.replace("defaults: {decision: refer}", "defaults: {decision: approve, tier: C, limit_cap: 700}")
    rules = """
ruleset: rs
rules:
  - id: CAP
    when: financials.dpd > 5
    then: {limit_cap: financials.dpd * 100, rate_add_bps: -0.0}
  - id: NO
    when: financials.dpd > 50
    then: {decision: decline, reasons: [R-DPD]}
"""
    unit = policy_unit(rules, policy)
    batch = [case(financials__dpd=d, application__amount=a) for d in (None, 0, 6, 60) for a in (0, 650, 5000)]
    result = assert_matches_reference(unit, batch)
    assert result.tier.tolist() == [2] * len(batch)  # the default tier
    assert result.limit.tolist()[:3] == [0, 650, 700] and np.isnan(result.limit[-1])
    assert result.reasons[:, result.reason_codes.index("R-DEFAULT")].sum() == 0  # an approve default needs none
    # min([requested, cap]) keeps the requested amount on a tie of zeros (a sign decisions print as 0).
    zero_cap = policy_unit("ruleset: rs\nrules:\n  - {id: Z, when: present(tier) or true, then: {limit_cap: 0}}\n")
    tie = assert_matches_reference(zero_cap, [case(application__amount=-0.0)])
    assert tie.limit[0] == 0 and math.copysign(1, tie.limit[0]) == -1.0

    no_pricing = policy_unit(rules, POLICY.replace("pricing: {base_rate: 0.035}\n", "").replace("limit: {req", "#"))
    result = assert_matches_reference(no_pricing, batch)
    assert np.isnan(result.rate).all() and np.isnan(result.limit[:6]).all() and result.limit[6] == 600


def test_result_arrays_and_conclusions() -> None:
    unit = policy_unit()
    result = run_vector(unit, [case(), case(financials__ebitda=200, borrower__industry="real_estate")])
    assert result.outcome.dtype == np.int8 and result.tier.dtype == np.int8
    assert result.fired.shape == (2, len(unit.activations)) and result.fired.dtype == bool
    assert result.reasons.shape == (2, len(result.reason_codes)) and result.error.dtype == bool
    assert result.outcome.tolist() == [0, 2] and result.tier.tolist() == [0, 2]
    assert result.conclusions("decision").tolist() == [0, 2]
    assert result.conclusions("limit_cap").tolist() == [2_500_000, 10_000_000]
    assert result.conclusions("covenant").tolist() == [None, None]
    assert result.conclusions("conditions").tolist() == [
        ["tier is n/a at stratum 0", "Annual review at 1.5x, tier A"],
        [],
    ]
    assert np.isnan(result.conclusions("score")).all()
    with pytest.raises(KeyError):
        result.conclusions("nonsense")
    empty = run_vector(unit, [])
    assert empty.n == 0 and empty.fired.shape == (0, len(unit.activations))


def test_requested_limit_may_read_conclusions() -> None:
    policy = SCORED_POLICY + "pricing: {base_rate: 0.02}\nlimit: {requested: score * 1000 - application.amount}\n"
    unit = library(SCORED_RULES, SCORECARD, policy).compile_policy("scored", AS_OF)
    assert_matches_reference(unit, [case(application__amount=a) for a in (0, 600_000, 700_000)])


def test_alerts_collect_and_render_per_case() -> None:
    unit = ruleset_unit(
        """
        ruleset: rs
        rules:
          - id: EW-DSCR
            when: financials.dscr < 2
            then:
              alerts: [{code: EW-DSCR, severity: high, message: "DSCR {financials.dscr:.2f}, {borrower.founded}"}]
          - id: EW-TWO
            when: financials.dscr < 1
            then:
              alerts:
                - {code: EW-A, severity: low, message: "low"}
                - {code: EW-B, severity: critical, message: "{financials.audited} {borrower.name}"}
        """
    )
    batch = [case(), case(financials__ebitda=100, borrower__founded="2001-01-01"), case(financials__ebitda=900)]
    batch[1]["borrower"]["name"] = "Acme"
    result = assert_matches_reference(unit, batch)
    assert [a["message"] for a in result.decision(1)["alerts"]] == ["DSCR 0.50, 2001-01-01", "low", "true Acme"]


def test_the_durable_rules_engine_agrees_on_the_book_policies_too() -> None:
    lib = Library.load()
    book = [json.loads(line) for line in (ROOT / "examples" / "book.jsonl").read_text().splitlines()]
    for name in ("project-finance", "corporate-term-loan"):
        assert_matches_reference(lib.compile_policy(name, AS_OF), book, engine="rete")


# ----------------------------------------------------------------------------------------------------
# The baseline policies on many cases


def variations(unit: CompiledPolicy, count: int, seed: int) -> list[dict]:
    """Valid cases near the book's: fields dropped, scaled, set on rule boundaries, enums swapped."""
    rng = random.Random(seed)
    book = [json.loads(line) for line in (ROOT / "examples" / "book.jsonl").read_text().splitlines()]
    fields = unit.schema.fields
    out: list[dict] = []
    while len(out) < count:
        c = copy.deepcopy(rng.choice(book))
        for fact in list(c):
            if rng.random() < 0.05:
                del c[fact]
                continue
            body = c[fact]
            for name in list(body):
                decl, value, roll = fields[(fact, name)], body[name], rng.random()
                if roll < 0.08:
                    del body[name]
                elif decl.type == "enum" and roll < 0.3:
                    body[name] = rng.choice(decl.values)
                elif decl.type == "boolean" and roll < 0.3:
                    body[name] = not value
                elif decl.type in ("number", "integer") and roll < 0.5:
                    factor = rng.choice([0, 0.5, 0.8, 0.95, 1.05, 1.2, 1.35, 1.5, 2, 4, -1])
                    scaled = value * factor
                    body[name] = round(scaled) if decl.type == "integer" else scaled
        credit = c.get("credit", {})
        if rng.random() < 0.3 and "max_dpd_12m" in credit:
            credit["max_dpd_12m"] = rng.choice([0, 1, 29, 30, 31, 45, 89, 90, 120])
        financials = c.get("financials", {})
        if rng.random() < 0.3 and "debt_service" in financials:
            # DSCR exactly on (or one rounding step off) a threshold: 1.0, 1.2, 1.35, 1.5.
            financials["ebitda"] = financials["debt_service"] * rng.choice([1.0, 1.1, 1.2, 1.25, 1.3, 1.35, 1.5])
        try:
            unit.validator.validate(c)
        except Exception:
            continue
        out.append(c)
    return out


@pytest.fixture(scope="module")
def baseline() -> tuple[Library, list[dict]]:
    """The baseline library, and the book with 2,000 variations (both policies share the fact schema)."""
    lib = Library.load()
    book = [json.loads(line) for line in (ROOT / "examples" / "book.jsonl").read_text().splitlines()]
    return lib, book + variations(lib.compile_policy("project-finance", AS_OF), 2000, seed=7)


@pytest.mark.parametrize("name", ["project-finance", "corporate-term-loan"])
def test_baseline_policies_on_the_book_and_variations(name: str, baseline: tuple[Library, list[dict]]) -> None:
    lib, batch = baseline
    unit = lib.compile_policy(name, AS_OF)
    result = run_vector(unit, batch)
    for i, c in enumerate(batch):
        assert comparable(result.decision(i)) == comparable(decide(unit, c, AS_OF, "reference")), f"case {i}: {c}"
    assert len(set(result.outcome.tolist())) == 3 and result.reasons.any(axis=0).sum() > 10  # a varied book


# ----------------------------------------------------------------------------------------------------
# Columns


def test_columns_from_facts() -> None:
    unit = policy_unit()
    c = case(borrower__founded="2020-02-29", financials__audited=False, financials__dpd=None)
    c["borrower"]["name"] = "Acme"
    columns = Columns.from_facts(unit, [unit.validator.validate(c)[0], unit.validator.validate(case())[0]])
    values = columns.values
    assert columns.n == 2 and ("financials", "dscr") not in values
    assert values[("borrower", "founded")].tolist()[0] == dt.date(2020, 2, 29).toordinal()
    assert np.isnan(values[("borrower", "founded")][1])
    assert values[("financials", "audited")].tolist() == [0.0, 1.0]
    assert np.isnan(values[("financials", "dpd")][0]) and values[("financials", "dpd")].dtype == np.float64
    assert values[("borrower", "industry")].dtype == object and values[("borrower", "name")].tolist() == ["Acme", None]


def test_columns_accept_codes_datetimes_and_absent_fields() -> None:
    unit = policy_unit()
    facts = [
        unit.validator.validate(c)[0] for c in (case(), case(borrower__stage=None, borrower__founded="2001-02-03"))
    ]
    reference = run_vector(unit, [case(), case(borrower__stage=None, borrower__founded="2001-02-03")])
    columns = Columns.from_facts(unit, facts)
    values = dict(columns.values)
    values[("borrower", "industry")] = np.array([0, 0], dtype=np.int16)
    values[("borrower", "stage")] = np.array([0, -1], dtype=np.int8)
    values[("borrower", "founded")] = np.array(["NaT", "2001-02-03"], dtype="datetime64[D]")
    values[("financials", "audited")] = np.array([True, True])
    values[("application", "amount")] = np.array([1_000_000, 1_000_000], dtype=np.int64)
    del values[("borrower", "name")]
    result = VectorPlan(unit).run(Columns(2, values), AS_OF)
    for i in range(2):
        assert result.decision(i) == reference.decision(i)
    with pytest.raises(ValueError, match=r"borrower\.industry"):
        VectorPlan(unit).run(Columns(2, {**values, ("borrower", "industry"): np.array(["energy", "oil"], object)}))


def test_object_codes_with_few_many_and_missing_objects() -> None:
    lookup = {"energy": 0.0, "services": 1.0, "real_estate": 2.0}

    def code_of(v: Any) -> float:
        return math.nan if v is None else lookup.get(v, -1.0)

    rng = np.random.default_rng(1)
    few = np.array(["energy", "services", None, "real_estate", "other"], dtype=object)[rng.integers(0, 5, 5000)]
    # Equal texts that are distinct objects (as a parser makes them), and every object distinct.
    rebuilt = np.array([None if v is None else "".join(list(v)) for v in few], dtype=object)
    unique = np.array([f"t{i}" for i in range(3000)] + ["energy"], dtype=object)
    for column in (few, rebuilt, unique, few[::2], np.array([None] * 7, dtype=object), few[:0]):
        got = _object_codes(column, code_of)
        want = np.array([code_of(v) for v in column], dtype=np.float64)
        assert np.array_equal(got, want, equal_nan=True)


def test_encodings_are_cached_on_the_columns() -> None:
    unit = policy_unit()
    columns = Columns.from_facts(unit, [unit.validator.validate(case())[0]])
    VectorPlan(unit).run(columns, AS_OF)
    cached = dict(columns._cache)
    VectorPlan(unit).run(columns, AS_OF)
    assert cached and all(columns._cache[k] is v for k, v in cached.items())


# ----------------------------------------------------------------------------------------------------
# fsum


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.lists(
            st.one_of(
                st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
                st.sampled_from([0.0, -0.0, 1e16, 1.0, 0.1, -1e16, 2.0**-1074, 3.0]),
            ),
            min_size=6,
            max_size=6,
        ),
        min_size=1,
        max_size=20,
    )
)
def test_fsum_rows_is_math_fsum(rows: list[list[float]]) -> None:
    got = _fsum_rows(np.array(rows))
    for row, value in zip(rows, got.tolist(), strict=True):
        want = math.fsum(row)
        assert value == want and math.copysign(1, value) == math.copysign(1, want), row


# ----------------------------------------------------------------------------------------------------
# Performance: a hand-written mask version of project-finance as the yardstick


PF_ENUMS = {
    ("application", "product"): (["project_loan"] * 8 + ["term_loan", "working_capital"]),
    ("borrower", "industry"): ["energy", "infrastructure", "manufacturing", "real_estate", "services", "agriculture"],
    ("borrower", "lifecycle_stage"): ["introduction", "growth", "growth", "maturity", "maturity", "decline"],
    ("financials", "audit_opinion"): ["unqualified"] * 6 + ["qualified", "adverse", "disclaimer", None, None],
    ("project", "construction_risk"): ["low", "low", "medium", "high", None],
}


def synthetic_columns(unit: CompiledPolicy, n: int, seed: int = 0, coded: bool = False) -> Columns:
    """A portfolio of project loans built column by column with numpy (about a fifth of optionals missing)."""
    rng = np.random.default_rng(seed)

    def uniform(low: float, high: float, missing: float = 0.0) -> np.ndarray:
        out = rng.uniform(low, high, n)
        out[rng.random(n) < missing] = np.nan
        return out

    def whole(choices: list[int], missing: float = 0.0) -> np.ndarray:
        out = rng.choice(np.array(choices, dtype=np.float64), n)
        out[rng.random(n) < missing] = np.nan
        return out

    assets = uniform(1e8, 2e9)
    revenue = uniform(5e7, 8e8)
    ebitda = revenue * uniform(-0.05, 0.5)
    values: dict[tuple[str, str], np.ndarray] = {
        ("application", "amount"): uniform(1e7, 3e8),
        ("application", "tenor_months"): whole(list(range(12, 241, 12))),
        ("borrower", "registered_capital"): uniform(2e7, 3e8),
        ("borrower", "years_in_business"): whole(list(range(0, 31))),
        ("financials", "total_assets"): assets,
        ("financials", "total_liabilities"): assets * uniform(0.2, 1.1),
        ("financials", "current_assets"): uniform(1e7, 3e8, 0.1),
        ("financials", "current_liabilities"): uniform(1e7, 3e8, 0.1),
        ("financials", "revenue"): revenue,
        ("financials", "ebitda"): ebitda,
        ("financials", "net_income"): uniform(-5e7, 1e8, 0.2),
        ("financials", "operating_cash_flow"): uniform(-5e7, 1e8, 0.2),
        ("financials", "debt_service"): np.abs(ebitda) * uniform(0.4, 1.4),
        ("financials", "audited"): whole([1, 1, 1, 0], 0.2),
        ("financials_prev", "total_assets"): assets * uniform(0.8, 1.1, 0.2),
        ("financials_prev", "total_liabilities"): assets * uniform(0.2, 1.0, 0.2),
        ("financials_prev", "revenue"): revenue * uniform(0.7, 1.3, 0.2),
        ("financials_prev", "ebitda"): uniform(-1e7, 2e8, 0.3),
        ("credit", "max_dpd_12m"): whole([0] * 16 + [3, 15, 30, 31, 45, 95]),
        ("credit", "defaults_5y"): whole([0] * 20 + [1, 2]),
        ("credit", "restructurings_5y"): whole([0] * 10 + [1], 0.3),
        ("credit", "existing_exposure"): uniform(0, 1e8),
        ("project", "total_investment"): uniform(1e8, 6e8, 0.1),
        ("project", "sponsor_equity_pct"): uniform(0.1, 0.5, 0.1),
        ("project", "expected_irr"): uniform(0.03, 0.12, 0.1),
        ("project", "construction_months"): whole(list(range(0, 49, 6)), 0.1),
        ("project", "covenant_dscr"): uniform(1.1, 1.5, 0.4),
    }
    for key, choices in PF_ENUMS.items():
        declared = unit.schema.fields[key].values
        if coded:
            codes = np.array([-1 if v is None else declared.index(v) for v in choices], dtype=np.int16)
            values[key] = codes[rng.integers(0, len(choices), n)]
        else:
            values[key] = np.array(choices, dtype=object)[rng.integers(0, len(choices), n)]
    return Columns(n, values)


def handwritten_project_finance(columns: Columns, unit: CompiledPolicy) -> dict[str, np.ndarray]:
    """project-finance written out by hand as numpy masks: the yardstick for VectorPlan's speed."""
    v = columns.values

    def is_(key: tuple[str, str], *choices: str) -> np.ndarray:
        column = v[key]
        if column.dtype == object:
            out = column == choices[0]
            for c in choices[1:]:
                out |= column == c
            return out
        declared = unit.schema.fields[key].values
        out = column == declared.index(choices[0])
        for c in choices[1:]:
            out |= column == declared.index(c)
        return out

    def known(key: tuple[str, str]) -> np.ndarray:
        column = v[key]
        return np.not_equal(column, None) if column.dtype == object else column >= 0

    def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = a / b
        out[~np.isfinite(out)] = np.nan
        return out

    def floor0(x: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(x), np.nan, np.where(x < 0.0, 0.0, x))

    with np.errstate(all="ignore"):
        ta, tl = v[("financials", "total_assets")], v[("financials", "total_liabilities")]
        leverage = div(tl, floor0(ta - tl))
        dscr = div(v[("financials", "ebitda")], v[("financials", "debt_service")])
        current = div(v[("financials", "current_assets")], v[("financials", "current_liabilities")])
        growth = div(v[("financials", "revenue")], v[("financials_prev", "revenue")]) - 1
        investment, share = v[("project", "total_investment")], v[("project", "sponsor_equity_pct")]
        debt_need = investment - investment * share
        dpd, years = v[("credit", "max_dpd_12m")], v[("borrower", "years_in_business")]

        def bins(x: np.ndarray, edges: list[float], points: list[float], missing: float) -> np.ndarray:
            return np.where(np.isnan(x), missing, np.array(points)[np.searchsorted(edges, x, side="right")])

        score = 600.0 + bins(dscr, [1.0, 1.2, 1.5], [-40, -15, 0, 25], -20)
        score += bins(leverage, [1.0, 2.5, 4.0], [20, 10, -10, -30], -30)
        score += bins(current, [1.0, 1.5], [-20, 0, 15], -5)
        score += bins(years, [3, 10], [-20, 0, 15], 0)
        industry = v[("borrower", "industry")]
        score += np.where(is_(("borrower", "industry"), "energy", "infrastructure"), 10.0, 0.0)
        score += np.where(is_(("borrower", "industry"), "real_estate"), -20.0, 0.0)
        score += bins(dpd, [1, 31], [20, -25, -60], 0)
        score += bins(growth, [-0.1, 0.05], [-20, 0, 10], -5)
        del industry

        stage_ok = is_(("borrower", "lifecycle_stage"), "growth", "maturity")
        declining = is_(("borrower", "lifecycle_stage"), "decline")
        rows = [
            (dscr >= 1.5) & (leverage < 2.0) & (dpd == 0) & stage_ok,
            (dscr >= 1.3) & (leverage < 3.0) & (dpd == 0) & ~declining,
            (dscr >= 1.2) & (leverage < 4.0) & (dpd <= 30),
            (dscr >= 1.0) & (leverage < 6.0) & (dpd <= 90),
        ]
        tier = np.select(rows, [0, 1, 2, 3], 4)
        tier = np.maximum(tier, np.where(declining, 3, 0))
        tier = np.maximum(tier, np.where(v[("credit", "restructurings_5y")] > 0, 2, 0))
        defaults = v[("credit", "defaults_5y")]
        tier = np.maximum(tier, np.where(defaults == 1, 3, np.where(defaults >= 2, 4, 0)))

        project_loan = is_(("application", "product"), "project_loan")
        audited = v[("financials", "audited")]
        amount = v[("application", "amount")]
        refer = (
            ((amount >= 5e7) & (np.isnan(audited) | (audited == 0)))
            | (~project_loan & known(("application", "product")))
            | ((dscr >= 1.2) & (dscr < 1.35))
            | ((leverage > 3.0) & (leverage <= 4.0))
            | ((share >= 0.2) & (share < 0.25))
            | np.isnan(investment)
            | np.isnan(share)
            | (is_(("project", "construction_risk"), "high") & (v[("project", "construction_months")] > 24))
            | (v[("project", "expected_irr")] < 0.06)
            | is_(("borrower", "industry"), "real_estate")
            | ((dpd >= 1) & (dpd <= 30))
            | (tier == 3)
            | (score < 560)
        )
        decline = (dscr < 1.2) | (tl >= ta) | (leverage > 4.0) | (share < 0.2) | (dpd > 30) | (defaults > 0)
        decline |= tier == 4
        approve = (tier <= 2) & (score >= 560)
        outcome = np.where(decline, 2, np.where(refer, 1, np.where(approve, 0, 1))).astype(np.int8)

        ebitda, exposure = v[("financials", "ebitda")], v[("credit", "existing_exposure")]
        multiple = np.array([5.0, 4.0, 3.0, 2.0, np.nan])[tier]
        by_tier = np.where(tier == 4, 0.0, floor0(multiple * ebitda - exposure))
        capital = v[("borrower", "registered_capital")]
        other = ~project_loan
        caps = [
            by_tier,
            np.where(project_loan & ~np.isnan(debt_need), debt_need, np.nan),
            np.where(other & (tier <= 1), 0.5 * capital, np.nan),
            np.where(other & (tier == 2), 0.3 * capital, np.nan),
            np.where(other & (tier >= 3), 0.2 * capital, np.nan),
        ]
        cap = caps[0]
        for c in caps[1:]:
            cap = np.where(c < cap, c, cap)
        limit = np.where(cap < amount, cap, amount)
        # LIM-NO-ROOM: a cap at or below zero sends tiers A-D to a credit officer (worst-of: a decline stays).
        outcome = np.where((outcome == 0) & (cap <= 0) & (tier <= 3), 1, outcome).astype(np.int8)
        risk = v[("project", "construction_risk")]
        del risk
        bps = np.array([60.0, 110.0, 180.0, 280.0, 400.0])[tier]
        bps = bps + np.where(is_(("project", "construction_risk"), "medium"), 30.0, 0.0)
        bps = bps + np.where(is_(("project", "construction_risk"), "high"), 80.0, 0.0)
        bps = bps + np.where(v[("application", "tenor_months")] > 120, 25.0, 0.0)
        rate = 0.035 + bps / 10000.0
        limit[outcome == 2] = np.nan
        rate[outcome == 2] = np.nan
    return {"outcome": outcome, "tier": tier.astype(np.int8), "limit": limit, "rate": rate, "score": score}


@pytest.mark.parametrize("coded", [False, True])
def test_handwritten_yardstick_agrees_with_the_plan(coded: bool) -> None:
    unit = Library.load().compile_policy("project-finance", AS_OF)
    columns = synthetic_columns(unit, 20_000, seed=3, coded=coded)
    result = VectorPlan(unit).run(columns, AS_OF)
    expected = handwritten_project_finance(columns, unit)
    for name, array in expected.items():
        assert np.array_equal(getattr(result, name), array, equal_nan=True), name
    assert len(set(result.outcome.tolist())) == 3 and len(set(result.tier.tolist())) == 5


def best_of(repeat: int, fn: Any) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@pytest.mark.skipif(not os.environ.get("CREDO_BENCH"), reason="set CREDO_BENCH=1 to time 1,000,000 cases")
def test_plan_is_within_three_times_the_handwritten_masks() -> None:
    unit = Library.load().compile_policy("project-finance", AS_OF)
    plan = VectorPlan(unit)
    n = int(os.environ.get("CREDO_BENCH_N", "1000000"))
    report = []
    for coded in (False, True):
        columns = synthetic_columns(unit, n, seed=1, coded=coded)
        first = best_of(1, lambda c=columns: plan.run(c, AS_OF))  # encodes the enum columns
        plan_time = best_of(3, lambda c=columns: plan.run(c, AS_OF))
        hand_time = best_of(3, lambda c=columns: handwritten_project_finance(c, unit))
        kind = "int codes" if coded else "objects"
        report.append(f"{kind}: first run {first:.3f}s, run {plan_time:.3f}s, hand {hand_time:.3f}s")
        assert plan_time < 3 * hand_time
    print("\n" + "\n".join(report))
