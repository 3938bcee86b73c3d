"""Credo's engine benchmark: single-case decisions against zen-engine and the stock durable_rules Host.

    python bench/engine.py [--quick] [--cases N] [--rounds R] [--block B] [--json out.json] [--no-host]
    python bench/engine.py --profile      # only: cProfile of Credo's decide() on project-finance

Measures, in one run and on the same machine (so that ratios, not absolute times, carry the meaning):

* `project-finance` (the baseline policy, as of 2026-06-30) on seeded, realistic cases built around
  examples/*.json: Credo's full Decision (`decide()`, rete engine, trace included), Credo's reference
  interpreter, zen-engine on the same policy translated to a JDM graph (bench/zen_translate.py; its outcome is
  checked against Credo's on every case), and the stock durable_rules `Host` with one plain rule per branch;
* synthetic policies of 200 and 1,000 rules (generated YAML) with the same contenders;
* compile time of the 1,000-rule policy: parse + compile + building the durable_rules network (first decision).

Each round decides every case once with every contender, interleaved by blocks of cases (within a block the
contenders take turns, in a rotating order), and every figure is the median over rounds. Each decision is timed
on its own with perf_counter_ns; decisions/s is cases / wall time of a round, and decisions per CPU-second of the
deciding process is printed next to it (less sensitive to other load on a shared machine). The Host runs in a
child process (it starts timer threads; see /work/shared/design/durable-rules-notes.md). bench/README.md says
what each figure means and where the translation to zen differs from Credo.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.util
import json
import math
import os
import platform
import random
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# zen-engine (anyhow) captures a backtrace with every internal error when RUST_BACKTRACE is set; the
# translation avoids errors, but do not let the environment tax zen if one happens.
os.environ.setdefault("RUST_LIB_BACKTRACE", "0")

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# Run as `python bench/engine.py`, this file's folder is sys.path[0] and this file would shadow the `engine`
# package: import Credo from the repository instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(REPO))

AS_OF = dt.date(2026, 6, 30)
SEED = 20260630
TARGET_VS_ZEN = 0.75
STRETCH_VS_ZEN = 1.0
TARGET_COMPILE_S = 1.0


# ---------------------------------------------------------------------------------------------------------------
# Cases for project-finance: seeded variations of examples/*.json


def _examples() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((REPO / "examples").glob("*.json"))]


def pf_cases(n: int, seed: int = SEED) -> list[dict[str, Any]]:
    """Valid cases around the examples: DSCR, leverage, arrears, industry, stage, product and missing fields vary."""
    rng = random.Random(seed)
    templates = _examples()
    project_templates = [t for t in templates if t["application"]["product"] == "project_loan"]
    cases = []
    for _ in range(n):
        base = rng.choice(project_templates if rng.random() < 0.85 else templates)
        case = json.loads(json.dumps(base))
        app, bor, fin, cred = case["application"], case["borrower"], case["financials"], case["credit"]
        app["amount"] = round(app["amount"] * rng.uniform(0.4, 2.2), -4)
        app["tenor_months"] = rng.choice([36, 48, 60, 84, 96, 120, 144, 180, 240])
        app["product"] = "project_loan" if rng.random() < 0.95 else rng.choice(["term_loan", "working_capital"])
        bor["industry"] = rng.choices(["energy", "infrastructure", "manufacturing", "real_estate", "services",
                                       "agriculture"], [34, 34, 10, 6, 9, 7])[0]
        bor["lifecycle_stage"] = rng.choices(["introduction", "growth", "maturity", "decline"], [15, 42, 37, 6])[0]
        bor["years_in_business"] = rng.randint(0, 30)
        bor["registered_capital"] = round(bor["registered_capital"] * rng.uniform(0.3, 2.5), -4)
        assets = round(fin["total_assets"] * rng.uniform(0.3, 2.5), -4)
        leverage = rng.lognormvariate(math.log(1.6), 0.45)  # debt to equity: ~10% above 3x, ~3% above 4x
        fin["total_assets"] = assets
        fin["total_liabilities"] = round(assets * leverage / (1 + leverage), -3)
        if rng.random() < 0.02:  # no positive equity
            fin["total_liabilities"] = round(assets * rng.uniform(1.0, 1.3), -3)
        fin["debt_service"] = round(assets * rng.uniform(0.03, 0.12), -3)
        dscr = rng.lognormvariate(math.log(1.6), 0.22)  # ~8% below 1.2, ~22% below 1.35
        fin["ebitda"] = round(fin["debt_service"] * dscr, -3)
        fin["revenue"] = round(fin["ebitda"] * rng.uniform(1.5, 6.0), -3)
        for name in ("net_income", "operating_cash_flow"):
            if name in fin:
                fin[name] = round(fin["ebitda"] * rng.uniform(-0.15, 0.7), -3)
        if "current_assets" in fin:
            fin["current_liabilities"] = round(fin["current_assets"] * rng.uniform(0.5, 1.6), -3)
        if rng.random() < 0.92:
            fin["audited"] = rng.random() < 0.95
            fin["audit_opinion"] = rng.choices(["unqualified", "qualified", "adverse", "disclaimer"], [88, 8, 2, 2])[0]
        else:
            fin.pop("audited", None)
            fin.pop("audit_opinion", None)
        cred["max_dpd_12m"] = rng.choices([0, rng.randint(1, 30), rng.randint(31, 120)], [86, 9, 5])[0]
        cred["defaults_5y"] = rng.choices([0, 1, 2], [95, 3, 2])[0]
        cred["restructurings_5y"] = rng.choices([0, 1], [94, 6])[0]
        cred["existing_exposure"] = round(assets * rng.uniform(0, 0.2), -4)
        prev = case.get("financials_prev")
        if prev is not None and rng.random() < 0.85:
            prev["revenue"] = round(fin["revenue"] / rng.uniform(0.65, 1.35), -3)
            prev["total_assets"] = round(assets * rng.uniform(0.8, 1.1), -4)
            prev_leverage = max(0.1, leverage * rng.uniform(0.5, 1.3))
            prev["total_liabilities"] = round(prev["total_assets"] * prev_leverage / (1 + prev_leverage), -3)
        else:
            case.pop("financials_prev", None)
        project = case.get("project")
        if project is not None:
            project["total_investment"] = round(app["amount"] * rng.uniform(1.2, 4.0), -4)
            project["sponsor_equity_pct"] = round(rng.uniform(0.18, 0.45), 3)
            project["expected_irr"] = round(rng.uniform(0.055, 0.13), 4)
            project["construction_months"] = rng.randint(6, 42)
            project["construction_risk"] = rng.choices(["low", "medium", "high"], [50, 40, 10])[0]
            project["covenant_dscr"] = rng.choice([1.15, 1.2, 1.25, 1.3, 1.35])
            for name in ("total_investment", "sponsor_equity_pct", "covenant_dscr", "construction_risk"):
                if rng.random() < 0.03:
                    project.pop(name)
        # Missing optional fields: absent keys and explicit nulls (the same thing to the language).
        for fact, name in (("borrower", "name"), ("borrower", "region"), ("financials", "net_income"),
                           ("financials", "operating_cash_flow"), ("application", "purpose")):
            if name in case[fact] and rng.random() < 0.15:
                if rng.random() < 0.5:
                    case[fact][name] = None
                else:
                    del case[fact][name]
        cases.append(case)
    return cases


# ---------------------------------------------------------------------------------------------------------------
# Synthetic policies: generated YAML


SECTORS = ("energy", "infra", "manufacturing", "retail", "services", "agri")
REGIONS = ("north", "south", "east", "west", "central")
PRODUCTS = ("term", "revolver", "project", "bridge")
CHANNELS = ("branch", "broker", "online")
GRADES = ("g1", "g2", "g3", "g4", "g5", "g6", "g7")

SYNTH_FACTS = """\
ruleset: synth-facts
description: Synthetic fact schema for the engine benchmark (21 fields in 3 facts, 2 derived).
effective_from: 2026-01-01
facts:
  app:
    amount: {type: number, min: 0}
    tenor: {type: integer, min: 1}
    product: {type: enum, values: [term, revolver, project, bridge]}
    channel: {type: enum, values: [branch, broker, online]}
    collateral: {type: number, min: 0, optional: true}
    ltv: {type: number, min: 0, optional: true}
  firm:
    sector: {type: enum, values: [energy, infra, manufacturing, retail, services, agri]}
    region: {type: enum, values: [north, south, east, west, central]}
    grade: {type: enum, values: [g1, g2, g3, g4, g5, g6, g7]}
    age: {type: integer, min: 0}
    employees: {type: number, min: 0}
    listed: {type: boolean, optional: true}
  fin:
    revenue: {type: number, min: 0}
    ebitda: number
    debt: {type: number, min: 0}
    assets: {type: number, min: 0}
    interest: {type: number, min: 0}
    cash: {type: number, min: 0, optional: true}
    growth: {type: number, optional: true}
    margin: {type: number, optional: true}
    dpd: {type: integer, min: 0}
derive:
  fin.lev: fin.debt / max(fin.ebitda, 0)
  fin.cover: fin.ebitda / fin.interest
reasons:
"""

NUMERIC_FIELDS = ("app.amount", "app.tenor", "app.collateral", "app.ltv", "firm.age", "firm.employees",
                  "fin.revenue", "fin.ebitda", "fin.debt", "fin.assets", "fin.interest", "fin.cash", "fin.growth",
                  "fin.margin", "fin.dpd", "fin.lev", "fin.cover")
ENUM_FIELDS = {"app.product": PRODUCTS, "app.channel": CHANNELS, "firm.sector": SECTORS, "firm.region": REGIONS,
               "firm.grade": GRADES}
OPTIONAL_FIELDS = ("app.collateral", "app.ltv", "fin.cash", "fin.growth", "fin.margin")
REASON_COUNT = 12


def synth_cases(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        assets = rng.lognormvariate(19, 0.8)
        revenue = assets * rng.uniform(0.3, 1.5)
        ebitda = revenue * rng.uniform(-0.02, 0.35)
        debt = assets * rng.uniform(0.1, 0.8)
        amount = round(assets * rng.uniform(0.02, 0.3), -3)
        case: dict[str, Any] = {
            "app": {"amount": amount, "tenor": rng.randint(6, 180), "product": rng.choice(PRODUCTS),
                    "channel": rng.choice(CHANNELS), "collateral": round(amount * rng.uniform(0, 1.5), -3),
                    "ltv": round(rng.uniform(0.2, 1.1), 3)},
            "firm": {"sector": rng.choice(SECTORS), "region": rng.choice(REGIONS), "grade": rng.choice(GRADES),
                     "age": rng.randint(0, 60), "employees": float(rng.randint(3, 5000)),
                     "listed": rng.random() < 0.3},
            "fin": {"revenue": round(revenue, -3), "ebitda": round(ebitda, -3), "debt": round(debt, -3),
                    "assets": round(assets, -3), "interest": round(debt * rng.uniform(0.02, 0.09), -3),
                    "cash": round(assets * rng.uniform(0, 0.2), -3), "growth": round(rng.uniform(-0.4, 0.5), 3),
                    "margin": round(rng.uniform(-0.1, 0.35), 3),
                    "dpd": rng.choices([0, rng.randint(1, 30), rng.randint(31, 180)], [80, 12, 8])[0]},
        }
        for dotted in (*OPTIONAL_FIELDS, "firm.listed"):
            if rng.random() < 0.12:
                fact, name = dotted.split(".")
                del case[fact][name]
        cases.append(case)
    return cases


def _synth_values(cases: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """Sorted observed values of every numeric field (derived ones included), for thresholds by quantile."""
    values: dict[str, list[float]] = {f: [] for f in NUMERIC_FIELDS}
    for case in cases:
        flat = {f"{fact}.{k}": v for fact, body in case.items() for k, v in body.items()}
        ebitda, interest = case["fin"]["ebitda"], case["fin"]["interest"]
        if ebitda > 0:
            flat["fin.lev"] = case["fin"]["debt"] / ebitda
        if interest:
            flat["fin.cover"] = ebitda / interest
        for name in NUMERIC_FIELDS:
            if flat.get(name) is not None:
                values[name].append(float(flat[name]))
    return {k: sorted(v) for k, v in values.items()}


def _number(value: float) -> str:
    if value == 0:
        return "0"
    text = f"{value:.3g}"
    return text if "e" not in text else str(int(float(text)))


class _SynthRules:
    """Random rules over the synthetic facts: 1-3 comparisons, sometimes `or`, `not`, presence, cross-field."""

    def __init__(self, rng: random.Random, values: dict[str, list[float]]) -> None:
        self.rng = rng
        self.values = values

    def numeric(self, tail: float) -> str:
        """`field op threshold`, true on about `tail` of the cases (thresholds are quantiles of sample cases)."""
        rng = self.rng
        name = rng.choice(NUMERIC_FIELDS)
        observed = self.values[name]
        high = rng.random() < 0.5
        threshold = observed[min(len(observed) - 1, int((1 - tail if high else tail) * len(observed)))]
        op = rng.choice((">", ">=")) if high else rng.choice(("<", "<="))
        if rng.random() < 0.08:  # the same test, written negated
            negated = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}[op]
            return f"not ({name} {negated} {_number(threshold)})"
        return f"{name} {op} {_number(threshold)}"

    def atom(self, tail: float) -> str:
        """Any kind of test: numeric, enum (== or in), boolean field, presence, cross-field arithmetic."""
        rng = self.rng
        kind = rng.random()
        if kind < 0.55:
            return self.numeric(tail)
        if kind < 0.85:
            name, choices = rng.choice(list(ENUM_FIELDS.items()))
            picked = rng.sample(choices, max(1, round(tail * len(choices))))
            if len(picked) == 1:
                return f"{name} == '{picked[0]}'"
            items = ", ".join(f"'{v}'" for v in picked)
            return f"{name} in [{items}]"
        if kind < 0.91:
            return rng.choice(("firm.listed", "not firm.listed"))
        if kind < 0.96:
            return f"{rng.choice(('missing', 'present'))}({rng.choice(OPTIONAL_FIELDS)})"
        return f"fin.cash > {_number(rng.uniform(0.1, 0.5))} * fin.debt"

    def condition(self) -> str:
        """1-3 tests; most rules test rare situations (a realistic policy is mostly exceptions)."""
        rng = self.rng
        count = rng.choices([1, 2, 3], [40, 40, 20])[0]
        if count == 1:
            return self.numeric(rng.uniform(0.005, 0.03))
        first = self.numeric(rng.uniform(0.05, 0.2) if count == 2 else rng.uniform(0.1, 0.3))
        others = [self.atom(rng.uniform(0.1, 0.4)) for _ in range(count - 1)]
        if count == 3 and rng.random() < 0.25:
            return f"{first} and ({others[0]} or {others[1]})"
        return " and ".join([first, *others])

    def then(self, number: int, allowed: Sequence[str]) -> list[str]:
        rng = self.rng
        weights = {"decision": 30, "tier": 3, "rate_add_bps": 20, "alerts": 18, "conditions": 19, "limit_cap": 10}
        output = rng.choices(list(allowed), [weights[a] for a in allowed])[0]
        if output == "decision":
            verdict = rng.choices(["refer", "decline"], [85, 15])[0]
            return [f"decision: {verdict}", f"reasons: [R-S{number % REASON_COUNT + 1:02d}]"]
        if output == "tier":
            return [f"tier: {rng.choice('CD')}"]
        if output == "rate_add_bps":
            return [f"rate_add_bps: {rng.choice([5, 10, 15, 25, 40])}"]
        if output == "alerts":
            severity = rng.choice(["low", "medium", "high"])
            return ["alerts:", f"  - {{code: SA-{number}, severity: {severity}, "
                    f"message: \"Synthetic alert {number} (leverage {{fin.lev:.2f}})\"}}"]
        if output == "conditions":
            return [f"conditions: [\"Synthetic condition {number}\"]"]
        return [f"limit_cap: {rng.choice(['0.5 * app.amount', '0.25 * fin.revenue', 'fin.ebitda * 3'])}"]


def synth_documents(rule_count: int, seed: int) -> list[str]:
    """YAML texts: the facts ruleset, four rule rulesets and a policy; `rule_count` rules and table rows."""
    rng = random.Random(seed * 31 + rule_count)
    values = _synth_values(synth_cases(3000, seed + 1))
    gen = _SynthRules(rng, values)
    reasons = "".join(f"  R-S{i:02d}: \"Synthetic reason {i} (DSCR proxy {{fin.cover:.2f}}, dpd {{fin.dpd}})\"\n"
                      for i in range(1, REASON_COUNT + 1))
    facts = SYNTH_FACTS + reasons + (
        "rules:\n  - id: S-DQ\n    when: \"missing(fin.cash) or missing(fin.margin)\"\n    then:\n"
        "      conditions: [\"Complete financial statements before drawdown\"]\n")
    lev, cover = values["fin.lev"], values["fin.cover"]

    def q(observed: list[float], p: float) -> str:
        return _number(observed[int(p * (len(observed) - 1))])

    tier_grid = [
        f"      - [\"< {q(lev, 0.3)}\", \">= {q(cover, 0.6)}\", \"== 0\", A]",
        f"      - [\"< {q(lev, 0.5)}\", \">= {q(cover, 0.4)}\", \"<= 5\", B]",
        f"      - [\"< {q(lev, 0.7)}\", \">= {q(cover, 0.25)}\", \"<= 30\", C]",
        f"      - [\"< {q(lev, 0.9)}\", \"-\", \"<= 90\", D]",
        "      - [\"-\", \"-\", \"-\", E]",
    ]
    tables_a = ["tables:", "  - id: S-TIER-GRID", "    hit: first", "    inputs: [fin.lev, fin.cover, fin.dpd]",
                "    outputs: [tier]", "    rows:", *tier_grid]
    tables_b = ["tables:", "  - id: S-PRICE-SECTOR", "    hit: collect", "    inputs: [firm.sector]",
                "    outputs: [rate_add_bps]", "    rows:",
                *(f"      - [\"'{s}'\", {5 * i}]" for i, s in enumerate(SECTORS)),
                "  - id: S-LIMIT-TIER", "    hit: first", "    inputs: [tier]", "    outputs: [limit_cap]", "    rows:",
                "      - [\"'A'\", \"fin.ebitda * 5\"]", "      - [\"'B'\", \"fin.ebitda * 4\"]",
                "      - [\"'C'\", \"fin.ebitda * 3\"]", "      - [\"-\", \"fin.ebitda * 2\"]"]
    table_rows = len(tier_grid) + len(SECTORS) + 4
    rules_total = rule_count - table_rows - 2  # and S-DQ and S-APPROVE
    parts: list[list[str]] = [["rules:"] for _ in range(4)]
    parts[0][:0] = tables_a
    parts[1][:0] = tables_b
    parts[0] += ["  - id: S-APPROVE", "    when: \"tier in ['A', 'B', 'C']\"", "    then:", "      decision: approve"]
    for number in range(1, rules_total + 1):
        kind = rng.random()
        if kind < 0.72:
            when = gen.condition()
            then = gen.then(number, ("decision", "tier", "rate_add_bps", "alerts", "conditions", "limit_cap"))
        elif kind < 0.9:
            tiers = rng.choice(["['D', 'E']", "['C', 'D']", "['E']", "['A', 'B']"])
            when = f"tier in {tiers} and {gen.numeric(rng.uniform(0.03, 0.15))}"
            then = gen.then(number, ("decision", "rate_add_bps", "conditions"))
        else:
            verdict = rng.choice(["approve", "refer"])
            when = f"decision == '{verdict}' and {gen.atom(rng.uniform(0.1, 0.4))}"
            then = gen.then(number, ("conditions", "limit_cap", "alerts"))
        body = [f"  - id: S-{number:04d}", f"    when: \"{when}\"", "    then:", *(f"      {t}" for t in then)]
        parts[number % 4].extend(body)
    names = [f"synth{rule_count}-{c}" for c in "abcd"]
    texts = [facts]
    for name, lines in zip(names, parts, strict=True):
        texts.append(f"ruleset: {name}\nkind: eligibility\neffective_from: 2026-01-01\n" + "\n".join(lines) + "\n")
    texts.append(f"policy: synth-{rule_count}\nproduct: synthetic\neffective_from: 2026-01-01\n"
                 f"rulesets: [synth-facts, {', '.join(names)}]\ndefaults:\n  decision: refer\non_error: refer\n"
                 "pricing: {base_rate: 0.04}\nlimit: {requested: app.amount}\n")
    return texts


def load_synthetic(texts: Sequence[str]) -> Any:
    from engine.documents import parse_document
    from engine.library import Library

    documents = [parse_document(text, f"<synthetic {i}>") for i, text in enumerate(texts)]
    return Library(documents)


# ---------------------------------------------------------------------------------------------------------------
# Measurement


@dataclass
class Round:
    rate: float  # decisions per wall-clock second
    p50_us: float
    p99_us: float
    cpu_rate: float  # decisions per CPU second of the deciding process (less sensitive to other load)


@dataclass
class Figures:
    rounds: list[Round] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(r.rate for r in self.rounds) if self.rounds else 0.0

    @property
    def cpu_rate(self) -> float:
        return statistics.median(r.cpu_rate for r in self.rounds) if self.rounds else 0.0

    @property
    def p50_us(self) -> float:
        return statistics.median(r.p50_us for r in self.rounds) if self.rounds else 0.0

    @property
    def p99_us(self) -> float:
        return statistics.median(r.p99_us for r in self.rounds) if self.rounds else 0.0

    def as_json(self) -> dict[str, Any]:
        return {"rate": self.rate, "cpu_rate": self.cpu_rate, "p50_us": self.p50_us, "p99_us": self.p99_us,
                "rounds": [r.__dict__ for r in self.rounds], "notes": self.notes}


def summarize(times_ns: Sequence[int], wall_ns: int, cpu_ns: int) -> Round:
    ordered = sorted(times_ns)
    n = len(ordered)
    return Round(rate=n / (wall_ns / 1e9), p50_us=ordered[n // 2] / 1e3,
                 p99_us=ordered[min(n - 1, int(0.99 * n))] / 1e3, cpu_rate=n / (max(1, cpu_ns) / 1e9))


def time_block(fn: Callable[[Any], Any], items: Sequence[Any]) -> tuple[list[int], int, int]:
    """Per-call times, and the wall and CPU time of the whole block, in ns (after collecting garbage)."""
    gc.collect()
    clock = time.perf_counter_ns
    times = []
    cpu = time.process_time_ns()
    start = clock()
    for item in items:
        t = clock()
        fn(item)
        times.append(clock() - t)
    wall = clock() - start
    return times, wall, time.process_time_ns() - cpu


# ---------------------------------------------------------------------------------------------------------------
# The stock durable_rules Host, in a child process


def _host_key(tag: str, name: str) -> str:
    if tag.startswith("~c:"):
        return f"c__{tag[3:]}"
    if tag.startswith("~calc"):
        return f"calc{tag[5:]}__{name}"
    return f"{tag}__{name}"


def _host_number(value: float) -> float:
    """The engine reads `1e-05` as the integer 1 (and worse after it): keep Python's repr free of exponents."""
    if value != 0 and abs(value) < 1e-4:
        return 0.0
    return max(-9e15, min(9e15, value))


def _host_value(value: Any) -> Any:
    from engine.planner import engine_value

    value = engine_value(value)
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return _host_number(value)
    return value


_HOST_OPS = {"==": "$eq", "!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}


def host_rules(unit: Any) -> list[tuple[str, dict[str, Any]]]:
    """One plain durable_rules rule per DNF branch of every rule and table row, over one flattened fact."""
    rules = []
    for activation in unit.plan.activations:
        for number, branch in enumerate(activation.branches):
            tests: list[dict[str, Any]] = []
            for atom in branch.atoms:
                key = _host_key(atom.ref.fact, atom.ref.field)
                if atom.op == "present":
                    tests.append({"$ex": {key: 1}})
                elif atom.op == "missing":
                    tests.append({"$nex": {key: 1}})
                elif atom.other is not None:
                    other = _host_key(atom.other.fact, atom.other.field)
                    tests += [{"$ex": {other: 1}}, {_HOST_OPS[atom.op]: {key: {"$m": other}}}]
                else:
                    tests.append({_HOST_OPS[atom.op]: {key: _host_value(atom.value)}})
            # The tag test first in every pattern: the session's own state is a message too, and a rule made only
            # of `$nex` tests would match it after every action and fire forever.
            pattern = {"$and": [{"t": 1}, *tests]} if tests else {"t": 1}
            rules.append((f"{activation.key}#{number}", {"all": [{"m": pattern}]}))
    return rules


def host_facts(unit: Any, cases: Sequence[Any]) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """Each case as one flat fact (facts, derived fields, the conclusions and computed operands rules read),
    with the activation keys whose conditions are true on it (what the Host must fire)."""
    from engine.evaluate import evaluate, prepare

    facts_out, expected = [], []
    for case in cases:
        conclusions = evaluate(unit, case, AS_OF).conclusions
        facts, _ = prepare(unit, case)
        flat: dict[str, Any] = {"t": 1}
        for tag, body in facts.items():
            for name, value in body.items():
                if value is not None:
                    flat[_host_key(tag, name)] = _host_value(value)
        for names in unit.conclusions_at:
            for name in names:
                if conclusions.get(name) is not None:
                    flat[_host_key(f"~c:{name}", "value")] = _host_value(conclusions[name])
        for fields in unit.calc_at:
            for calc in fields:
                value = calc.fn(facts, conclusions)
                if value is not None:
                    flat[_host_key(f"~calc{calc.stratum}", calc.name)] = _host_value(value)
        facts_out.append(flat)
        expected.append(sorted(a.key for a in unit.activations if a.truth(facts, conclusions) is True))
    return facts_out, expected


class HostWorker:
    """The parent's handle on the child process that drives `durable.engine.Host`."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--host-worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.dead: str | None = None

    def call(self, request: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
        if self.dead:
            return {"error": self.dead}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        line = ""
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if ready:
                line = self.proc.stdout.readline()
            else:  # create_ruleset hangs on some alpha networks; a decision can loop: give up on the Host
                self.proc.kill()
                self.dead = f"host worker gave no answer in {timeout:.0f} s (killed)"
        except (BrokenPipeError, OSError) as exc:
            self.dead = f"host worker unreachable: {exc}"
        if not line:
            code = self.proc.wait(timeout=10)
            self.dead = self.dead or f"host worker died (exit code {code})"
            return {"error": self.dead}
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            self.call({"cmd": "quit"})
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def host_worker_main() -> None:
    """Child process: build rulesets on request and run the assert / get_state / delete_state loop."""
    from durable.engine import Host

    host = Host()
    loaded: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
    fired: set[str] = set()
    serial = [0]

    def decide(names: list[str], fact: dict[str, Any]) -> set[str]:
        fired.clear()
        for name in names:
            serial[0] += 1
            sid = str(serial[0])
            host.assert_fact(name, {**fact, "sid": sid})
            host.get_state(name, sid)
            host.delete_state(name, sid)
        return set(fired)

    def action(key: str) -> Callable[[Any], None]:
        def run(c: Any) -> None:  # the Host calls one-argument actions synchronously
            fired.add(key)

        return run

    def build(label: str, rules: list[list[Any]], chunk: int) -> list[str]:
        names = []
        for start in range(0, len(rules), chunk):
            name = f"{label}-{chunk}-{start}"
            definition: dict[str, Any] = {"sentinel": {"all": [{"m": {"t": 1}}], "run": lambda c: None}}
            for rule_name, spec in rules[start:start + chunk]:
                definition[rule_name] = {**spec, "run": action(rule_name.rsplit("#", 1)[0])}
            host.register_rulesets({name: definition})
            names.append(name)
        return names

    for line in sys.stdin:
        request = json.loads(line)
        cmd = request["cmd"]
        if cmd == "quit":
            print(json.dumps({"ok": True}), flush=True)
            return
        if cmd == "load":
            label, rules, facts, expected = request["name"], request["rules"], request["facts"], request["expect"]
            chunk = min(250, max(1, len(rules)))
            started = time.perf_counter()
            failures: list[str] = []
            while True:
                names = build(label, rules, chunk)
                errors, agree = [], 0
                for fact, want in zip(facts, expected, strict=True):
                    try:
                        agree += decide(names, fact) == set(want)
                    except Exception as exc:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                if errors:
                    failures.append(f"{len(errors)} of {len(facts)} cases failed with rulesets of {chunk} rules, "
                                    f"first: {errors[0]}")
                # Error 303: one fact satisfied more than 64 alpha tests. Smaller rulesets hold fewer of them.
                if not any("303" in e for e in errors) or chunk <= 16:
                    break
                chunk //= 2
            loaded[label] = (names, facts)
            gc.collect()
            gc.freeze()
            print(json.dumps({"ok": True, "rulesets": len(names), "chunk": chunk, "errors": len(errors),
                              "failures": failures, "agreement": agree / max(1, len(facts)),
                              "build_s": time.perf_counter() - started}), flush=True)
        elif cmd == "run":
            names, facts = loaded[request["name"]]
            failed = [0]

            def attempt(fact: dict[str, Any], names: list[str] = names, failed: list[int] = failed) -> None:
                try:
                    decide(names, fact)
                except Exception:  # counted and reported; the Host raises on engine errors
                    failed[0] += 1

            block_times, wall, cpu = time_block(attempt, facts[request["start"]:request["end"]])
            print(json.dumps({"times": block_times, "wall_ns": wall, "cpu_ns": cpu, "errors": failed[0]}),
                  flush=True)


# ---------------------------------------------------------------------------------------------------------------
# One benchmark: a compiled policy, its cases and the contenders


def zen_translate() -> Any:
    """bench/zen_translate.py, imported by path (bench/ is no package and must not be on sys.path)."""
    module = sys.modules.get("zen_translate")
    if module is None:
        spec = importlib.util.spec_from_file_location("zen_translate", BENCH / "zen_translate.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["zen_translate"] = module
        spec.loader.exec_module(module)
    return module


@dataclass
class Bench:
    label: str
    unit: Any
    cases: list[dict[str, Any]]
    contenders: dict[str, Figures] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def ratio(self, a: str, b: str, cpu: bool = False) -> float | None:
        x, y = self.contenders.get(a), self.contenders.get(b)
        if x is None or y is None or not x.rate or not y.rate:
            return None
        return x.cpu_rate / y.cpu_rate if cpu else x.rate / y.rate


def prepare_bench(label: str, unit: Any, cases: list[dict[str, Any]], host: HostWorker | None,
                  log: Callable[[str], None]) -> tuple[Bench, dict[str, Callable[[Any], Any]]]:
    from engine.evaluate import decide

    ZenPolicy = zen_translate().ZenPolicy

    bench = Bench(label, unit, cases)
    bench.info["rules"] = len(unit.activations)
    bench.info["rules_only"] = sum(1 for a in unit.activations if a.table is None)
    bench.info["table_rows"] = sum(1 for a in unit.activations if a.table is not None)
    bench.info["strata"] = unit.strata
    bench.info["cases"] = len(cases)
    started = time.perf_counter()
    decisions = [decide(unit, case, AS_OF) for case in cases]
    bench.info["partitions"] = unit.network.partition_count
    bench.info["first_pass_s"] = time.perf_counter() - started
    reference = [decide(unit, case, AS_OF, engine="reference") for case in cases]
    same = sum(a["outcome"] == b["outcome"] and a["fired"] == b["fired"] for a, b in zip(decisions, reference,
                                                                                       strict=True))
    bench.checks["rete_vs_reference"] = same / len(cases)
    errors = sum("error" in d for d in decisions)
    if errors:
        bench.checks["credo_evaluation_errors"] = errors

    zen_policy = ZenPolicy(unit)
    bench.info["zen_nodes"] = zen_policy.node_count
    outcomes = [zen_policy.evaluate(case) for case in cases]
    bench.checks["zen_agreement"] = sum(d["outcome"] == z.get("outcome") for d, z in
                                        zip(decisions, outcomes, strict=True)) / len(cases)
    bench.checks["zen_tier_agreement"] = sum(d["tier"] == z.get("tier") for d, z in
                                             zip(decisions, outcomes, strict=True)) / len(cases)
    bench.checks["zen_fired_agreement"] = sum(
        sorted(f["rule"] for f in d["fired"] if f["ruleset"] != (unit.scorecard.name if unit.scorecard else None))
        == sorted(z.get("fired", [])) for d, z in zip(decisions, outcomes, strict=True)) / len(cases)
    outcome_mix: dict[str, int] = {}
    for d in decisions:
        outcome_mix[d["outcome"]] = outcome_mix.get(d["outcome"], 0) + 1
    bench.info["outcomes"] = outcome_mix
    bench.info["fired_avg"] = statistics.fmean(len(d["fired"]) for d in decisions)

    runners: dict[str, Callable[[Any], Any]] = {
        "credo": lambda case: decide(unit, case, AS_OF),
        "credo_reference": lambda case: decide(unit, case, AS_OF, engine="reference"),
        "zen": zen_policy.evaluate,
    }
    if host is not None:
        rules = host_rules(unit)
        facts, expected = host_facts(unit, cases)
        reply = host.call({"cmd": "load", "name": label, "rules": rules, "facts": facts, "expect": expected})
        if "error" in reply:
            bench.checks["host_error"] = reply["error"]
            log(f"  host: {reply['error']}")
        else:
            bench.info["host_rules"] = len(rules)
            bench.info["host_rulesets"] = reply["rulesets"]
            bench.checks["host_agreement"] = reply["agreement"]
            if reply["errors"]:
                bench.checks["host_engine_errors"] = reply["errors"]
            for failure in reply["failures"]:
                log(f"  host: {failure}")
            if reply["failures"]:
                bench.checks["host_failures"] = "; ".join(reply["failures"])
            runners["host"] = lambda _case: None  # placeholder: the child process times itself
    log(f"  {label}: {bench.info['rules']} rules ({bench.info['rules_only']} rules + {bench.info['table_rows']} "
        f"table rows), {bench.info['strata']} strata, {len(cases)} cases; zen agreement "
        f"{bench.checks['zen_agreement']:.2%}")
    return bench, runners


def run_rounds(bench: Bench, runners: dict[str, Callable[[Any], Any]], rounds: int, block: int,
               host: HostWorker | None, log: Callable[[str], None]) -> None:
    """Each round decides every case once with every contender, block by block: within a block of cases the
    contenders run one after the other (the order rotates), so that they share the machine's moods."""
    names = list(runners)
    for name in names:
        bench.contenders[name] = Figures()
    cases = bench.cases
    for r in range(rounds):
        times: dict[str, list[int]] = {name: [] for name in names}
        walls = dict.fromkeys(names, 0)
        cpus = dict.fromkeys(names, 0)
        for b, start in enumerate(range(0, len(cases), block)):
            end = min(len(cases), start + block)
            k = (r + b) % len(names)
            for name in names[k:] + names[:k]:
                if name == "host":
                    if host is None or "host_error" in bench.checks:
                        continue
                    reply = host.call({"cmd": "run", "name": bench.label, "start": start, "end": end})
                    if "error" in reply:
                        bench.checks["host_error"] = reply["error"]
                        continue
                    block_times, wall, cpu = reply["times"], reply["wall_ns"], reply["cpu_ns"]
                    if reply["errors"]:
                        bench.checks["host_run_errors"] = bench.checks.get("host_run_errors", 0) + reply["errors"]
                else:
                    block_times, wall, cpu = time_block(runners[name], cases[start:end])
                times[name].extend(block_times)
                walls[name] += wall
                cpus[name] += cpu
        for name in names:
            if len(times[name]) == len(cases):
                bench.contenders[name].rounds.append(summarize(times[name], walls[name], cpus[name]))
        log(f"  {bench.label} round {r + 1}/{rounds}: " + ", ".join(
            f"{n} {bench.contenders[n].rounds[-1].rate:,.0f}/s" for n in names if bench.contenders[n].rounds))


# ---------------------------------------------------------------------------------------------------------------
# Compile time


def compile_time(texts: Sequence[str], repeats: int, sample: dict[str, Any]) -> dict[str, Any]:
    """parse + compile_unit + building the durable_rules network (first decision), fresh each time."""
    from engine.evaluate import decide

    runs = []
    for _ in range(repeats):
        gc.collect()
        cpu = time.process_time()
        t0 = time.perf_counter()
        library = load_synthetic(texts)
        t1 = time.perf_counter()
        policy_name = next(d.name for d in library.documents if type(d).__name__ == "Policy")
        unit = library.compile_policy(policy_name, AS_OF)
        t2 = time.perf_counter()
        decide(unit, sample, AS_OF)
        t3 = time.perf_counter()
        runs.append({"total_s": t3 - t0, "parse_s": t1 - t0, "compile_s": t2 - t1, "network_first_decision_s": t3 - t2,
                     "cpu_s": time.process_time() - cpu})
        unit.network.close()
    median = statistics.median(r["total_s"] for r in runs)
    middle = min(runs, key=lambda r: abs(r["total_s"] - median))
    return {"median_s": median, "median_cpu_s": statistics.median(r["cpu_s"] for r in runs), "runs": runs,
            "median_run": middle}


# ---------------------------------------------------------------------------------------------------------------
# Report


RATIOS = (("credo", "zen"), ("credo", "host"), ("credo", "credo_reference"))
CONTENDER_TITLES = {
    "credo": "Credo decide() rete, full Decision + trace",
    "credo_reference": "Credo decide() reference interpreter",
    "zen": "zen-engine, same policy as a JDM graph",
    "host": "durable_rules stock Host, plain rules",
}


def verdict(value: float | None, target: float, higher_is_better: bool = True) -> str:
    if value is None:
        return "NOT MEASURED"
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "MISS"


def report(benches: list[Bench], compile_figures: dict[str, Any], args: argparse.Namespace,
           elapsed: float) -> tuple[str, dict[str, Any]]:
    lines = []
    lines.append(f"Credo engine benchmark  (python {platform.python_version()}, {platform.machine()}, "
                 f"{os.cpu_count()} cpu, {'quick' if args.quick else 'full'} run, {args.rounds} interleaved rounds, "
                 "median round)")
    lines.append("")
    header = f"{'policy':<18}{'contender':<44}{'decisions/s':>12}{'p50 µs':>10}{'p99 µs':>10}{'per CPU-s':>11}"
    lines.append(header)
    lines.append("-" * len(header))
    for bench in benches:
        for name, figures in bench.contenders.items():
            if not figures.rounds:
                continue
            lines.append(f"{bench.label:<18}{CONTENDER_TITLES[name]:<44}{figures.rate:>12,.0f}"
                         f"{figures.p50_us:>10,.0f}{figures.p99_us:>10,.0f}{figures.cpu_rate:>11,.0f}")
        lines.append("")
    lines.append("Ratios of decisions/s in this run (in brackets: of decisions per CPU-second):")
    for bench in benches:
        parts = []
        for a, b in RATIOS:
            value, cpu = bench.ratio(a, b), bench.ratio(a, b, cpu=True)
            parts.append(f"{a}/{b} {value:.2f}x [{cpu:.2f}x]" if value is not None and cpu is not None
                         else f"{a}/{b} n/a")
        lines.append(f"  {bench.label:<16}" + "   ".join(parts))
    lines.append("")
    lines.append("Checks:")
    for bench in benches:
        info, checks = bench.info, bench.checks
        extra = ", ".join(f"{k} {v:.2%}" if isinstance(v, float) else f"{k} {v}" for k, v in checks.items())
        lines.append(f"  {bench.label:<16}{info['rules']} rules ({info['rules_only']} rules + {info['table_rows']} "
                     f"table rows), {info['strata']} strata, {info['partitions']} engine partition(s), "
                     f"{info['zen_nodes']} zen nodes, host {info.get('host_rules', 'n/a')} rules in "
                     f"{info.get('host_rulesets', 'n/a')} ruleset(s); {info['cases']} cases, "
                     f"{info['fired_avg']:.1f} fired/decision, outcomes {info['outcomes']}")
        lines.append(f"  {'':<16}{extra}")
    lines.append("")
    run = compile_figures["median_run"]
    lines.append(f"Compile {compile_figures['rules']} rules (parse + compile + network + first decision), median of "
                 f"{len(compile_figures['runs'])}: {compile_figures['median_s']:.3f} s  (parse {run['parse_s']:.3f}, "
                 f"compile {run['compile_s']:.3f}, network + first decision {run['network_first_decision_s']:.3f}; "
                 f"CPU {compile_figures['median_cpu_s']:.3f} s)")
    lines.append("")
    baseline = benches[0]
    vs_zen = baseline.ratio("credo", "zen")
    vs_zen_cpu = baseline.ratio("credo", "zen", cpu=True)
    compile_s, compile_cpu = compile_figures["median_s"], compile_figures["median_cpu_s"]
    agreement = min(b.checks.get("zen_agreement", 0.0) for b in benches)
    targets = [
        {"name": f"full decision vs zen on {baseline.label}", "value": vs_zen, "unit": "x", "op": ">=",
         "target": TARGET_VS_ZEN, "verdict": verdict(vs_zen, TARGET_VS_ZEN), "cpu_value": vs_zen_cpu},
        {"name": f"stretch: parity with zen on {baseline.label}", "value": vs_zen, "unit": "x", "op": ">=",
         "target": STRETCH_VS_ZEN, "verdict": verdict(vs_zen, STRETCH_VS_ZEN), "cpu_value": vs_zen_cpu},
        {"name": f"compile {compile_figures['rules']} rules", "value": compile_s, "unit": "s", "op": "<=",
         "target": TARGET_COMPILE_S, "verdict": verdict(compile_s, TARGET_COMPILE_S, False), "cpu_value": compile_cpu},
        {"name": "zen translation agrees with Credo's outcomes (fair comparison)", "value": agreement, "unit": "%",
         "op": ">=", "target": 0.99, "verdict": verdict(agreement, 0.99), "cpu_value": None},
    ]
    lines.append("Targets:")
    for t in targets:
        shown = {"x": "{:.2f}x", "s": "{:.3f} s", "%": "{:.2%}"}[t["unit"]]
        value = "n/a" if t["value"] is None else shown.format(t["value"])
        extra = "" if t["cpu_value"] is None else (
            f"; per CPU-second {shown.format(t['cpu_value'])}" if t["unit"] == "x" else
            f"; CPU {shown.format(t['cpu_value'])}")
        op = "≥" if t["op"] == ">=" else "≤"
        lines.append(f"  {t['name']}: {value} (target {op} {shown.format(t['target'])}{extra}): {t['verdict']}")
    lines.append("")
    lines.append("Notes:")
    lines += [f"  - {n}" for n in NOTES]
    lines.append(f"  - whole run: {elapsed:.0f} s")
    data = {
        "machine": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "quick": args.quick, "rounds": args.rounds, "as_of": AS_OF.isoformat(), "seed": SEED, "elapsed_s": elapsed,
        "policies": {b.label: {"info": b.info, "checks": b.checks,
                               "contenders": {n: f.as_json() for n, f in b.contenders.items()},
                               "ratios": {f"{a}/{c}": b.ratio(a, c) for a, c in RATIOS},
                               "cpu_ratios": {f"{a}/{c}": b.ratio(a, c, cpu=True) for a, c in RATIOS}}
                     for b in benches},
        "compile": compile_figures,
        "targets": targets,
        "notes": NOTES,
    }
    return "\n".join(lines), data


NOTES = [
    "decisions/s = cases / wall time of a round; p50/p99 from per-call perf_counter_ns; median over rounds. "
    "The machine is shared: compare ratios within one run, not absolute figures across runs.",
    "Credo: decide() from case dict to Decision dict: validation, derived fields, scorecard, strata on the "
    "durable_rules network, reason/condition/alert texts and the full `fired` trace.",
    "zen: ZenEngine.evaluate(key) on a statically loaded, precompiled graph (bench/zen_translate.py); its "
    "output has outcome, tier, score, pd, limit, rate, reason codes, raw condition templates, alert codes and "
    "fired rule keys, but no case validation, no rendered texts and no trace (`because` values).",
    "host: durable.engine.Host in a child process, one plain rule per DNF branch over one flat fact (facts, "
    "derived fields, and the conclusions and computed operands the rules read, precomputed by Credo), "
    "assert_fact / get_state / delete_state with a new session per decision, a sentinel rule in every ruleset "
    "(deleting a session that never fired crashes the engine), rulesets of at most 250 rules (513 children "
    "on one alpha node hang create_ruleset). It only matches: no strata, combining, texts or trace.",
]


def profile(n: int) -> int:
    """Where decide() spends its time on project-finance: cProfile, by cumulative and by own time."""
    import cProfile
    import pstats

    from engine.evaluate import decide
    from engine.library import Library

    unit = Library.load().compile_policy("project-finance", AS_OF)
    cases = pf_cases(n)
    for case in cases[:100]:
        decide(unit, case, AS_OF)
    profiler = cProfile.Profile()
    profiler.enable()
    for case in cases:
        decide(unit, case, AS_OF)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(20)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds), for the smoke test")
    parser.add_argument("--cases", type=int, default=None, help="cases for project-finance (synthetic: fewer)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per contender (default 3)")
    parser.add_argument("--block", type=int, default=100,
                        help="cases per interleaving block: each contender decides a block, then the next one")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    parser.add_argument("--no-host", action="store_true", help="skip the durable_rules Host baseline")
    parser.add_argument("--profile", action="store_true",
                        help="only profile Credo's decide() on the project-finance cases (cProfile, top functions)")
    parser.add_argument("--host-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.host_worker:
        host_worker_main()
        return 0
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    pf_n = args.cases or (40 if args.quick else 2000)
    synth_n = {200: max(10, pf_n // 2), 1000: max(10, pf_n // 5)}
    compile_repeats = 1 if args.quick else 3

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    from engine.library import Library

    if args.profile:
        return profile(pf_n)
    started = time.perf_counter()
    host = None if args.no_host else HostWorker()
    benches: list[Bench] = []
    try:
        log("project-finance: compiling, checking the zen translation and the Host rules")
        library = Library.load()
        unit = library.compile_policy("project-finance", AS_OF)
        bench, runners = prepare_bench("project-finance", unit, pf_cases(pf_n), host, log)
        gc.collect()
        gc.freeze()  # what setup left behind is no garbage: keep full collections between blocks cheap
        run_rounds(bench, runners, args.rounds, args.block, host, log)
        benches.append(bench)
        for size in (200, 1000):
            log(f"synthetic-{size}: generating, compiling, checking")
            texts = synth_documents(size, SEED)
            unit = load_synthetic(texts).compile_policy(f"synth-{size}", AS_OF)
            bench, runners = prepare_bench(f"synthetic-{size}", unit, synth_cases(synth_n[size], SEED + size), host,
                                           log)
            gc.collect()
            gc.freeze()
            run_rounds(bench, runners, args.rounds, args.block, host, log)
            benches.append(bench)
        log("compile time: 1,000 rules")
        texts = synth_documents(1000, SEED)
        compile_figures = compile_time(texts, compile_repeats, synth_cases(1, SEED + 7)[0])
        compile_figures["rules"] = benches[-1].info["rules"]
    finally:
        if host is not None:
            host.close()
    text, data = report(benches, compile_figures, args, time.perf_counter() - started)
    print(text)
    if args.json is not None:
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
