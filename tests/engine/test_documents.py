from __future__ import annotations

import pytest

from engine.documents import digest_of, parse_document
from engine.errors import CredoError
from engine.model import Policy, Ruleset, Scorecard


def problems(text: str) -> list:
    with pytest.raises(CredoError) as info:
        parse_document(text, "f.yaml")
    return info.value.problems


def test_kind_is_the_first_key() -> None:
    doc = parse_document("ruleset: r\nrules: []\n", "f.yaml")
    assert isinstance(doc, Ruleset) and doc.name == "r" and doc.version is None
    assert isinstance(parse_document("policy: p\nrulesets: [r]\n"), Policy)


def test_unknown_key_has_a_did_you_mean_hint_and_position() -> None:
    [p] = problems("ruleset: r\nrules: []\ndescripton: x\n")
    assert (p.code, p.span.line, p.span.column) == ("unknown-key", 3, 1)
    assert "description" in (p.hint or "")


def test_unknown_kind() -> None:
    [p] = problems("rulset: r\nrules: []\n")
    assert p.code == "unknown-kind" and "ruleset" in (p.hint or "")


def test_every_problem_is_collected_sorted() -> None:
    found = problems("ruleset: r\nkind: tierng\nrules:\n  - id: A\n    when: x >\n    then: {tier: A}\n  - when: a.b\n")
    codes = [p.code for p in found]
    assert codes == ["bad-value", "expr-syntax", "missing-key", "missing-key"]
    assert [p.span.line for p in found] == sorted(p.span.line for p in found)


def test_rule_parts_are_read() -> None:
    doc = parse_document(
        "ruleset: r\nrules:\n  - id: LIM\n    salience: 5\n    when: a.x > 1\n"
        "    then: {limit_cap: 0.5 * a.y, decision: refer, reasons: [R1, R2], conditions: ['Quarterly report']}\n"
    )
    assert isinstance(doc, Ruleset)
    rule = doc.rules[0]
    assert rule.salience == 5
    then = {a.output: a.value for a in rule.then}
    assert then["decision"] == "refer" and then["reasons"] == ("R1", "R2")
    assert then["conditions"] == ("Quarterly report",)
    limit = next(a for a in rule.then if a.output == "limit_cap")
    assert limit.number_expr().span.column == limit.value_span.column


def test_table_rows_must_have_the_right_width() -> None:
    [p] = problems(
        "ruleset: r\ntables:\n  - id: T\n    hit: first\n    inputs: [a.x]\n    outputs: [tier]\n"
        "    rows:\n      - ['< 1', A, B]\n"
    )
    assert p.code == "row-width" and p.span.line == 8


def test_hit_policy_is_checked() -> None:
    [p] = problems(
        "ruleset: r\ntables:\n  - id: T\n    hit: frist\n    inputs: [a.x]\n    outputs: [tier]\n    rows: []\n"
    )
    assert p.code == "bad-value" and "first" in (p.hint or "")


def test_scorecard_and_bins() -> None:
    doc = parse_document(
        "scorecard: s\nscaling: {base_points: 600, base_odds: 50, pdo: 20}\ncharacteristics:\n"
        "  - field: f.dscr\n    bins:\n      - {when: '< 1.0', points: -30, reason: R1}\n"
        "      - {missing: true, points: -10}\n      - {else: true, points: 5}\n"
    )
    assert isinstance(doc, Scorecard)
    bins = doc.characteristics[0].bins
    assert [b.points for b in bins] == [-30, -10, 5] and bins[1].missing and bins[2].otherwise
    assert doc.characteristics[0].best_points == 5


def test_policy_parts() -> None:
    doc = parse_document(
        "policy: p\nrulesets: [a, b@3]\nscorecard: s\ndefaults: {decision: refer}\non_error: decline\n"
        "pricing: {base_rate: 0.035}\nlimit: {requested: application.amount}\n"
        "outputs:\n  covenant_set: {type: string, combine: unique}\neffective_from: 2026-01-01\n"
    )
    assert isinstance(doc, Policy)
    assert [str(r) for r in doc.rulesets] == ["a", "b@3"] and doc.on_error == "decline"
    assert doc.base_rate == 0.035 and doc.outputs[0].combine == "unique"
    assert str(doc.effective_from) == "2026-01-01"


def test_bad_combine_for_type() -> None:
    [p] = problems("policy: p\nrulesets: [a]\noutputs:\n  x: {type: number, combine: worst}\n")
    assert p.code == "bad-combine"


def test_digest_is_sha256_of_exact_text_with_unix_line_ends() -> None:
    assert digest_of("a\r\nb") == digest_of("a\nb") != digest_of("a\nb\n")
    assert digest_of("x").startswith("sha256:") and len(digest_of("x")) == 71


def test_effective_dates_are_validated() -> None:
    [p] = problems("ruleset: r\nrules: []\neffective_from: 2026-13-01\n")
    assert p.code == "bad-date"
    [p] = problems("ruleset: r\nrules: []\neffective_from: 2026-02-01\neffective_to: 2026-01-01\n")
    assert p.code == "bad-dates"
