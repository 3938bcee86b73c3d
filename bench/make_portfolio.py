"""A synthetic book of corporate and project loans, as a CSV portfolio for `credo simulate`.

    python bench/make_portfolio.py --rows 2000 --seed 20260101 --out examples/portfolio.csv   # the demo book
    python bench/make_portfolio.py --rows 1000000 --out /tmp/book.csv                          # the benchmark's

Every column is drawn with numpy from a fixed seed, so a (rows, seed) pair always gives the same file.
The cases follow the shared fact schema (rulesets/facts.yaml): mostly project loans, with the optional
fields sometimes empty. `performance.bad` is drawn from a "true" PD that rises with weak coverage, high
gearing, arrears, past defaults, a short history and a declining business, the things the scorecard
also reads, plus noise the scorecard cannot see: so KS and Gini come out meaningful but not perfect.
`segment` is the originating region.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

DEMO_SEED = 20260101
SEGMENTS = ["north", "south", "east", "west", "central"]
INDUSTRIES = ["energy", "infrastructure", "manufacturing", "real_estate", "services", "agriculture"]
STAGES = ["introduction", "growth", "maturity", "decline"]
PRODUCTS = ["project_loan", "term_loan", "working_capital"]
OPINIONS = ["unqualified", "qualified", "adverse", "disclaimer"]
RISKS = ["low", "medium", "high"]

Column = tuple[str, np.ndarray, str]  # (dotted name, values, printf format or "s" for text); NaN / None is empty


def generate(rows: int, seed: int = DEMO_SEED, drift: float = 0.0) -> list[Column]:
    """The portfolio's columns. `drift` worsens the book's credit quality (for a PSI reference)."""
    rng = np.random.default_rng(seed)
    n = rows

    def pick(values: list[str], p: list[float]) -> np.ndarray:
        return np.array(values, dtype=object)[rng.choice(len(values), size=n, p=p)]

    def maybe(values: np.ndarray, present: float) -> np.ndarray:
        out = values.astype(object) if values.dtype == object else values.astype(np.float64)
        gone = rng.random(n) >= present
        out[gone] = None if out.dtype == object else np.nan
        return out

    product = pick(PRODUCTS, [0.9, 0.07, 0.03])
    industry = pick(INDUSTRIES, [0.36, 0.28, 0.12, 0.06, 0.1, 0.08])
    stage = pick(STAGES, [0.15, 0.4, 0.37, 0.08])
    years = np.clip(np.round(rng.gamma(2.2, 3.5, n)), 0, 60)
    years[stage == "introduction"] = np.minimum(years[stage == "introduction"], 3)
    founded_days = (years * 365.25 + rng.integers(0, 365, n)).astype(np.int64)
    as_of = dt.date(2026, 6, 30).toordinal()
    founded = np.array([dt.date.fromordinal(as_of - int(d)).isoformat() for d in founded_days], dtype=object)

    assets = np.round(np.exp(rng.normal(np.log(6e8), 0.9, n)), -3)
    # Liabilities as a share of assets: most books are geared 40-75%, a tail reaches or passes 100%.
    share = np.clip(rng.beta(4.5, 3.8, n) + drift * 0.08, 0.05, 1.1)
    liabilities = np.round(assets * share, -3)
    revenue = np.round(assets * rng.uniform(0.15, 0.6, n), -3)
    margin = rng.normal(0.32, 0.14, n) - drift * 0.05
    ebitda = np.round(revenue * margin, -3)
    # Debt service is set against EBITDA with a spread of coverage: DSCR mostly 1.2-2.5.
    dscr_target = np.clip(rng.lognormal(np.log(1.75) - drift * 0.1, 0.25, n), 0.4, 5.0)
    debt_service = np.round(np.abs(ebitda) / dscr_target + 1e5, -3)
    current_assets = np.round(assets * rng.uniform(0.08, 0.35, n), -3)
    current_liabilities = np.round(current_assets / np.clip(rng.lognormal(np.log(1.35), 0.3, n), 0.3, 4), -3)
    has_current = rng.random(n) < 0.8
    net_income = np.round(ebitda * rng.uniform(0.2, 0.5, n) - rng.uniform(0, 0.05, n) * revenue, -3)
    ocf = np.round(ebitda * rng.uniform(0.5, 1.1, n) - rng.uniform(0, 0.06, n) * revenue, -3)
    audited_draw = rng.random(n)
    audited = np.where(audited_draw < 0.82, "true", np.where(audited_draw < 0.9, "false", None)).astype(object)
    opinion = pick(OPINIONS, [0.86, 0.1, 0.025, 0.015])
    opinion[audited != "true"] = None

    has_prev = rng.random(n) < 0.75
    prev_assets = np.round(assets * rng.uniform(0.85, 1.1, n), -3)
    prev_share = np.clip(share - rng.normal(0.0, 0.06, n), 0.05, 1.05)
    prev_liabilities = np.round(prev_assets * prev_share, -3)
    prev_revenue = np.round(revenue / np.clip(rng.normal(1.04, 0.14, n), 0.4, 2.0), -3)
    prev_ebitda = np.round(ebitda / np.clip(rng.normal(1.03, 0.15, n), 0.4, 2.0), -3)

    dpd_draw = rng.random(n)
    dpd = np.where(
        dpd_draw < 0.86 - drift * 0.1, 0, np.where(dpd_draw < 0.95, rng.integers(1, 31, n), rng.integers(31, 150, n))
    ).astype(np.float64)
    defaults = np.where(rng.random(n) < 0.96, 0, np.where(rng.random(n) < 0.8, 1, 2)).astype(np.float64)
    restructurings = maybe(np.where(rng.random(n) < 0.93, 0, 1).astype(np.float64), 0.7)
    exposure = np.round(np.where(rng.random(n) < 0.5, 0, np.exp(rng.normal(np.log(3e7), 1.0, n))), -3)

    amount = np.round(np.exp(rng.normal(np.log(4.5e7), 0.7, n)), -5)
    tenor = np.where(product == "project_loan", rng.integers(60, 241, n), rng.integers(12, 97, n)).astype(np.float64)
    capital = np.round(np.exp(rng.normal(np.log(1.0e8), 0.6, n)), -5)

    is_project = product == "project_loan"
    has_project = np.where(is_project, rng.random(n) < 0.97, rng.random(n) < 0.05)
    investment = np.round(amount * rng.uniform(1.4, 4.0, n), -5)
    equity_pct = np.round(np.clip(rng.normal(0.33, 0.06, n) - drift * 0.02, 0.08, 0.6), 3)
    irr = np.round(rng.normal(0.085, 0.018, n), 4)
    construction = rng.integers(0, 43, n).astype(np.float64)
    risk = pick(RISKS, [0.55, 0.33, 0.12])
    covenant = np.where(rng.random(n) < 0.6, rng.choice([1.1, 1.15, 1.2, 1.25, 1.3], n), np.nan)

    # The "true" PD behind performance.bad.
    equity = assets - liabilities
    with np.errstate(divide="ignore", invalid="ignore"):
        dscr = ebitda / debt_service
        leverage = np.where(equity > 0, liabilities / equity, np.inf)
    logit = (
        -4.1
        + 1.1 * (dscr < 1.2)
        + 0.9 * (dscr < 1.0)
        - 0.5 * (dscr >= 1.6)
        + 0.5 * (leverage > 2.5)
        + 0.9 * (leverage > 4.0)
        + 0.8 * ((dpd >= 1) & (dpd <= 30))
        + 1.7 * (dpd > 30)
        + 0.6 * (years < 3)
        + 1.0 * (defaults > 0)
        + 0.6 * (stage == "decline")
        + 0.4 * (industry == "real_estate")
        + rng.normal(0.0, 0.7, n)
        + drift * 0.3
    )
    bad = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float64)
    bad[rng.random(n) < 0.1] = np.nan  # outcomes not yet known (too recent)

    purpose = np.where(is_project, np.array(["solar plant", "wind farm", "toll road", "water treatment", "grid link"],
                                            dtype=object)[rng.integers(0, 5, n)], None).astype(object)
    purpose[rng.random(n) < 0.5] = None
    region = np.array(["Jiangsu", "Hunan", "Inner Mongolia", "Sichuan", "Guangdong"], dtype=object)[
        rng.integers(0, 5, n)
    ]
    segment = np.array(SEGMENTS, dtype=object)[rng.integers(0, len(SEGMENTS), n)]

    def only(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        out = values.astype(object) if values.dtype == object else values.astype(np.float64).copy()
        out[~mask] = None if out.dtype == object else np.nan
        return out

    return [
        ("application.amount", amount, "%.0f"),
        ("application.tenor_months", tenor, "%.0f"),
        ("application.product", product, "s"),
        ("application.purpose", purpose, "s"),
        ("borrower.registered_capital", capital, "%.0f"),
        ("borrower.industry", industry, "s"),
        ("borrower.region", maybe(region, 0.8), "s"),
        ("borrower.years_in_business", years, "%.0f"),
        ("borrower.lifecycle_stage", stage, "s"),
        ("borrower.founded", maybe(founded, 0.6), "s"),
        ("financials.total_assets", assets, "%.0f"),
        ("financials.total_liabilities", liabilities, "%.0f"),
        ("financials.current_assets", only(has_current, current_assets), "%.0f"),
        ("financials.current_liabilities", only(has_current, current_liabilities), "%.0f"),
        ("financials.revenue", revenue, "%.0f"),
        ("financials.ebitda", ebitda, "%.0f"),
        ("financials.net_income", maybe(net_income, 0.7), "%.0f"),
        ("financials.operating_cash_flow", maybe(ocf, 0.6), "%.0f"),
        ("financials.debt_service", debt_service, "%.0f"),
        ("financials.audited", audited, "s"),
        ("financials.audit_opinion", opinion, "s"),
        ("financials_prev.total_assets", only(has_prev, prev_assets), "%.0f"),
        ("financials_prev.total_liabilities", only(has_prev, prev_liabilities), "%.0f"),
        ("financials_prev.revenue", only(has_prev, prev_revenue), "%.0f"),
        ("financials_prev.ebitda", only(has_prev, prev_ebitda), "%.0f"),
        ("credit.max_dpd_12m", dpd, "%.0f"),
        ("credit.defaults_5y", defaults, "%.0f"),
        ("credit.restructurings_5y", restructurings, "%.0f"),
        ("credit.existing_exposure", exposure, "%.0f"),
        ("project.total_investment", only(has_project, investment), "%.0f"),
        ("project.sponsor_equity_pct", only(has_project, equity_pct), "%.3f"),
        ("project.expected_irr", only(has_project, irr), "%.4f"),
        ("project.construction_months", only(has_project, construction), "%.0f"),
        ("project.construction_risk", only(has_project, risk), "s"),
        ("project.covenant_dscr", only(has_project, covenant), "%.2f"),
        ("performance.bad", bad, "%.0f"),
        ("segment", segment, "s"),
    ]


def _cells(values: np.ndarray, fmt: str) -> list[str]:
    """One column as CSV cells: numbers printf-formatted in C, missing values empty."""
    if fmt == "s":
        return ["" if v is None else str(v) for v in values.tolist()]
    missing = np.isnan(values)
    text = np.char.mod(fmt, np.where(missing, 0.0, values))
    return np.where(missing, "", text).tolist()


def write_csv(path: str | Path, rows: int, seed: int = DEMO_SEED, drift: float = 0.0, chunk: int = 200_000,
              log: Callable[[str], None] | None = None) -> Path:
    """Write the portfolio in chunks (each chunk its own seed), so a million rows need little memory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        written = 0
        part = 0
        while written < rows or (rows == 0 and part == 0):
            size = min(chunk, rows - written)
            columns = generate(size, seed + part * 7919 if part else seed, drift)
            if part == 0:
                out.write(",".join(name for name, _, _ in columns) + "\n")
            cells = [_cells(values, fmt) for _, values, fmt in columns]
            # Our texts hold no commas, quotes or line breaks, so joining needs no quoting.
            out.writelines(",".join(row) + "\n" for row in zip(*cells, strict=True))
            written += size
            part += 1
            if log:
                log(f"{written} rows")
            if size == 0:
                break
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--drift", type=float, default=0.0, help="worsen credit quality (a shifted book for PSI)")
    parser.add_argument("--out", default="examples/portfolio.csv")
    args = parser.parse_args(argv)
    write_csv(args.out, args.rows, args.seed, args.drift)
    print(f"wrote {args.rows} rows to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
