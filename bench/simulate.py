"""Benchmark: `credo simulate` on a million synthetic cases, against what else could do the job.

    .venv/bin/python bench/simulate.py                      # 1M cases, 10k sample for the per-case engines
    .venv/bin/python bench/simulate.py --rows 20000 --sample 500   # a quick look

One run measures, each in a process of its own (wall time and the peak RSS of its process tree):

* `credo simulate --policy project-finance` (baseline, no candidate) on the generated portfolio, end to end:
  the command, reading and checking every cell, the vectorised plan over a process pool, the report;
* a hand-written numpy implementation of the same policy, the near-physical baseline, twice:
  end to end (its own chunked CSV reader, masks, the same counts) and its core (masks and counts over
  columns already in memory), against the core of ours (`VectorPlan.run` and the tally, same columns);
* zen-engine (GoRules) deciding the policy translated to decision tables (bench/zen_translate.py), and
  the durable_rules network (`credo decide`'s engine), one case at a time on a sample.

It prints the figures and the ratios the simulation issue sets as targets: ours within 3x of hand-written
numpy, and at least 100x faster per case than zen-engine and durable_rules. The synthetic portfolio
(bench/make_portfolio.py) is generated once and kept in the data folder.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
# Run as a script, this folder is first on the path, and bench/engine.py (a module) would win over the engine
# namespace package wherever each sits on the path: so this folder leaves the path, and the bench modules this
# script uses are loaded from their files (`_bench`).
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != BENCH)]


def _bench(name: str) -> Any:
    import importlib.util

    found = sys.modules.get(name)
    if found is not None:
        return found
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

POLICY = "project-finance"
AS_OF = "2026-06-30"
SEED = 20260101
CHUNK = 50_000


# -- measuring a process tree -----------------------------------------------------------------------------------------


def _tree_rss(root: int) -> int:
    """Resident memory (bytes) of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            pid, ppid = int(entry), int(fields[1])
            rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
            children.setdefault(ppid, []).append(pid)
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total


def measure(argv: list[str]) -> tuple[float, int, str]:
    """Run a command; its wall time, the peak RSS of its process tree (sampled every 20 ms), and its stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err}")
    return wall, peak, out


# -- the hand-written numpy implementation of project-finance --------------------------------------------------------

NUMERIC = [
    "application.amount", "application.tenor_months", "borrower.registered_capital", "borrower.years_in_business",
    "financials.total_assets", "financials.total_liabilities", "financials.current_assets",
    "financials.current_liabilities", "financials.revenue", "financials.ebitda", "financials.net_income",
    "financials.operating_cash_flow", "financials.debt_service", "financials_prev.total_assets",
    "financials_prev.total_liabilities", "financials_prev.revenue", "credit.max_dpd_12m", "credit.defaults_5y",
    "credit.restructurings_5y", "credit.existing_exposure", "project.total_investment",
    "project.sponsor_equity_pct", "project.expected_irr", "project.construction_months", "project.covenant_dscr",
]
TEXT = ["application.product", "borrower.industry", "borrower.lifecycle_stage", "financials.audit_opinion",
        "project.construction_risk", "financials.audited"]


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = a / b
    out[~np.isfinite(out)] = np.nan  # x / 0 is null in the language
    return out


def numpy_policy(c: Callable[[str], np.ndarray]) -> dict[str, Any]:
    """project-finance written by hand as numpy masks: outcome, tier, score, limit, rate and every rule's mask.

    NaN is a missing value; a comparison with NaN is False, which is the language's "unknown, does not fire".
    """
    amount, tenor, capital = c("application.amount"), c("application.tenor_months"), c("borrower.registered_capital")
    years, assets, liabilities = c("borrower.years_in_business"), c("financials.total_assets"), c(
        "financials.total_liabilities")
    ebitda, service, dpd = c("financials.ebitda"), c("financials.debt_service"), c("credit.max_dpd_12m")
    defaults, restructured, exposure = c("credit.defaults_5y"), c("credit.restructurings_5y"), c(
        "credit.existing_exposure")
    investment, equity_pct, irr = c("project.total_investment"), c("project.sponsor_equity_pct"), c(
        "project.expected_irr")
    months, covenant = c("project.construction_months"), c("project.covenant_dscr")
    product, industry, stage = c("application.product"), c("borrower.industry"), c("borrower.lifecycle_stage")
    opinion, risk, audited = c("financials.audit_opinion"), c("project.construction_risk"), c("financials.audited")
    n = amount.shape[0]

    # derive
    equity = assets - liabilities
    leverage = _div(liabilities, np.maximum(equity, 0.0))
    dscr = _div(ebitda, service)
    current_ratio = _div(c("financials.current_assets"), c("financials.current_liabilities"))
    growth = _div(c("financials.revenue"), c("financials_prev.revenue")) - 1.0
    prev_assets, prev_liab = c("financials_prev.total_assets"), c("financials_prev.total_liabilities")
    leverage_prev = _div(prev_liab, np.fmax(prev_assets - prev_liab, 0.0))
    leverage_prev[np.isnan(prev_assets - prev_liab)] = np.nan
    leverage_change = leverage - leverage_prev
    debt_need = investment - investment * equity_pct
    project = product == "project_loan"
    unaudited = ~(audited == 1.0)  # missing or false

    # scorecard
    def bins(value: np.ndarray, edges: list[float], points: list[float], missing: float) -> np.ndarray:
        out = np.asarray(points, dtype=np.float64)[np.searchsorted(np.asarray(edges), value, side="right")]
        out[np.isnan(value)] = missing
        return out

    score = (600.0 + bins(dscr, [1.0, 1.2, 1.5], [-40, -15, 0, 25], -20)
             + bins(leverage, [1.0, 2.5, 4.0], [20, 10, -10, -30], -30)
             + bins(current_ratio, [1.0, 1.5], [-20, 0, 15], -5)
             + bins(years, [3, 10], [-20, 0, 15], 0)
             + np.where((industry == "energy") | (industry == "infrastructure"), 10.0,
                        np.where(industry == "real_estate", -20.0, 0.0))
             + bins(dpd, [1, 31], [20, -25, -60], 0)
             + bins(growth, [-0.1, 0.05], [-20, 0, 10], -5))
    pd = 1.0 / (1.0 + 50.0 * 2.0 ** ((score - 600.0) / 20.0))

    # tier: the grid (first row that matches) and the rules; "worst" is the highest index
    fired: dict[str, np.ndarray] = {}
    good_stage = (stage == "growth") | (stage == "maturity")
    rows = [
        (dscr >= 1.5) & (leverage < 2.0) & (dpd == 0) & good_stage,
        (dscr >= 1.3) & (leverage < 3.0) & (dpd == 0) & (stage != "decline"),
        (dscr >= 1.2) & (leverage < 4.0) & (dpd <= 30),
        (dscr >= 1.0) & (leverage < 6.0) & (dpd <= 90),
    ]
    grid = np.full(n, 4, dtype=np.int8)
    for t in (3, 2, 1, 0):
        grid[rows[t]] = t
    for t in range(5):
        fired[f"TIER-GRID/{t + 1}"] = grid == t
    tier = grid.copy()
    for key, mask, value in [
        ("TIER-STAGE-DECLINE", stage == "decline", 3),
        ("TIER-RESTRUCTURED", restructured > 0, 2),
        ("TIER-DEFAULT", defaults == 1, 3),
        ("TIER-DEFAULT-REPEAT", defaults >= 2, 4),
    ]:
        fired[key] = mask
        tier = np.where(mask, np.maximum(tier, value), tier)

    # eligibility: decision "worst" (approve 0 < refer 1 < decline 2), -1 for none
    decision = np.full(n, -1, dtype=np.int8)
    for key, mask, value in [
        ("DQ-UNAUDITED-LARGE", (amount >= 50_000_000) & unaudited, 1),
        ("PF-PRODUCT", ~project, 1),
        ("PF-DSCR-LOW", dscr < 1.2, 2),
        ("PF-DSCR-THIN", (dscr >= 1.2) & (dscr < 1.35), 1),
        ("PF-NEG-EQUITY", liabilities >= assets, 2),
        ("PF-LEV-HIGH", leverage > 4.0, 2),
        ("PF-LEV-ELEVATED", (leverage > 3.0) & (leverage <= 4.0), 1),
        ("PF-EQUITY-LOW", equity_pct < 0.2, 2),
        ("PF-EQUITY-THIN", (equity_pct >= 0.2) & (equity_pct < 0.25), 1),
        ("PF-DATA", np.isnan(investment) | np.isnan(equity_pct), 1),
        ("PF-CONSTRUCTION", (risk == "high") & (months > 24), 1),
        ("PF-IRR-LOW", irr < 0.06, 1),
        ("PF-REAL-ESTATE", industry == "real_estate", 1),
        ("PF-DPD-SEVERE", dpd > 30, 2),
        ("PF-DPD-MINOR", (dpd >= 1) & (dpd <= 30), 1),
        ("PF-DEFAULT", defaults > 0, 2),
        ("PF-TIER-E", tier == 4, 2),
        ("PF-TIER-D", tier == 3, 1),
        ("PF-SCORE-LOW", score < 560, 1),
        ("PF-APPROVE", (tier <= 2) & (score >= 560), 0),
    ]:
        fired[key] = mask
        decision = np.where(mask, np.maximum(decision, value), decision)
    outcome = np.where(decision < 0, 1, decision).astype(np.int8)  # default: refer

    # limits and pricing
    multiple = np.array([5.0, 4.0, 3.0, 2.0, 0.0])[tier]
    cap = np.where(tier <= 3, np.maximum(multiple * ebitda - exposure, 0.0), 0.0)
    for t in range(5):
        fired[f"LIM-EBITDA/{t + 1}"] = tier == t
        fired[f"PRC-TIER/{t + 1}"] = tier == t
    bps = np.array([60.0, 110.0, 180.0, 280.0, 400.0])[tier]
    for k, (name, add) in enumerate([("low", 0.0), ("medium", 30.0), ("high", 80.0)]):
        mask = risk == name
        fired[f"PRC-CONSTRUCTION/{k + 1}"] = mask
        bps = bps + np.where(mask, add, 0.0)
    need = project & ~np.isnan(debt_need)
    fired["LIM-PF-DEBT-NEED"] = need
    cap = np.where(need, np.fmin(cap, debt_need), cap)
    for key, mask, share in [
        ("LIM-CAPITAL-AB", (tier <= 1) & ~project, 0.5),
        ("LIM-CAPITAL-C", (tier == 2) & ~project, 0.3),
        ("LIM-CAPITAL-DE", (tier >= 3) & ~project, 0.2),
    ]:
        fired[key] = mask
        cap = np.where(mask, np.fmin(cap, share * capital), cap)
    long_tenor = tenor > 120
    fired["PRC-LONG-TENOR"] = long_tenor
    bps = bps + np.where(long_tenor, 25.0, 0.0)
    no_room = (cap <= 0) & (tier <= 3)  # LIM-NO-ROOM: nothing to lend is a referral (a decline stays)
    fired["LIM-NO-ROOM"] = no_room
    outcome = np.where(no_room, np.maximum(outcome, 1), outcome).astype(np.int8)
    declined = outcome == 2
    limit = np.where(declined, np.nan, np.fmin(amount, cap))
    rate = np.where(declined, np.nan, 0.035 + bps / 10000.0)

    # conditions and early warnings: fire counts only
    dscr_cov = dscr < covenant
    for key, mask in [
        ("COND-DSCR-REPORTING", tier >= 2), ("COND-COLLATERAL", tier >= 3), ("COND-PF-SECURITY", project),
        ("COND-COVENANT", ~np.isnan(covenant)), ("COND-EPC", (risk == "medium") | (risk == "high")),
        ("COND-AUDIT", unaudited), ("EW-DSCR-COVENANT", dscr_cov), ("EW-DSCR-FLOOR", np.isnan(covenant) & (dscr < 1.2)),
        ("EW-NEGATIVE-OCF", c("financials.operating_cash_flow") < 0), ("EW-NET-LOSS", c("financials.net_income") < 0),
        ("EW-REVENUE-DROP", growth < -0.2), ("EW-LEVERAGE-JUMP", leverage_change > 1.0),
        ("EW-DPD-30", (dpd >= 30) & (dpd < 90)), ("EW-DPD-90", dpd >= 90),
        ("EW-AUDIT-QUALIFIED", opinion == "qualified"),
        ("EW-AUDIT-ADVERSE", (opinion == "adverse") | (opinion == "disclaimer")), ("EW-UNAUDITED", unaudited),
        ("EW-LIFECYCLE-DECLINE", stage == "decline"),
    ]:
        fired[key] = mask
    return {"outcome": outcome, "tier": tier, "score": score, "pd": pd, "limit": limit, "rate": rate, "fired": fired}


def numpy_counts(result: dict[str, Any]) -> dict[str, Any]:
    """What the report counts, for one chunk: outcomes, tiers, fires, approved exposure and rate, score values."""
    outcome = result["outcome"]
    approved = outcome == 0
    scores, counts = np.unique(result["score"], return_counts=True)
    return {
        "outcomes": np.bincount(outcome, minlength=3).tolist(),
        "tiers": np.bincount(result["tier"], minlength=5).tolist(),
        "fired": {k: int(v.sum()) for k, v in result["fired"].items()},
        "approved_limit": float(np.nansum(result["limit"][approved])),
        "rate_sum": float(np.nansum(result["rate"][approved])),
        "scores": dict(zip(scores.tolist(), counts.tolist(), strict=True)),
    }


def merge_counts(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    if not total:
        return part
    total["outcomes"] = [a + b for a, b in zip(total["outcomes"], part["outcomes"], strict=True)]
    total["tiers"] = [a + b for a, b in zip(total["tiers"], part["tiers"], strict=True)]
    for k, v in part["fired"].items():
        total["fired"][k] = total["fired"].get(k, 0) + v
    total["approved_limit"] += part["approved_limit"]
    total["rate_sum"] += part["rate_sum"]
    for k, v in part["scores"].items():
        total["scores"][k] = total["scores"].get(k, 0) + v
    return total


def read_numpy_chunks(path: Path) -> Any:
    """The hand-written reader: chunks of rows into float columns (empty = NaN) and text columns, no checks."""
    with path.open(encoding="utf-8", newline="") as stream:
        reader = csv.reader(stream)
        header = next(reader)
        where = {name: i for i, name in enumerate(header)}
        while True:
            rows = [row for _, row in zip(range(CHUNK), reader, strict=False)]
            if not rows:
                return
            columns = list(zip(*rows, strict=True))
            out: dict[str, np.ndarray] = {}
            for name in NUMERIC:
                col = columns[where[name]]
                out[name] = np.fromiter((float(v) if v else np.nan for v in col), dtype=np.float64, count=len(col))
            for name in TEXT:
                col = np.array(columns[where[name]], dtype=object)
                if name == "financials.audited":
                    out[name] = np.where(col == "true", 1.0, np.where(col == "false", 0.0, np.nan))
                else:
                    out[name] = col
            yield out


def stage_numpy(path: Path) -> dict[str, Any]:
    start = time.perf_counter()
    total: dict[str, Any] = {}
    for chunk in read_numpy_chunks(path):
        total = merge_counts(total, numpy_counts(numpy_policy(chunk.__getitem__)))
    return {"seconds": time.perf_counter() - start, "outcomes": total["outcomes"], "tiers": total["tiers"],
            "fired": total["fired"]}


# -- the other stages -------------------------------------------------------------------------------------------------


def _decoded(path: Path) -> tuple[Any, list[Any]]:
    """The portfolio through credo's own reader, kept in memory: the columns both cores run on."""
    from engine.portfolio import Decoder, Portfolio
    from engine.simulate import compile_side, load_side

    side = compile_side(load_side("baseline", POLICY, dt.date.fromisoformat(AS_OF)))
    portfolio = Portfolio(path, CHUNK)
    decoder = Decoder(portfolio.format, portfolio.header, [side.unit])
    return side, [decoder.decode(block) for block in portfolio.blocks()]


def stage_core(path: Path) -> dict[str, Any]:
    from engine.report import Tally, chunk_tally
    from engine.vector import Columns

    side, chunks = _decoded(path)
    columns = [Columns(d.count, d.side_values(side.unit.schema.fields)) for d in chunks]
    as_of = dt.date.fromisoformat(AS_OF)
    start = time.perf_counter()
    total = Tally()
    for d, cols in zip(chunks, columns, strict=True):
        result = side.plan.run(cols, as_of)
        total.merge(chunk_tally(result, None, (side.tiers, side.tiers), (side.keys, side.keys), d.bad, d.segment))
    ours = time.perf_counter() - start

    def texts(d: Any) -> dict[str, np.ndarray]:
        # credo's reader hands enums over as codes; the hand-written version gets plain text arrays (untimed).
        out = {}
        for (fact, field), column in d.values.items():
            values = d.enum_values.get((fact, field))
            out[f"{fact}.{field}"] = column if values is None else np.array([*values, None], dtype=object)[column]
        return out

    plain = [texts(d) for d in chunks]
    start = time.perf_counter()
    counts: dict[str, Any] = {}
    for chunk in plain:
        counts = merge_counts(counts, numpy_counts(numpy_policy(chunk.__getitem__)))
    numpy_seconds = time.perf_counter() - start
    agree = counts["outcomes"] == total.baseline.outcomes and counts["fired"] == {
        k: v for k, v in total.baseline.fired.items() if k in counts["fired"]
    }
    return {"ours": ours, "numpy": numpy_seconds, "agree": agree, "rows": total.cases}


def _sample_cases(path: Path, size: int) -> list[dict[str, Any]]:
    """The first rows as JSON cases, typed by the declarations (what `credo decide` and zen-engine take)."""
    from engine.library import Library

    schema = Library.load().schema
    cases: list[dict[str, Any]] = []
    with path.open(encoding="utf-8", newline="") as stream:
        for row in csv.DictReader(stream):
            if len(cases) >= size:
                break
            case: dict[str, dict[str, Any]] = {}
            for column, cell in row.items():
                if column in ("performance.bad", "segment") or not cell:
                    continue
                fact, name = column.split(".")
                kind = schema.fields[(fact, name)].type
                case.setdefault(fact, {})[name] = (
                    float(cell) if kind in ("number", "integer") else (cell == "true" if kind == "boolean" else cell)
                )
            cases.append(case)
    return cases


def stage_zen(path: Path, size: int) -> dict[str, Any]:
    ZenPolicy = _bench("zen_translate").ZenPolicy

    from engine.evaluate import decide
    from engine.library import Library

    cases = _sample_cases(path, size)
    unit = Library.load().compile_policy(POLICY, dt.date.fromisoformat(AS_OF))
    zen = ZenPolicy(unit)
    start = time.perf_counter()
    outcomes = [zen.evaluate(case)["outcome"] for case in cases]
    seconds = time.perf_counter() - start
    expected = [decide(unit, case, dt.date.fromisoformat(AS_OF), "reference")["outcome"] for case in cases]
    agree = sum(a == b for a, b in zip(outcomes, expected, strict=True)) / max(1, len(cases))
    return {"seconds": seconds, "cases": len(cases), "agree": agree}


def stage_durable(path: Path, size: int) -> dict[str, Any]:
    from engine.evaluate import decide
    from engine.library import Library

    cases = _sample_cases(path, size)
    unit = Library.load().compile_policy(POLICY, dt.date.fromisoformat(AS_OF))
    as_of = dt.date.fromisoformat(AS_OF)
    decide(unit, cases[0], as_of, "rete")  # build the network before the clock starts
    start = time.perf_counter()
    for case in cases:
        decide(unit, case, as_of, "rete")
    return {"seconds": time.perf_counter() - start, "cases": len(cases)}


# -- the run ----------------------------------------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=10_000, help="cases for zen-engine and durable_rules")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "credo-bench")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--stage", choices=("numpy", "core", "zen", "durable"), help=argparse.SUPPRESS)
    parser.add_argument("--portfolio", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.stage:  # a measured child process: print one JSON object
        handlers: dict[str, Callable[[], dict[str, Any]]] = {
            "numpy": lambda: stage_numpy(args.portfolio),
            "core": lambda: stage_core(args.portfolio),
            "zen": lambda: stage_zen(args.portfolio, args.sample),
            "durable": lambda: stage_durable(args.portfolio, args.sample),
        }
        print(json.dumps(handlers[args.stage]()))
        return 0

    write_csv = _bench("make_portfolio").write_csv

    path = args.data / f"book-{args.rows}-{SEED}.csv"
    if not path.exists():
        print(f"generating {args.rows:,} synthetic cases into {path} (once)...", file=sys.stderr)
        tmp = path.with_suffix(".tmp")
        write_csv(tmp, args.rows, SEED)
        tmp.replace(path)
    python = sys.executable
    me = str(Path(__file__).resolve())
    child = [python, me, "--portfolio", str(path), "--sample", str(args.sample), "--stage"]

    print(f"credo simulate: {args.rows:,} cases, policy {POLICY}, {args.workers} workers...", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        report_path = Path(folder) / "report.json"
        ours_wall, ours_rss, _ = measure([
            python, "-m", "engine.cli", "simulate", "--policy", POLICY, "--portfolio", str(path), "--as-of", AS_OF,
            "--workers", str(args.workers), "--out", str(report_path), "--no-progress",
        ])
        report = json.loads(report_path.read_text())
    print("hand-written numpy, end to end...", file=sys.stderr)
    numpy_wall, numpy_rss, out = measure([*child, "numpy"])
    numpy_run = json.loads(out)
    print("cores on in-memory columns...", file=sys.stderr)
    _, core_rss, out = measure([*child, "core"])
    core = json.loads(out)
    print(f"zen-engine on {args.sample:,} cases...", file=sys.stderr)
    _, zen_rss, out = measure([*child, "zen"])
    zen = json.loads(out)
    print(f"durable_rules on {args.sample:,} cases...", file=sys.stderr)
    _, durable_rss, out = measure([*child, "durable"])
    durable = json.loads(out)

    rows = report["cases"]
    per_case = ours_wall / rows
    zen_case = zen["seconds"] / zen["cases"]
    durable_case = durable["seconds"] / durable["cases"]
    agree = numpy_run["outcomes"] == list(report["baseline"]["outcomes"].values())
    figures = {
        "rows": rows,
        "workers": args.workers,
        "credo_simulate": {"seconds": ours_wall, "peak_rss": ours_rss, "per_case_us": per_case * 1e6},
        "numpy_end_to_end": {"seconds": numpy_wall, "peak_rss": numpy_rss, "outcomes_agree": agree},
        "core": {"vector_plan_seconds": core["ours"], "numpy_seconds": core["numpy"], "agree": core["agree"],
                 "peak_rss": core_rss},
        "zen_engine": {"cases": zen["cases"], "seconds": zen["seconds"], "per_case_us": zen_case * 1e6,
                       "outcomes_agree": zen["agree"], "peak_rss": zen_rss},
        "durable_rules": {"cases": durable["cases"], "seconds": durable["seconds"],
                          "per_case_us": durable_case * 1e6, "peak_rss": durable_rss},
        "ratios": {
            "simulate_vs_numpy_end_to_end": ours_wall / numpy_wall,
            "vector_core_vs_numpy_core": core["ours"] / core["numpy"],
            "zen_per_case_vs_simulate": zen_case / per_case,
            "durable_per_case_vs_simulate": durable_case / per_case,
            # zen-engine and durable_rules are handed cases already in memory; so is the vectorised core.
            "zen_per_case_vs_vector_core": zen_case / (core["ours"] / rows),
            "durable_per_case_vs_vector_core": durable_case / (core["ours"] / rows),
        },
    }
    r = figures["ratios"]
    zen_label = f"zen-engine, one case at a time ({zen['cases']:,} cases)"
    durable_label = f"durable_rules, one case at a time ({durable['cases']:,})"
    lines = [
        f"portfolio: {rows:,} synthetic cases ({path.stat().st_size / 2**20:,.0f} MiB CSV), policy {POLICY}, "
        f"{args.workers} workers, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end",
        "",
        f"{'':<44}{'wall':>10}{'per case':>12}{'peak RSS':>12}",
        f"{'credo simulate (end to end)':<44}{ours_wall:>9.2f}s{per_case * 1e6:>10.2f}us{_mib(ours_rss):>12}",
        f"{'hand-written numpy (end to end, 1 process)':<44}{numpy_wall:>9.2f}s"
        f"{numpy_wall / rows * 1e6:>10.2f}us{_mib(numpy_rss):>12}",
        f"{'VectorPlan.run + tally (columns in memory)':<44}{core['ours']:>9.2f}s{core['ours'] / rows * 1e6:>10.2f}us",
        f"{'hand-written numpy masks (same columns)':<44}{core['numpy']:>9.2f}s"
        f"{core['numpy'] / rows * 1e6:>10.2f}us",
        f"{zen_label:<44}{zen['seconds']:>9.2f}s"
        f"{zen_case * 1e6:>10.1f}us{_mib(zen_rss):>12}",
        f"{durable_label:<44}{durable['seconds']:>9.2f}s"
        f"{durable_case * 1e6:>10.1f}us{_mib(durable_rss):>12}",
        "",
        f"simulate / hand-written numpy, end to end: {r['simulate_vs_numpy_end_to_end']:.2f}x (target <= 3x)",
        f"VectorPlan core / numpy core:              {r['vector_core_vs_numpy_core']:.2f}x",
        f"zen-engine per case / simulate per case:   {r['zen_per_case_vs_simulate']:,.0f}x end to end, "
        f"{r['zen_per_case_vs_vector_core']:,.0f}x against the core on in-memory cases (target >= 100x)",
        f"durable_rules per case / simulate per case: {r['durable_per_case_vs_simulate']:,.0f}x end to end, "
        f"{r['durable_per_case_vs_vector_core']:,.0f}x against the core on in-memory cases (target >= 100x)",
        f"outcome counts agree with the numpy version: {'yes' if agree and core['agree'] else 'NO'}; "
        f"zen-engine outcomes agree on {zen['agree']:.1%} of its sample",
    ]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
