"""Properties of the language over random well-typed rulesets and cases.

1. The durable_rules network and the reference interpreter decide alike.
2. Shuffling the rules never changes a decision (reasons compare as sets).
3. Random text and mutated valid rulesets only ever raise CredoError, always with a line and a column.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.documents import parse_document
from engine.errors import CredoError
from engine.evaluate import decide
from engine.library import Library
from tests.engine.strategies import POLICY_YAML, SCHEMA_YAML, cases, ruleset_yaml

AS_OF = dt.date(2026, 6, 30)
ROOT = Path(__file__).resolve().parents[2]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def compile_generated(rules_text: str):
    docs = [
        parse_document(SCHEMA_YAML, "gen-facts.yaml"),
        parse_document(rules_text, "gen-rules.yaml"),
        parse_document(POLICY_YAML, "gen-policy.yaml"),
    ]
    return Library(docs).compile_policy("gen-policy", AS_OF)


@SETTINGS
@given(rules=ruleset_yaml(), batch=st.lists(cases(), min_size=1, max_size=8))
def test_rete_and_reference_decide_alike(rules: str, batch: list[dict]) -> None:
    unit = compile_generated(rules)
    for case in batch:
        assert decide(unit, case, AS_OF, "rete") == decide(unit, case, AS_OF, "reference")


def essentials(decision: dict) -> tuple:
    return (
        decision["outcome"],
        decision["tier"],
        decision["limit"],
        round(decision["rate"], 12) if decision["rate"] is not None else None,
        frozenset(r["code"] for r in decision["reasons"]),
        frozenset(decision["conditions"]),
        frozenset(f["rule"] for f in decision["fired"]),
        decision.get("error", {}).get("code"),
    )


@SETTINGS
@given(rules=ruleset_yaml(), batch=st.lists(cases(), min_size=1, max_size=5), seed=st.integers(0, 2**32))
def test_rule_order_never_changes_a_decision(rules: str, batch: list[dict], seed: int) -> None:
    head, _, rest = rules.partition("rules:\n")
    body, tables_marker, tables = rest.partition("tables:\n")
    chunks = ["  - id:" + c for c in body.split("  - id:")[1:]]
    random.Random(seed).shuffle(chunks)
    shuffled = head + "rules:\n" + "".join(chunks) + tables_marker + tables
    original, reordered = compile_generated(rules), compile_generated(shuffled)
    for case in batch:
        assert essentials(decide(original, case, AS_OF)) == essentials(decide(reordered, case, AS_OF))


def assert_located(error: CredoError) -> None:
    for problem in error.problems:
        assert problem.span.line >= 1 and problem.span.column >= 1, problem


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=400))
def test_random_text_only_raises_credo_error(text: str) -> None:
    try:
        parse_document(text, "random.yaml")
    except CredoError as error:
        assert_located(error)


BASELINE = sorted((ROOT / "rulesets").glob("*.yaml")) + sorted((ROOT / "policies").glob("*.yaml"))
TOKENS = [
    "{",
    "}",
    "[",
    "]",
    ":",
    "- ",
    "'",
    '"',
    "\n",
    "  ",
    "when: ",
    "x.y",
    "null",
    "&a",
    "*a",
    " and ",
    "(",
    ")",
    "==",
    "tier",
    "@",
    "\t",
    "yes",
    "1:30",
    "financials.dscrr",
]


@st.composite
def mutated_baseline(draw: st.DrawFn) -> tuple[str, str]:
    path = draw(st.sampled_from(BASELINE))
    text = path.read_text(encoding="utf-8")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(0, len(text) - 1)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "swap-lines"]))
        if kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)) :]
        elif kind == "insert":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
        elif kind == "replace":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at + draw(st.integers(1, 6)) :]
        else:
            lines = text.split("\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return path.name, text


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation=mutated_baseline())
def test_mutated_rulesets_only_raise_credo_error(mutation: tuple[str, str]) -> None:
    name, text = mutation
    others = [parse_document(p.read_text(encoding="utf-8"), p.name) for p in BASELINE if p.name != name]
    try:
        doc = parse_document(text, name)
        library = Library([*others, doc])
        for problem in library.validate(AS_OF):
            assert problem.span.line >= 1 and problem.span.column >= 1, problem
    except CredoError as error:
        assert_located(error)
