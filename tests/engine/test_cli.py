"""The `credo` command as policy teams and CI run it: a real process, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.json"))


def credo(*args: str, stdin: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        cwd=cwd,
        input=stdin,
        text=True,
        capture_output=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def test_baseline_validates_cleanly() -> None:
    run = credo("validate", "--strict", "rulesets", "policies")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout == ""


def test_misspelt_field_exits_1_with_position_and_suggestion(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "ruleset: my-rules\n"
        "rules:\n"
        "  - id: MY-DSCR\n"
        "    when: financials.dscrr < 1.2\n"
        "    then: {decision: refer, reasons: [R-MY]}\n"
        "reasons:\n"
        "  R-MY: thin\n"
    )
    run = credo("validate", str(bad))
    assert run.returncode == 1
    assert f"{bad}:4:11: unknown-field: unknown field 'financials.dscrr' (hint: did you mean 'financials.dscr'?)" in (
        run.stdout
    )


def test_embedded_tests_pass_with_full_coverage() -> None:
    run = credo("test", "rulesets", "policies", "--coverage")
    assert run.returncode == 0, run.stdout
    last = run.stdout.strip().splitlines()
    assert last[-1].endswith(" passed, 0 failed") and int(last[-1].split()[0]) > 50
    assert "coverage: 100.0%" in run.stdout and "not covered" not in run.stdout


def test_a_failing_embedded_test_is_reported(tmp_path: Path) -> None:
    text = (ROOT / "rulesets" / "corporate-tiering.yaml").read_text()
    broken = tmp_path / "corporate-tiering.yaml"
    expect_key = "expect: {tier: A"
    assert expect_key in text
    broken.write_text(text.replace(expect_key, "expect: {tier: E", 1))
    rules = [str(p) for p in (ROOT / "rulesets").glob("*.yaml") if p.name != "corporate-tiering.yaml"]
    args = ["test", str(broken)]
    for path in rules:
        args += ["--rules", path]
    run = credo(*args, "--rules", str(ROOT / "policies"))
    assert run.returncode == 1
    assert "FAILED corporate-tiering" in run.stdout and "tier: expected 'E', got 'A'" in run.stdout
    assert run.stdout.strip().splitlines()[-1].endswith("passed, 1 failed")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_decide_prints_the_decision_shape(example: Path) -> None:
    policy = "corporate-term-loan" if example.name.startswith("corporate") else "project-finance"
    run = credo("decide", "--policy", policy, str(example), "--as-of", "2026-06-30")
    assert run.returncode == 0, run.stderr
    [line] = run.stdout.splitlines()
    decision = json.loads(line)
    assert set(decision) >= {
        "outcome",
        "tier",
        "score",
        "pd",
        "limit",
        "rate",
        "reasons",
        "conditions",
        "alerts",
        "policy",
        "rulesets",
        "fired",
    }
    if decision["outcome"] in ("refer", "decline"):
        assert decision["reasons"], "every adverse outcome carries a reason"
    assert all(r["text"] for r in decision["reasons"])


def test_decide_json_lines_in_order_with_rejections() -> None:
    good = json.loads((ROOT / "examples" / "approve-energy.json").read_text())
    bad = {**good, "financials": {**good["financials"], "ebitda": "high"}}
    stdin = "\n".join(json.dumps(c) for c in (good, bad, good)) + "\n"
    run = credo("decide", "--policy", "project-finance", "-", "--as-of", "2026-06-30", stdin=stdin)
    assert run.returncode == 1
    lines = [json.loads(x) for x in run.stdout.splitlines()]
    assert [("error" in x) for x in lines] == [False, True, False]
    assert lines[1]["error"]["problems"] == [
        {
            "path": "$.financials.ebitda",
            "code": "wrong-type",
            "message": "financials.ebitda must be a number, found text",
        }
    ]
    assert lines[0] == lines[2]


def test_decide_book_matches_the_reference_engine() -> None:
    book = str(ROOT / "examples" / "book.jsonl")
    rete = credo("decide", "--policy", "project-finance", book, "--as-of", "2026-06-30")
    reference = credo("decide", "--policy", "project-finance", book, "--as-of", "2026-06-30", "--engine", "reference")
    assert rete.stdout == reference.stdout and rete.stdout.count("\n") >= 4


def test_unknown_policy_is_reported() -> None:
    run = credo("decide", "--policy", "project-financ", str(EXAMPLES[0]))
    assert run.returncode == 2 and "did you mean 'project-finance'" in run.stderr
