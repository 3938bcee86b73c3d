"""Portfolio simulation: the report, its measures, chunking, executors, `credo simulate` and `credo monitor`."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import math
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.evaluate import decide
from engine.library import Library
from engine.portfolio import Portfolio
from engine.report import ExactSum, Tally, bin_counts, build_report, ks_gini, psi, psi_edges
from engine.simulate import ChunkTask, RowsRejected, RunOptions, compile_side, load_side, run_chunk, simulate

ROOT = Path(__file__).resolve().parents[2]
AS_OF = dt.date(2026, 6, 30)

RULES = """\
ruleset: t-rules
facts:
  app:
    amount: {type: number, min: 0}
    grade: integer
    flag: {type: boolean, optional: true}
reasons:
  R-LOW: "grade {app.grade} is low"
  R-MID: "grade {app.grade} needs a look"
rules:
  - id: T-APPROVE
    when: app.grade >= {approve}
    then: {decision: approve, tier: A, rate_add_bps: app.grade * 7.3}
  - id: T-REFER
    when: app.grade >= {refer} and app.grade < {approve}
    then: {decision: refer, tier: B, reasons: [R-MID]}
  - id: T-DECLINE
    when: app.grade < {refer}
    then: {decision: decline, tier: C, reasons: [R-LOW]}
  - id: T-CAP
    when: tier == 'A'
    then: {limit_cap: 0.5 * app.amount}
  - id: T-FLAG
    when: app.flag
    then:
      alerts:
        - {code: EW-FLAG, severity: high, message: "flag raised at grade {app.grade}"}
"""

CARD = """\
scorecard: t-card
scaling: {base_points: 600, base_odds: 50, pdo: 20}
characteristics:
  - field: app.grade
    bins:
      - {when: "< 4", points: -40}
      - {when: "[4..7)", points: 0}
      - {when: ">= 7", points: 30}
"""

POLICY = """\
policy: t-policy
rulesets: [t-rules]
scorecard: t-card
defaults: {decision: refer}
pricing: {base_rate: 0.05}
limit: {requested: app.amount}
"""


def rules_text(approve: int, refer: int) -> str:
    return RULES.replace("{approve}", str(approve)).replace("{refer}", str(refer))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("rules")
    (base / "rules.yaml").write_text(rules_text(7, 4))
    (base / "card.yaml").write_text(CARD)
    (base / "policy.yaml").write_text(POLICY)
    candidate = tmp_path_factory.mktemp("candidate")
    (candidate / "rules.yaml").write_text(rules_text(5, 3))
    return base, candidate


def book(rows: list[tuple[int, float, str, str]], path: Path) -> Path:
    """(grade, amount, bad, segment) rows as a CSV portfolio."""
    lines = ["app.grade,app.amount,app.flag,performance.bad,segment"]
    lines += [f"{g},{a!r},{'true' if g % 4 == 0 else ''},{b},{s}" for g, a, b, s in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# Grades 0..9; bad where the grade is 0, 1, 2 or 5; row 9's outcome not known yet.
KNOWN = [(g, 1000.0 * (g + 1), "1" if g in (0, 1, 2, 5) else ("" if g == 9 else "0"), "north" if g < 5 else "south")
         for g in range(10)]


def sides(folders: tuple[Path, Path], candidate: bool = True) -> tuple[Any, Any]:
    base, cand = folders
    b = load_side("baseline", "t-policy", AS_OF, [base])
    c = load_side("candidate", "t-policy", AS_OF, [base], [str(cand)]) if candidate else None
    return b, c


def test_swap_set_migration_and_bad_rates_on_a_known_portfolio(folders: tuple[Path, Path], tmp_path: Path) -> None:
    b, c = sides(folders)
    report = simulate(b, c, book(KNOWN, tmp_path / "book.csv"), options=RunOptions(workers=1))
    assert report["cases"] == 10
    # Baseline: decline 0-3, refer 4-6, approve 7-9. Candidate: decline 0-2, refer 3-4, approve 5-9.
    assert report["swap_set"] == {
        "approve": {"approve": 3, "refer": 0, "decline": 0},
        "refer": {"approve": 2, "refer": 1, "decline": 0},
        "decline": {"approve": 0, "refer": 1, "decline": 3},
    }
    assert report["tier_migration"]["A"] == {"A": 3, "B": 0, "C": 0, "D": 0, "E": 0, "none": 0}
    assert report["tier_migration"]["B"]["A"] == 2 and report["tier_migration"]["B"]["B"] == 1
    assert report["tier_migration"]["C"]["C"] == 3 and report["tier_migration"]["C"]["B"] == 1
    perf = report["swap_set_performance"]
    assert perf["decline"]["decline"] == {"known": 3, "bad": 3, "bad_rate": 1.0}
    assert perf["refer"]["approve"] == {"known": 2, "bad": 1, "bad_rate": 0.5}
    assert perf["approve"]["approve"] == {"known": 2, "bad": 0, "bad_rate": 0.0}
    assert report["swaps"]["swap_in"] == {"cases": 2, "known": 2, "bad": 1, "bad_rate": 0.5}
    base, cand = report["baseline"], report["candidate"]
    assert base["outcomes"] == {"approve": 3, "refer": 3, "decline": 4}
    assert cand["outcomes"] == {"approve": 5, "refer": 2, "decline": 3}
    assert base["bad_rate_by_outcome"] == {"approve": 0.0, "refer": 1 / 3, "decline": 0.75}
    assert base["tiers"] == {"A": 3, "B": 3, "C": 4, "D": 0, "E": 0, "none": 0}
    assert base["rules"]["T-APPROVE"] == 3 and cand["rules"]["T-APPROVE"] == 5
    assert report["rule_fires"]["T-DECLINE"] == {"baseline": 4, "candidate": 3, "change": -1}
    assert base["reasons"] == {"R-LOW": 4, "R-MID": 3}
    # Approved limit: half the amount (T-CAP); rate: 5% + 7.3 bp per grade point.
    assert base["exposure"]["approved_limit"] == 0.5 * (8000 + 9000 + 10000)
    rates = [0.05 + g * 7.3 / 10000 for g in (7, 8, 9)]
    assert base["exposure"]["average_rate"] == pytest.approx(sum(rates) / 3, rel=1e-15)
    # Scores 560 / 600 / 630; goods {560: 1, 600: 2, 630: 2}, bads {560: 3, 600: 1}: worked out by hand.
    assert base["score"]["ks"] == pytest.approx(0.55)
    assert base["score"]["gini"] == pytest.approx(0.65)
    assert report["segments"]["north"]["cases"] == 5 and report["segments"]["south"]["bad"] == 1


def test_every_report_key(folders: tuple[Path, Path], tmp_path: Path) -> None:
    b, c = sides(folders)
    reference = book([(g, 500.0, "0", "x") for g in (1, 5, 5, 8, 9)], tmp_path / "ref.csv")
    report = simulate(b, c, book(KNOWN, tmp_path / "book.csv"), reference=reference, options=RunOptions(workers=1))
    assert set(report) >= {
        "report", "policy", "as_of", "portfolio", "cases", "rows", "row_problems", "known_outcomes", "bads",
        "baseline", "candidate", "swap_set", "swap_set_performance", "swaps", "tier_migration", "rule_fires",
        "reason_mix", "segments", "reference",
    }
    for side in ("baseline", "candidate"):
        s = report[side]
        assert set(s) >= {"outcomes", "outcome_rates", "tiers", "bad_rate_by_outcome", "rules", "reasons",
                          "exposure", "score", "errors", "policy", "documents", "source"}
        assert set(s["outcomes"]) == {"approve", "refer", "decline"}
        assert set(s["exposure"]) >= {"approved_limit", "average_rate", "approved"}
        assert set(s["score"]) >= {"count", "mean", "min", "max", "histogram", "ks", "gini", "psi", "mean_pd"}
        assert s["score"]["psi"] is not None and s["score"]["psi"] > 0
    assert report["baseline"]["score"]["psi"] == pytest.approx(
        psi({560.0: 1, 600.0: 2, 630.0: 2}, {560.0: 4, 600.0: 3, 630.0: 3})["value"]  # type: ignore[index]
    )
    assert report["reference"] == {"cases": 5, "skipped": 0}
    json.dumps(report, allow_nan=False)  # plain JSON: no NaN, no numpy types


def test_without_a_candidate_the_candidate_is_the_baseline(folders: tuple[Path, Path], tmp_path: Path) -> None:
    b, _ = sides(folders, candidate=False)
    report = simulate(b, None, book(KNOWN, tmp_path / "book.csv"), options=RunOptions(workers=1))
    assert report["candidate_given"] is False
    assert report["candidate"]["outcomes"] == report["baseline"]["outcomes"]
    assert all(report["swap_set"][x][y] == 0 for x in report["swap_set"] for y in report["swap_set"] if x != y)


def test_ks_gini_by_hand() -> None:
    # Perfect separation: every good outscores every bad.
    assert ks_gini({700.0: 5}, {500.0: 5}) == (1.0, 1.0)
    # No separation at all.
    assert ks_gini({600.0: 3}, {600.0: 2}) == (0.0, 0.0)
    # goods {1: 1, 2: 1}, bads {1: 1, 2: 1}: KS 0; AUC = (0.5 + 1 + 0.5) / 4 = 0.5.
    assert ks_gini({1.0: 1, 2.0: 1}, {1.0: 1, 2.0: 1}) == (0.0, 0.0)
    # goods {2: 2, 3: 1}, bads {1: 1, 2: 1}: CDFs at 1: bad 1/2, good 0 -> KS 0.5;
    # AUC: good 2 beats the bad at 1 and ties the bad at 2 (1.5 each, x2), good 3 beats both (2) -> 5/6.
    ks, gini = ks_gini({2.0: 2, 3.0: 1}, {1.0: 1, 2.0: 1})  # type: ignore[misc]
    assert ks == 0.5 and gini == pytest.approx(2 * 5 / 6 - 1)
    assert ks_gini({1.0: 3}, {}) is None


def test_psi_by_hand() -> None:
    reference = {600.0: 5, 620.0: 5}
    assert psi_edges(reference, 2) == [600.0]
    assert psi_edges(reference, 10) == [600.0]  # equal quantiles collapse; no edge at the maximum
    assert bin_counts({590.0: 1, 600.0: 2, 610.0: 4, 700.0: 1}, [600.0]) == [3, 5]
    result = psi(reference, {600.0: 2, 620.0: 8}, 2)
    assert result is not None
    assert result["value"] == pytest.approx((0.2 - 0.5) * math.log(0.2 / 0.5) + (0.8 - 0.5) * math.log(0.8 / 0.5))
    # An empty bin counts at a share of 1e-4.
    empty = psi(reference, {620.0: 20}, 2)
    assert empty is not None
    assert empty["value"] == pytest.approx((1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1.0 - 0.5) * math.log(1.0 / 0.5))
    assert psi(reference, reference)["value"] == 0.0  # type: ignore[index]
    # Deciles of a uniform reference.
    uniform = {float(v): 1 for v in range(100)}
    assert psi_edges(uniform) == [9.0, 19.0, 29.0, 39.0, 49.0, 59.0, 69.0, 79.0, 89.0]


def test_exact_sums_do_not_depend_on_grouping() -> None:
    values = [0.1, 0.2, 0.3, 1e16, -1e16, 3.3, 1e-300, 7.25]
    import numpy as np

    whole = ExactSum()
    whole.add(np.array(values))
    parts = []
    for i in range(0, len(values), 3):
        part = ExactSum()
        part.add(np.array(values[i : i + 3]))
        parts.append(part)
    merged = ExactSum()
    for part in reversed(parts):
        merged.merge(part)
    assert merged.value() == whole.value() == math.fsum(values)


@st.composite
def portfolios(draw: st.DrawFn) -> tuple[list[tuple[int, float, str, str]], int, int]:
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(0, 9),
                st.sampled_from([0.0, 1.0, 1234.567, 1e7 / 3, 0.1, 999999.99]),
                st.sampled_from(["0", "1", ""]),
                st.sampled_from(["north", "south", "", "<b>&east"]),
            ),
            min_size=1,
            max_size=40,
        )
    )
    return rows, draw(st.integers(1, len(rows))), draw(st.integers(0, 2**32 - 1))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(portfolios())
def test_chunking_never_changes_a_report(folders: tuple[Path, Path], case: Any) -> None:
    """Random chunkings, merged in a random order and grouping, give the report of the whole portfolio."""
    rows, chunk_rows, seed = case
    b, c = sides(folders)
    compiled = [compile_side(s) for s in (b, c)]
    with tempfile.TemporaryDirectory() as folder:
        path = book(rows, Path(folder) / "book.csv")

        def tallies(size: int) -> list[Tally]:
            source = Portfolio(path, size)
            out = []
            for block in source.blocks():
                result = run_chunk(ChunkTask("simulate", (b, c), source.format, source.header, block))
                assert result.tally is not None
                out.append(result.tally)
            return out

        whole = tallies(len(rows) + 1)
        assert len(whole) == 1
        parts = tallies(chunk_rows)
    rng = random.Random(seed)
    rng.shuffle(parts)
    while len(parts) > 1:  # merge random neighbours: a random tree
        i = rng.randrange(len(parts) - 1)
        parts[i : i + 2] = [parts[i].merge(parts[i + 1])]
    meta = {"policy": "t-policy"}

    def report(t: Tally) -> str:
        return json.dumps(build_report(t, compiled[0].info, compiled[1].info, meta), sort_keys=True)

    assert report(parts[0]) == report(whole[0])


def test_process_pool_and_inline_give_the_same_report(folders: tuple[Path, Path], tmp_path: Path) -> None:
    b, c = sides(folders)
    path = book(KNOWN * 30, tmp_path / "book.csv")
    inline = simulate(b, c, path, options=RunOptions(workers=1, chunk_rows=1000))
    pooled = simulate(b, c, path, options=RunOptions(workers=2, chunk_rows=17))
    assert pooled == inline


def test_dask_local_cluster_gives_the_same_report(folders: tuple[Path, Path], tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    b, c = sides(folders)
    path = book(KNOWN * 20, tmp_path / "book.csv")
    inline = simulate(b, c, path, options=RunOptions(workers=1))
    with (
        # Threads in this process, but on TCP at the loopback address, so that a `credo` process can connect.
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_dask = simulate(b, c, path, options=RunOptions(client=client, chunk_rows=23))
        # The command line reaches the same cluster by its address.
        run = cli("simulate", "--policy", "t-policy", "--rules", str(folders[0]), "--candidate", str(folders[1]),
                  "--portfolio", str(path), "--as-of", AS_OF.isoformat(), "--scheduler", cluster.scheduler_address,
                  "--chunk-size", "50", "--out", "-")
    assert on_dask == inline
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == inline


def test_bad_rows_fail_or_are_skipped_and_none_is_silent(folders: tuple[Path, Path], tmp_path: Path) -> None:
    b, _ = sides(folders, candidate=False)
    path = book(KNOWN, tmp_path / "book.csv")
    text = path.read_text().splitlines()
    text[3] = "two,3000.0,,0,north"
    text[6] = "5,-1,,0,north"
    path.write_text("\n".join(text) + "\n")
    seen: list[str] = []
    out = tmp_path / "cases.jsonl"
    with pytest.raises(RowsRejected):
        simulate(b, None, path, cases_out=out,
                 options=RunOptions(workers=1, on_problem=lambda p: seen.append(p.format())))
    assert not out.exists()  # nothing half-written
    assert seen == [
        "row 4, column app.grade: app.grade must be a number, found 'two'",
        "row 7, column app.amount: app.amount must be at least 0, found -1",
    ]
    seen.clear()
    report = simulate(b, None, path, cases_out=out,
                      options=RunOptions(workers=1, on_bad_row="skip", on_problem=lambda p: seen.append(p.format())))
    assert len(seen) == 2
    assert report["rows"] == {"read": 10, "decided": 8, "skipped": 2}
    assert report["row_problems"]["count"] == 2
    assert report["row_problems"]["first"][0] == {"row": 4, "column": "app.grade", "code": "wrong-type",
                                                  "message": "app.grade must be a number, found 'two'"}
    lines = out.read_text().splitlines()
    assert len(lines) == 10 and json.loads(lines[2])["error"]["code"] == "invalid-case"


def test_candidate_refs_that_need_the_database(folders: tuple[Path, Path]) -> None:
    from engine.errors import CredoError

    for ref in ("pf-eligibility@3", "my-draft"):
        with pytest.raises(CredoError) as caught:
            load_side("candidate", "t-policy", AS_OF, [folders[0]], [ref])
        assert caught.value.problems[0].code == "needs-database"
        assert "(not yet available)" in caught.value.problems[0].message
    with pytest.raises(CredoError) as caught:
        load_side("candidate", "t-policy", AS_OF, [folders[0]], ["./no/such/folder"])
    assert caught.value.problems[0].code == "no-such-path"


# -- the command line ---------------------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`credo` in this process (the subprocess tests below run the real command): quicker, same code."""
    from engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def credo(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return credo_all([list(args)], cwd)[0]


def credo_all(commands: list[list[str]], cwd: Path = ROOT) -> list[subprocess.CompletedProcess[str]]:
    """Run `credo` commands side by side, as separate processes."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "engine.cli", *args],
            cwd=cwd,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        for args in commands
    ]
    results = []
    for args, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=180)
        results.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return results


def _typed_cases(csv_path: Path) -> list[dict[str, Any]]:
    """The CSV rows as JSON cases, typed by the baseline's declarations: what `credo decide` reads."""
    import csv

    schema = Library.load().schema
    cases = []
    with csv_path.open() as stream:
        for row in csv.DictReader(stream):
            case: dict[str, dict[str, Any]] = {}
            for column, cell in row.items():
                if column in ("performance.bad", "segment") or cell == "":
                    continue
                fact, name = column.split(".")
                kind = schema.fields[(fact, name)].type
                value: Any = cell
                if kind in ("number", "integer"):
                    value = float(cell)
                elif kind == "boolean":
                    value = cell.lower() == "true"
                case.setdefault(fact, {})[name] = value
            cases.append(case)
    return cases


def _without_because(decision: dict[str, Any]) -> dict[str, Any]:
    for entry in decision.get("fired", []):
        entry.pop("because", None)
    return decision


def test_cases_out_equals_credo_decide_on_the_same_cases(tmp_path: Path) -> None:
    demo = (ROOT / "examples" / "portfolio.csv").read_text().splitlines()
    portfolio = tmp_path / "book.csv"
    portfolio.write_text("\n".join(demo[:81]) + "\n")  # the header and 80 cases
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps(c) + "\n" for c in _typed_cases(portfolio)))
    # A candidate with a stricter score cut-off and a lower DSCR floor, and the same library laid out for
    # `credo decide --rules`.
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    text = (ROOT / "rulesets" / "pf-eligibility.yaml").read_text()
    for old, new in [("when: financials.dscr < 1.2", "when: financials.dscr < 1.1"),
                     ("when: financials.dscr >= 1.2 and", "when: financials.dscr >= 1.1 and"),
                     ("when: score < 560", "when: score < 640"), ("and score >= 560", "and score >= 640")]:
        assert old in text
        text = text.replace(old, new)
    (candidate / "pf-eligibility.yaml").write_text(text)
    merged = tmp_path / "merged"
    shutil.copytree(ROOT / "rulesets", merged / "rulesets")
    shutil.copytree(ROOT / "policies", merged / "policies")
    (merged / "rulesets" / "pf-eligibility.yaml").write_text(text)

    out = tmp_path / "decisions.jsonl"
    run, base, cand = credo_all([
        ["simulate", "--policy", "project-finance", "--portfolio", str(portfolio), "--candidate", str(candidate),
         "--as-of", "2026-06-30", "--cases-out", str(out), "--workers", "2", "--chunk-size", "30"],
        ["decide", "--policy", "project-finance", str(cases), "--as-of", "2026-06-30"],
        ["decide", "--policy", "project-finance", str(cases), "--as-of", "2026-06-30", "--rules",
         str(merged / "rulesets"), "--rules", str(merged / "policies")],
    ])
    assert run.returncode == 0, run.stderr
    assert base.returncode == 0 and cand.returncode == 0, base.stderr + cand.stderr
    simulated = [json.loads(line) for line in out.read_text().splitlines()]
    decided_b = [json.loads(line) for line in base.stdout.splitlines()]
    decided_c = [json.loads(line) for line in cand.stdout.splitlines()]
    assert len(simulated) == len(decided_b) == len(decided_c) == 80
    changed = 0
    for s, b, c in zip(simulated, decided_b, decided_c, strict=True):
        assert _without_because(s["baseline"]) == _without_because(b)
        assert _without_because(s["candidate"]) == _without_because(c)
        changed += s["baseline"]["outcome"] != s["candidate"]["outcome"]
    assert changed > 0  # the candidate matters on this book


def test_credo_simulate_prints_and_writes_json_and_html(folders: tuple[Path, Path], tmp_path: Path) -> None:
    path = book([*KNOWN, (3, 10.0, "1", "<script>alert(1)</script>")], tmp_path / "book.csv")
    report_json, report_html = tmp_path / "report.json", tmp_path / "report.html"
    run = cli("simulate", "--policy", "t-policy", "--rules", str(folders[0]), "--candidate", str(folders[1]),
              "--portfolio", str(path), "--as-of", "2026-06-30", "--out", str(report_json), "--out", str(report_html))
    assert run.returncode == 0, run.stderr
    assert "t-policy on " in run.stdout and "swap set" in run.stdout
    report = json.loads(report_json.read_text())
    assert report["cases"] == 11 and report["as_of"] == "2026-06-30"
    html = report_html.read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Swap set" in html and "T-APPROVE" in html


def test_credo_simulate_exit_codes(folders: tuple[Path, Path], tmp_path: Path) -> None:
    path = book(KNOWN, tmp_path / "book.csv")
    path.write_text(path.read_text().replace("\n5,", "\nfive,", 1))
    common = ["simulate", "--policy", "t-policy", "--rules", str(folders[0]), "--portfolio", str(path)]
    failed = cli(*common)
    assert failed.returncode == 1
    assert "row 7, column app.grade: app.grade must be a number, found 'five'" in failed.stderr
    skipped = cli(*common, "--on-bad-row", "skip")
    assert skipped.returncode == 0 and "row 7, column app.grade" in skipped.stderr
    versioned = cli(*common, "--candidate", "t-rules@2")
    assert versioned.returncode == 2 and "needs-database" in versioned.stderr
    header = tmp_path / "bad-header.csv"
    header.write_text("app.grade,app.amount,app.colour\n1,2,3\n")
    wrong = cli("simulate", "--policy", "t-policy", "--rules", str(folders[0]), "--portfolio", str(header))
    assert wrong.returncode == 2 and "unknown-column: column 'app.colour' is not a declared field" in wrong.stderr


def test_credo_simulate_runs_on_the_demo_portfolio(tmp_path: Path) -> None:
    run = credo("simulate", "--policy", "project-finance", "--portfolio", "examples/portfolio.csv", "--as-of",
                "2026-06-30", "--out", str(tmp_path / "r.json"), "--out", str(tmp_path / "r.html"))
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["cases"] == 2000 and report["rows"]["skipped"] == 0
    b = report["baseline"]
    assert all(b["outcomes"][o] > 100 for o in ("approve", "refer", "decline"))
    assert 0.1 < b["score"]["ks"] < 0.9 and 0.1 < b["score"]["gini"] < 0.9
    assert b["bad_rate_by_outcome"]["approve"] < b["bad_rate_by_outcome"]["decline"]


def test_credo_monitor_writes_alerts_grouped_by_severity(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    run = cli("monitor", "--policy", "project-finance", "--portfolio", str(ROOT / "examples" / "book.jsonl"),
              "--as-of", "2026-06-30", "--out", str(out))
    assert run.returncode == 0, run.stderr
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    assert [rank[a["severity"]] for a in alerts] == sorted(rank[a["severity"]] for a in alerts)
    # Within a severity, input order; and exactly the alerts `credo decide` gives each case.
    for severity in rank:
        rows = [a["row"] for a in alerts if a["severity"] == severity]
        assert rows == sorted(rows)
    unit = Library.load().compile_policy("project-finance", AS_OF)
    expected = []
    for number, line in enumerate((ROOT / "examples" / "book.jsonl").read_text().splitlines(), start=1):
        for alert in decide(unit, json.loads(line), AS_OF)["alerts"]:
            expected.append((number, alert["code"], alert["severity"], alert["message"]))
    assert sorted((a["row"], a["code"], a["severity"], a["message"]) for a in alerts) == sorted(expected)
    assert len(expected) >= 5
    assert all(a["ruleset"] == "early-warning" for a in alerts)
    assert "6 cases swept" in run.stderr
