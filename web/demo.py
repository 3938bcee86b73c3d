"""The demo: accounts for each role, and a synthetic portfolio made from a fixed seed.

Demo passwords are random (`secrets`), printed once by `credo db init`, and stored only as hashes; set
CREDO_DEMO_PASSWORD to give every demo account that password instead (a shared demo machine, a screencast).
The portfolio is a pure function of (size, seed, reference date): every run builds the same customers,
statements, credit events, projects and applications. All names are fictional ("Example ...").
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Mapping
from typing import Any

import numpy as np
from pony import orm

from audit.db import write_session
from audit.governance import now, record
from web.models import User
from web.services.customers import store_record
from web.services.users import create_user

DEMO_ACCOUNTS = (
    ("author1", "author"),
    ("approver1", "approver"),
    ("underwriter1", "underwriter"),
    ("auditor1", "auditor"),
    ("admin", "admin"),
)
SEED = 20260101
REFERENCE_DATE = dt.date(2026, 3, 31)  # the portfolio's "today": the last statements are FY2025
DEFAULT_SIZE = 300


def create_demo_accounts(env: Mapping[str, str] | None = None) -> list[tuple[str, str, str | None]]:
    """(username, role, password) for each demo account created now; password None when it came from the env.

    Accounts that already exist are left alone (and not listed): a password is only ever shown at creation.
    """
    env = os.environ if env is None else env
    shared = env.get("CREDO_DEMO_PASSWORD")
    created = []
    with orm.db_session:
        existing = set(orm.select(u.username for u in User)[:])
    for username, role in DEMO_ACCOUNTS:
        if username in existing:
            continue
        password = shared or secrets.token_urlsafe(12)
        create_user(username, [role], password, display_name=f"Demo {role}", email=f"{username}@example.com")
        created.append((username, role, None if shared else password))
    return created


INDUSTRIES = ("energy", "infrastructure", "manufacturing", "real_estate", "services", "agriculture")
INDUSTRY_WEIGHTS = (0.16, 0.12, 0.30, 0.10, 0.22, 0.10)
REGIONS = ("Jiangsu", "Zhejiang", "Guangdong", "Shandong", "Henan", "Sichuan", "Hubei", "Inner Mongolia")
WORDS = (
    "Sunfield",
    "Ridgeline",
    "Harbour",
    "Golden Field",
    "Northgate",
    "Bluewater",
    "Stonebridge",
    "Silverleaf",
    "Redwood",
    "Eastwind",
    "Clearwater",
    "Highland",
    "Westlake",
    "Brightpath",
    "Ironhill",
    "Greenvale",
)
TRADES = {
    "energy": "Solar Power",
    "infrastructure": "Toll Road",
    "manufacturing": "Precision Stamping",
    "real_estate": "Property Development",
    "services": "Logistics Services",
    "agriculture": "Agricultural",
}
RMS = tuple(f"rm{n:02d}" for n in range(1, 9))
OPINIONS = ("unqualified", "qualified", "adverse", "disclaimer")


def _money(value: float) -> float:
    return float(round(value / 1000.0) * 1000.0)  # to the thousand, like the statements banks receive


def synthetic_portfolio(size: int = DEFAULT_SIZE, seed: int = SEED, reference: dt.date = REFERENCE_DATE) -> list[dict]:
    """Structured customer records (see customers.store_record), identical for identical arguments."""
    rng = np.random.default_rng(seed)
    records = []
    last_year = reference.year - 1
    for index in range(size):
        industry = str(rng.choice(INDUSTRIES, p=INDUSTRY_WEIGHTS))
        project_company = industry in ("energy", "infrastructure") and rng.random() < 0.8
        founded = reference - dt.timedelta(days=int(rng.integers(365, 30 * 365)))
        age = (reference - founded).days / 365.25
        stage = "introduction" if age < 3 else "growth" if age < 8 else "maturity"
        if age >= 8 and rng.random() < 0.12:
            stage = "decline"
        code = f"C{index + 1:05d}"
        word = WORDS[int(rng.integers(len(WORDS)))]
        capital = _money(float(rng.lognormal(np.log(60e6), 0.6)))
        revenue = float(rng.lognormal(np.log(250e6), 0.7))
        growth = rng.normal(0.05, 0.12, size=3)
        margin = float(np.clip(rng.normal(0.14, 0.07), -0.08, 0.4))
        gearing = float(np.clip(rng.normal(0.55, 0.15), 0.2, 1.05))  # liabilities / assets
        statements = []
        for year_index, year in enumerate(range(last_year - 2, last_year + 1)):
            factor = float(np.prod(1 + growth[: year_index + 1]))
            rev = revenue * factor
            ebitda = rev * (margin + float(rng.normal(0, 0.02)))
            assets = rev * float(rng.uniform(1.1, 3.5))
            liabilities = assets * float(np.clip(gearing + rng.normal(0, 0.04), 0.1, 1.1))
            current_assets = assets * float(rng.uniform(0.15, 0.45))
            audited = bool(rng.random() < 0.85)
            statements.append(
                {
                    "period_end": dt.date(year, 12, 31),
                    "total_assets": _money(assets),
                    "total_liabilities": _money(liabilities),
                    "current_assets": _money(current_assets),
                    "current_liabilities": _money(current_assets * float(rng.uniform(0.6, 1.4))),
                    "revenue": _money(rev),
                    "ebitda": _money(ebitda),
                    "net_income": _money(ebitda * float(rng.uniform(0.2, 0.6)) - liabilities * 0.02),
                    "operating_cash_flow": _money(ebitda * float(rng.uniform(0.4, 1.0))),
                    "debt_service": _money(max(liabilities * float(rng.uniform(0.03, 0.09)), 1e6)),
                    "audited": audited,
                    "audit_opinion": str(rng.choice(OPINIONS, p=(0.88, 0.08, 0.02, 0.02))) if audited else None,
                }
            )
        events = []
        troubled = rng.random() < 0.15
        for half in range(6):  # semi-annual repayments over three years
            day = dt.date(last_year - 2 + half // 2, 6 if half % 2 == 0 else 12, 30 if half % 2 == 0 else 31)
            dpd = int(rng.integers(1, 120)) if troubled and rng.random() < 0.4 else 0
            events.append(
                {
                    "kind": "repayment",
                    "event_date": day,
                    "days_past_due": dpd,
                    "amount": _money(statements[0]["debt_service"] / 2),
                    "note": None,
                }
            )
        if troubled and rng.random() < 0.2:
            events.append(
                {
                    "kind": "default",
                    "event_date": reference - dt.timedelta(days=int(rng.integers(200, 1500))),
                    "days_past_due": 90,
                    "amount": None,
                    "note": None,
                }
            )
        if troubled and rng.random() < 0.25:
            events.append(
                {
                    "kind": "restructuring",
                    "event_date": reference - dt.timedelta(days=int(rng.integers(100, 1500))),
                    "days_past_due": 0,
                    "amount": None,
                    "note": None,
                }
            )
        project = None
        if project_company:
            project = {
                "name": f"Example {word} {TRADES[industry]} project",
                "total_investment": _money(float(rng.lognormal(np.log(400e6), 0.5))),
                "sponsor_equity_pct": round(float(rng.uniform(0.15, 0.45)), 2),
                "expected_irr": round(float(rng.uniform(0.04, 0.14)), 3),
                "construction_months": int(rng.integers(6, 36)),
                "construction_risk": str(rng.choice(("low", "medium", "high"), p=(0.5, 0.35, 0.15))),
                "covenant_dscr": round(float(rng.uniform(1.15, 1.4)), 2),
            }
        amount = _money(float(rng.uniform(0.1, 0.6)) * capital * (2 if project_company else 1))
        records.append(
            {
                "customer": {
                    "code": code,
                    "name": f"Example {word} {TRADES[industry]} Co., Ltd. {index + 1}",
                    "legal_representative": f"Example Person {index + 1}",
                    "registered_capital": capital,
                    "industry": industry,
                    "region": REGIONS[int(rng.integers(len(REGIONS)))],
                    "founded": founded,
                    "lifecycle_stage": stage,
                    "rm": RMS[index % len(RMS)],
                    "rm_email": f"{RMS[index % len(RMS)]}@example.com",
                    "policy": "project-finance" if project_company else "corporate-term-loan",
                    "existing_exposure": _money(float(rng.uniform(0, 0.3)) * capital),
                },
                "statements": statements,
                "events": events,
                "project": project,
                "application": {
                    "amount": amount,
                    "tenor_months": int(
                        rng.choice((36, 48, 60, 84, 120, 180) if project_company else (12, 24, 36, 60))
                    ),
                    "product": "project_loan" if project_company else "term_loan",
                    "purpose": "Construction of the project" if project_company else "Capital expenditure",
                    "requested_on": reference - dt.timedelta(days=int(rng.integers(1, 60))),
                },
            }
        )
    return records


def seed_portfolio(size: int = DEFAULT_SIZE, seed: int = SEED, actor: str = "system") -> int:
    """Store the synthetic portfolio; refused (returns 0) when the store already holds customers."""
    from web.models import Customer

    records = synthetic_portfolio(size, seed)
    with write_session():
        if orm.count(c for c in Customer) > 0:
            return 0
        stamp = now()
        for item in records:
            store_record(item, stamp)
        record(actor, "portfolio-seeded", "customers", {"customers": size, "seed": seed})
    return size


def portfolio_fingerprint(records: list[dict[str, Any]]) -> str:
    """A digest of a generated portfolio, for tests and for checking two machines made the same one."""
    import hashlib
    import json

    text = json.dumps(records, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


__all__ = [
    "DEMO_ACCOUNTS",
    "create_demo_accounts",
    "portfolio_fingerprint",
    "seed_portfolio",
    "synthetic_portfolio",
]
