"""Running the tests embedded in rulesets and policies, with rule and row coverage.

A ruleset test runs that ruleset alone (under the shared schema) and may set
conclusions it reads; a policy test runs the whole policy. `expect` is a
partial match: reasons compare as sets of codes, numbers at a relative 1e-9.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from engine.errors import CredoError, SourceSpan
from engine.evaluate import evaluate
from engine.library import Library
from engine.model import Policy, Ruleset, TestCase
from engine.policy import CompiledPolicy

POLICY_FIELDS = ("decision", "tier", "limit", "rate", "score", "pd")


@dataclass
class TestResult:
    document: str
    name: str
    span: SourceSpan
    status: str  # passed | failed | skipped
    messages: list[str] = field(default_factory=list)

    def format(self) -> str:
        head = f"{self.span}: {self.status.upper()} {self.document}: {self.name}"
        return "\n".join([head, *(f"    {m}" for m in self.messages)])


@dataclass
class TestReport:
    results: list[TestResult]
    fired: dict[str, set[str]]  # ruleset name -> fired rule keys
    uncovered: list[tuple[str, str, SourceSpan]]  # (ruleset, key, span)

    @property
    def passed(self) -> int:
        return sum(r.status == "passed" for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.status == "failed" for r in self.results)

    @property
    def skipped(self) -> int:
        return sum(r.status == "skipped" for r in self.results)


def run_tests(
    library: Library, documents: list[Any] | None = None, as_of: dt.date | None = None, engine: str = "rete"
) -> TestReport:
    """Run the tests of the given documents (default: all) and measure what they fired."""
    documents = documents if documents is not None else library.documents
    results: list[TestResult] = []
    fired: dict[str, set[str]] = {}
    units: dict[str, CompiledPolicy] = {}
    for doc in documents:
        if not isinstance(doc, (Ruleset, Policy)) or not doc.tests:
            if isinstance(doc, Ruleset):
                units[doc.name] = library.compile_ruleset(doc)
            continue
        try:
            if isinstance(doc, Ruleset):
                unit = units[doc.name] = library.compile_ruleset(doc)
            else:
                unit = library.compile_policy_document(doc, as_of or doc.effective_from or dt.date.today())
        except CredoError as error:
            for test in doc.tests:
                results.append(
                    TestResult(
                        doc.name,
                        test.name,
                        test.span,
                        "failed",
                        ["the document does not compile:", *(p.format() for p in error.problems)],
                    )
                )
            continue
        for test in doc.tests:
            results.append(_run_one(unit, doc, test, as_of, engine, fired))
    uncovered = []
    for name, unit in units.items():
        for a in unit.activations:
            if a.key not in fired.get(name, set()):
                uncovered.append((name, a.key, a.span))
    return TestReport(results, fired, uncovered)


def _run_one(
    unit: CompiledPolicy,
    doc: Ruleset | Policy,
    test: TestCase,
    as_of: dt.date | None,
    engine: str,
    fired: dict[str, set[str]],
) -> TestResult:
    if test.skipped:
        return TestResult(doc.name, test.name, test.span, "skipped")
    try:
        result = evaluate(unit, test.given, as_of, engine, allow_conclusions=isinstance(doc, Ruleset))
    except CredoError as error:
        return TestResult(
            doc.name,
            test.name,
            test.span,
            "failed",
            ["given is not a valid case:", *(p.format() for p in error.problems)],
        )
    for key in result.fired:
        fired.setdefault(unit.by_key[key].ruleset, set()).add(key)
    if "error" in result.decision:
        return TestResult(
            doc.name, test.name, test.span, "failed", [f"evaluation failed: {result.decision['error']['message']}"]
        )
    actual = _actual(result.decision, result.conclusions, isinstance(doc, Policy))
    messages = []
    for key, expected in test.expect.items():
        if key not in actual and key not in unit.schema.outputs:
            messages.append(f"expect names '{key}', which is not an output")
            continue
        got = actual.get(key)
        if not _matches(key, expected, got):
            messages.append(f"{key}: expected {_show(expected)}, got {_show(got)}")
    return TestResult(doc.name, test.name, test.span, "failed" if messages else "passed", messages)


def _actual(decision: dict[str, Any], conclusions: dict[str, Any], whole_policy: bool) -> dict[str, Any]:
    actual = dict(conclusions)
    if whole_policy:
        actual.update(
            {
                "decision": decision["outcome"],
                "tier": decision["tier"],
                "limit": decision["limit"],
                "rate": decision["rate"],
                "score": decision["score"],
                "pd": decision["pd"],
                "reasons": [r["code"] for r in decision["reasons"]],
            }
        )
    return actual


def _matches(key: str, expected: Any, got: Any) -> bool:
    if key in ("reasons", "conditions", "score_reasons") and isinstance(expected, list):
        return isinstance(got, list) and set(map(str, expected)) == set(map(str, got))
    if key == "alerts" and isinstance(expected, list):
        codes = {a["code"] for a in got or []} if isinstance(got, list) else set()
        if all(isinstance(e, str) for e in expected):
            return codes == set(expected)
        return (
            isinstance(got, list)
            and len(got) == len(expected)
            and all(all(g.get(k) == v for k, v in e.items()) for e, g in zip(expected, got, strict=True))
        )
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            return False
        return math.isclose(float(got), float(expected), rel_tol=1e-9, abs_tol=1e-12)
    return expected == got


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)
