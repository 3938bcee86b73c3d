"""The vectorised back-end decides exactly as the reference interpreter, on random well-typed policies.

The rulesets of `tests.engine.strategies` are extended here with what they do not exercise: a random
scorecard (and rules reading score, pd and score_reasons), outputs of every combine rule declared by the
policy, a unique table whose opaque cells can conflict at run time, alerts and texts that interpolate
conclusions, policy defaults, and a requested limit that reads a conclusion.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from engine.documents import parse_document
from engine.errors import CredoError
from engine.evaluate import decide
from engine.library import Library
from engine.vector import Columns, VectorPlan
from tests.engine.strategies import POLICY_YAML, SCHEMA_YAML, cases, condition, number_expr, ruleset_yaml
from tests.engine.test_vector import assert_matches_reference

AS_OF = dt.date(2026, 6, 30)
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

# Cells of numeric, enum, date and text characteristics; a missing bin and an else bin are optional.
BIN_CELLS = {
    "a.x": ["< 0", "[0..1)", ">= 1", "> 10", "== 0", "<= -1", "(-1..1]", "< a.y"],
    "a.ratio": ["< 0.5", "[0.5..2)", ">= 2", "!= 1"],
    "a.n": ["< 3", "[3..10)", ">= 10", "== 0"],
    "a.k": ["'p'", "'p', 'q'", "not 'r'", "'r'", "< 'q'"],
    "a.d": ["< date('2024-03-01')", ">= date('2024-06-01')"],
    "c.s": ["'u'", "'u', 'v'", "not 'w'"],
    "a.b": ["== true", "== false"],
}
POINTS = st.one_of(st.integers(-40, 30), st.sampled_from([12.5, -7.25, 0.1, 3.3]))


@st.composite
def scorecard_yaml(draw: st.DrawFn) -> str:
    """A scorecard over the generated schema; points are mostly whole, sometimes fractional."""
    lines = [
        "scorecard: gen-score",
        f"scaling: {{base_points: {draw(st.sampled_from([600, 500, 612.5]))}, base_odds: 50, pdo: 20}}",
        "characteristics:",
    ]
    for path in draw(st.lists(st.sampled_from(sorted(BIN_CELLS)), min_size=1, max_size=4, unique=True)):
        lines += [f"  - field: {path}", "    bins:"]
        cells = draw(st.lists(st.sampled_from(BIN_CELLS[path]), min_size=1, max_size=3, unique=True))
        for cell in cells:
            reason = draw(st.sampled_from(["", ", reason: R1", ", reason: R2", ", reason: R3"]))
            lines.append(f"      - {{when: {json.dumps(cell)}, points: {draw(POINTS)}{reason}}}")
        if draw(st.booleans()):
            reason = draw(st.sampled_from(["", ", reason: R2"]))
            lines.append(f"      - {{missing: true, points: {draw(POINTS)}{reason}}}")
        if draw(st.booleans()):
            lines.append(f"      - {{else: true, points: {draw(POINTS)}}}")
    return "\n".join(lines) + "\n"


CUSTOM = ["grade", "peak", "cov", "flags", "spread"]


@st.composite
def custom_outputs(draw: st.DrawFn) -> dict[str, str]:
    grade = draw(st.sampled_from(["worst", "best", "unique"]))
    return {
        "grade": f"{{type: enum, values: [lo, mid, hi], combine: {grade}}}",
        "peak": f"{{type: number, combine: {draw(st.sampled_from(['min', 'max', 'unique']))}}}",
        "cov": f"{{type: string, combine: {draw(st.sampled_from(['unique', 'union', 'collect']))}}}",
        "flags": f"{{type: strings, combine: {draw(st.sampled_from(['union', 'collect']))}}}",
        "spread": "{type: number, combine: sum}",
    }


TEXTS = [
    "x {a.x:.2f}",
    "tier {tier}",
    "score {score}",
    "grade {grade} at {a.d}",
    "flag {a.b} {c.s}",
    "reasons {reasons}",
    "plain",
    "peak {peak:,.1f} pd {pd:.3f}",
]


@st.composite
def extra_then(draw: st.DrawFn, output: str) -> str:
    if output == "grade":
        return f"{{grade: {draw(st.sampled_from(['lo', 'mid', 'hi']))}}}"
    if output == "peak":
        return f"{{peak: {json.dumps(draw(number_expr(1)))}}}"
    if output == "cov":
        return f"{{cov: {draw(st.sampled_from(['tight', 'loose']))}}}"
    if output == "flags":
        texts = draw(st.lists(st.sampled_from(TEXTS), min_size=1, max_size=2))
        return f"{{flags: {json.dumps(texts)}}}"
    if output == "spread":
        value = draw(st.one_of(st.sampled_from(["10", "0.1", "0.7", "-2.5"]), number_expr(1)))
        return f"{{spread: {json.dumps(value)}}}"
    if output == "alerts":
        message = draw(st.sampled_from(TEXTS))
        return f"{{alerts: [{{code: EW, severity: high, message: {json.dumps(message)}}}]}}"
    if output == "conditions":
        return f"{{conditions: {json.dumps(draw(st.lists(st.sampled_from(TEXTS), min_size=0, max_size=2)))}}}"
    reasons = draw(st.lists(st.sampled_from(["R1", "R2", "R3"]), min_size=1, max_size=2, unique=True))
    return f"{{decision: {draw(st.sampled_from(['refer', 'decline', 'approve']))}, reasons: [{', '.join(reasons)}]}}"


CUSTOM_CONDITIONS = {
    "grade": ["grade == 'mid'", "grade >= 'mid'", "grade < 'hi'", "missing(grade)"],
    "peak": ["peak > 1", "peak <= 0", "present(peak)"],
    "cov": ["present(cov)", "missing(cov)"],
    "flags": ["present(flags)"],
    "spread": ["spread > 5", "spread == 0"],
}
SCORE_CONDITIONS = ["score < 600", "score >= 590", "pd > 0.02", "present(score_reasons)", "missing(score)"]
STANDARD_CONDITIONS = ["tier <= 'B'", "decision == 'refer'", "limit_cap < 10", "present(conditions)"]


@st.composite
def extra_ruleset(draw: st.DrawFn, scored: bool) -> str:
    """Rules reading the scorecard and standard conclusions, writing the custom outputs (ranked: no cycles)."""
    ranked = draw(st.permutations(CUSTOM))
    lines = ["ruleset: gen-extra", "rules:"]
    for i in range(draw(st.integers(1, 7))):
        writes = draw(st.sampled_from([*ranked, "alerts", "conditions", "decision"]))
        if writes in CUSTOM:
            readable = [c for name in ranked[: ranked.index(writes)] for c in CUSTOM_CONDITIONS[name]]
            readable += STANDARD_CONDITIONS
        else:
            readable = []  # standard outputs may be read by gen-rules: read only facts and the score
        if scored:
            readable += SCORE_CONDITIONS
        when = draw(condition(1))
        if readable and draw(st.booleans()):
            when = f"({when}) {draw(st.sampled_from(['and', 'or']))} {draw(st.sampled_from(readable))}"
        lines += [f"  - id: X{i}", f"    when: {json.dumps(when)}", f"    then: {draw(extra_then(writes))}"]
    for i in range(draw(st.integers(0, 4))):
        # Several spreads on one case, where math.fsum and left-to-right addition disagree (1e16 + 1 + 1).
        when = draw(st.sampled_from(["present(a.x)", "a.x > 0", "missing(a.y)", "a.k != 'r'"]))
        value = draw(st.sampled_from(SPREADS))
        lines += [f"  - id: S{i}", f"    when: {json.dumps(when)}", f"    then: {{spread: {json.dumps(value)}}}"]
    if draw(st.booleans()):
        lines += draw(unique_table(ranked))
    return "\n".join(lines) + "\n"


SPREADS = ["0.1", "0.7", "0.2", "1e16", "1", "-1e16", "a.x / 3", "a.x * 0.1", "a.y", "3"]


@st.composite
def unique_table(draw: st.DrawFn, ranked: list[str]) -> list[str]:
    """Opaque cells (a comparison with another field) let two rows of a unique table match at run time."""
    output = draw(st.sampled_from(["grade", "cov", "peak"]))
    values = {"grade": ["lo", "mid", "hi"], "cov": ["tight", "loose"], "peak": ["1", "2", "a.x"]}[output]
    lines = [
        "tables:",
        "  - id: U1",
        "    hit: unique",
        "    inputs: [a.x, c.z]",
        f"    outputs: [{output}]",
        "    rows:",
    ]
    cells = ["< a.y", ">= a.y", "> c.z", "<= a.n", "< 0", ">= 5"]
    for _ in range(draw(st.integers(2, 4))):
        first = draw(st.sampled_from(cells))
        second = draw(st.sampled_from(["-", "< 1", ">= 1"]))
        lines.append(
            f"      - [{json.dumps(first)}, {json.dumps(second)}, {json.dumps(draw(st.sampled_from(values)))}]"
        )
    return lines


@st.composite
def policies(draw: st.DrawFn) -> list[tuple[str, str]]:
    """(file, text) of the documents of one generated policy."""
    scored = draw(st.booleans())
    documents = [("gen-rules.yaml", draw(ruleset_yaml())), ("gen-extra.yaml", draw(extra_ruleset(scored)))]
    if scored:
        documents.append(("gen-score.yaml", draw(scorecard_yaml())))
    outputs = draw(custom_outputs())
    defaults = [f"decision: {draw(st.sampled_from(['refer', 'approve', 'decline']))}"]
    if draw(st.booleans()):
        defaults.append(f"tier: {draw(st.sampled_from('ABCDE'))}")
    if draw(st.booleans()):
        defaults.append(f"limit_cap: {draw(st.sampled_from(['500', '2.5']))}")
    requested = draw(st.sampled_from(["1000", "a.x * 100", "a.y", *(["score", "score - 550"] if scored else [])]))
    lines = [
        "policy: gen-policy",
        "rulesets: [gen-facts, gen-rules, gen-extra]",
        *(["scorecard: gen-score"] if scored else []),
        "outputs:",
        *(f"  {name}: {spec}" for name, spec in outputs.items()),
        f"defaults: {{{', '.join(defaults)}}}",
        f"on_error: {draw(st.sampled_from(['refer', 'decline']))}",
        *([f"pricing: {{base_rate: {draw(st.sampled_from(['0.04', '0.035', '0']))}}}"] if draw(st.booleans()) else []),
        f"limit: {{requested: {json.dumps(requested)}}}",
    ]
    documents.append(("gen-policy.yaml", "\n".join(lines) + "\n"))
    return documents


def compile_documents(documents: list[tuple[str, str]]) -> Any:
    docs = [parse_document(SCHEMA_YAML, "gen-facts.yaml")] + [parse_document(t, f) for f, t in documents]
    return Library(docs).compile_policy("gen-policy", AS_OF)


def comparable(decision: dict) -> dict:
    """The decision without `because` (the vector path keeps no per-test values).

    A unique table whose rows conflict is named in the message by the first two rows evaluate meets in a
    set; with three true rows (or two tables) that is not deterministic, so only the code is compared then.
    """
    out = json.loads(json.dumps(decision))
    for entry in out["fired"]:
        entry["because"] = []
    error = out.get("error")
    if error and error["message"].startswith("unique table"):
        error["message"] = re.sub(r"unique table .*", "unique table", error["message"])
    return out


def vector_decisions(unit: Any, batch: list[dict]) -> list[dict]:
    facts = [unit.validator.validate(case)[0] for case in batch]
    result = VectorPlan(unit).run(Columns.from_facts(unit, facts), AS_OF)
    return [result.decision(i) for i in range(len(batch))]


@SETTINGS
@given(documents=policies(), batch=st.lists(cases(), min_size=1, max_size=12))
def test_vector_decides_as_the_reference(documents: list[tuple[str, str]], batch: list[dict]) -> None:
    try:
        unit = compile_documents(documents)
    except CredoError:
        assume(False)  # a generated unique table with statically overlapping rows, say
        return
    # Decisions, the result arrays and every combined conclusion, bit for bit.
    assert_matches_reference(unit, batch, exact_messages=False)
    expected = [comparable(decide(unit, case, AS_OF, "reference")) for case in batch]
    for decision in expected:
        # What the examples reached, for --hypothesis-show-statistics.
        event(f"outcome {decision['outcome']}")
        if "error" in decision:
            event("failed: " + decision["error"]["message"].split(" ")[0])
        if decision["scorecard"] and decision["score"] != int(decision["score"]):
            event("fractional score")
        if sum("spread" in entry["outputs"] for entry in decision["fired"]) > 1:
            event("spread summed from several rules")
        if decision["conditions"] or decision["alerts"]:
            event("texts")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=ruleset_yaml(), batch=st.lists(cases(), min_size=1, max_size=8))
def test_vector_decides_the_shared_strategies_as_the_reference(rules: str, batch: list[dict]) -> None:
    docs = [
        parse_document(SCHEMA_YAML, "gen-facts.yaml"),
        parse_document(rules, "gen-rules.yaml"),
        parse_document(POLICY_YAML, "gen-policy.yaml"),
    ]
    unit = Library(docs).compile_policy("gen-policy", AS_OF)
    expected = [comparable(decide(unit, case, AS_OF, "reference")) for case in batch]
    assert [comparable(d) for d in vector_decisions(unit, batch)] == expected
