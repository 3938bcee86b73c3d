"""Loading folders of documents and resolving names."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from engine.errors import CredoError
from engine.library import Library, read_files
from engine.model import Policy
from engine.testing import run_tests
from tests.engine.helpers import FACTS, library


def test_folders_load_recursively_and_a_file_named_twice_loads_once(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "facts.yaml").write_text(FACTS)
    (tmp_path / "notes.txt").write_text("not yaml")
    docs, problems = read_files([tmp_path, tmp_path / "sub" / "facts.yaml"])
    assert problems == [] and [d.name for d in docs] == ["test-facts"]


def test_every_file_problem_is_collected(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("ruleset: a\nrules: []\nbogus: 1\n")
    (tmp_path / "b.yaml").write_text("ruleset: b\nrules: [\n")
    with pytest.raises(CredoError) as info:
        Library.load([tmp_path, tmp_path / "missing"])
    assert [p.code for p in info.value.problems] == ["unknown-key", "yaml-syntax", "no-such-path"]


def test_file_documents_have_no_versions() -> None:
    lib = library("policy: p\nrulesets: [test-facts@2]\n")
    with pytest.raises(CredoError) as info:
        lib.compile_policy("p")
    problem = info.value.problems[0]
    assert problem.code == "unknown-version" and "no version numbers" in (problem.hint or "")


def test_unknown_policy_name_has_a_hint() -> None:
    lib = library("policy: project-finance\nrulesets: [test-facts]\n")
    with pytest.raises(CredoError) as info:
        lib.find("project-financ", Policy, dt.date(2026, 1, 1))
    assert info.value.problems[0].hint == "did you mean 'project-finance'?"


def test_one_name_for_two_kinds_is_an_error() -> None:
    with pytest.raises(CredoError) as info:
        library("policy: test-facts\nrulesets: [x]\n")
    assert [p.code for p in info.value.problems] == ["duplicate-name"]


def test_embedded_tests_report_failures_skips_and_coverage() -> None:
    lib = library("""
        ruleset: rs
        rules:
          - {id: LOW, when: "financials.dscr < 1", then: {tier: D}}
          - {id: NEVER, when: "financials.dscr > 100", then: {tier: A}}
        tests:
          - name: low coverage is tier D
            given:
              application: {amount: 1, product: term_loan}
              borrower: {capital: 1, industry: energy}
              financials: {ebitda: 1, debt_service: 2}
            expect: {tier: D}
          - name: wrong expectation
            given:
              application: {amount: 1, product: term_loan}
              borrower: {capital: 1, industry: energy}
              financials: {ebitda: 1, debt_service: 2}
            expect: {tier: C, limit_cap: 5}
          - name: todo_later
            given: {}
            expect: {}
    """)
    rs = next(d for d in lib.documents if d.name == "rs")
    report = run_tests(lib, [rs])
    assert (report.passed, report.failed, report.skipped) == (1, 1, 1)
    failed = next(r for r in report.results if r.status == "failed")
    assert failed.messages == ["tier: expected 'C', got 'D'", "limit_cap: expected 5, got None"]
    assert [key for _, key, _ in report.uncovered] == ["NEVER"]


def _baseline_case(**changes: object) -> dict[str, object]:
    import json

    from engine.library import REPO

    case = json.loads((REPO / "examples" / "approve-energy.json").read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        fact, field = dotted.split("__")
        case[fact][field] = value
    return case


@pytest.mark.parametrize(
    ("field", "value"),
    [("project__sponsor_equity_pct", 1.5), ("application__amount", 0), ("application__tenor_months", 2**63)],
)
def test_the_baseline_refuses_values_no_real_loan_has(field: str, value: object) -> None:
    from engine.evaluate import decide

    unit = Library.load().compile_policy("project-finance", dt.date(2026, 6, 30))
    with pytest.raises(CredoError) as info:
        decide(unit, _baseline_case(**{field: value}), dt.date(2026, 6, 30))
    assert [(p.path, p.code) for p in info.value.problems] == [(f"$.{field.replace('__', '.')}", "out-of-range")]


def test_the_baseline_never_approves_a_limit_of_nothing() -> None:
    from engine.evaluate import decide

    unit = Library.load().compile_policy("project-finance", dt.date(2026, 6, 30))
    assert decide(unit, _baseline_case(), dt.date(2026, 6, 30))["outcome"] == "approve"
    funded = decide(unit, _baseline_case(project__sponsor_equity_pct=1.0), dt.date(2026, 6, 30))
    assert (funded["outcome"], funded["limit"]) == ("refer", 0)
    assert "R-LIM-NO-ROOM" in [r["code"] for r in funded["reasons"]]
    exposed = decide(unit, _baseline_case(credit__existing_exposure=1e12), dt.date(2026, 6, 30))
    assert exposed["outcome"] == "refer" and exposed["limit"] == 0
