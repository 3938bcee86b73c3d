"""The customer store as cases: assembly (store → case), import (file → store) and dynamic adjustment.

Assembly is the one mapping from stored rows to the facts of `rulesets/facts.yaml`:

- `financials` is the latest statement whose period ended on or before the business date, `financials_prev`
  the one before it;
- `credit` aggregates the credit events over their windows, which end on the business date and start just
  after the same date 12 months (days past due) or 5 years (defaults, restructurings) earlier;
- `application` is the latest requested application (else the latest of any status), `project` its project;
- `borrower.years_in_business` counts the full years since the founding date.

A policy that declares a field this mapping cannot supply is refused for stored customers, naming the field:
deciding without it would silently treat it as unknown.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pony import orm

from audit.db import write_session
from audit.governance import now
from audit.governance import record as record_event
from engine.cases import CaseValidator
from engine.errors import CredoError, Problem, did_you_mean
from engine.model import Policy, Ruleset, Scorecard
from web.models import (
    AdjustmentProposal,
    Alert,
    Application,
    CreditEvent,
    Customer,
    FinancialStatement,
    Project,
    Rating,
    TierChange,
)
from web.services import notify
from web.services.active import ACTIVE, Snapshot
from web.services.errors import Refused
from web.services.users import SYSTEM, principal

STATEMENT_FIELDS = (
    "total_assets",
    "total_liabilities",
    "current_assets",
    "current_liabilities",
    "revenue",
    "ebitda",
    "net_income",
    "operating_cash_flow",
    "debt_service",
    "audited",
    "audit_opinion",
)
PROJECT_FIELDS = (
    "total_investment",
    "sponsor_equity_pct",
    "expected_irr",
    "construction_months",
    "construction_risk",
    "covenant_dscr",
)
BORROWER_FIELDS = (
    "name",
    "legal_representative",
    "registered_capital",
    "industry",
    "region",
    "years_in_business",
    "lifecycle_stage",
    "founded",
)
APPLICATION_FIELDS = ("amount", "tenor_months", "product", "purpose")
CREDIT_FIELDS = ("max_dpd_12m", "defaults_5y", "restructurings_5y", "existing_exposure")

# Every fact field the store can supply.
MAPPABLE = frozenset(
    [f"application.{f}" for f in APPLICATION_FIELDS]
    + [f"borrower.{f}" for f in BORROWER_FIELDS]
    + [f"financials.{f}" for f in STATEMENT_FIELDS]
    + [f"financials_prev.{f}" for f in STATEMENT_FIELDS]
    + [f"credit.{f}" for f in CREDIT_FIELDS]
    + [f"project.{f}" for f in PROJECT_FIELDS]
)
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
LIVE = ("open", "acknowledged")
CREDIT_EVENT_KINDS = ("repayment", "past_due", "default", "restructuring")

# Bounds on new customer data that no fact declaration gives. A statement or a credit event records what has
# happened, so it is dated today (UTC) at the latest; a date before 1900 is a typing error (1800 for 2018), never
# the history of a borrower the bank lends to today, and would re-rate the customer under no policy at all.
EARLIEST_DATE = dt.date(1900, 1, 1)
# rulesets/facts.yaml bounds credit.max_dpd_12m below only (min 0); a loan a hundred years late is the most the
# store takes, so a slip of the keyboard (100000) cannot become the worst arrears in the aggregates.
MAX_DAYS_PAST_DUE = 36_500


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def latest_business_date() -> dt.date:
    """The furthest business date a re-rating may look ahead to: a year after today (UTC).

    Rules carry effective dates, so a date a little ahead is a fair question (which versions will be in force at
    the next review); 9999-12-31 is not, and would record a rating no one can act on.
    """
    return years_before(today_utc(), -1)


def years_before(day: dt.date, years: int) -> dt.date:
    """The same day `years` earlier (later, for a negative number); 29 February becomes the 28th."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year that has none
        return day.replace(year=day.year - years, day=28)


def full_years(start: dt.date, end: dt.date) -> int:
    return end.year - start.year - ((end.month, end.day) < (start.month, start.day))


# --- store → case -------------------------------------------------------------------------------------------


def _statement(row: FinancialStatement | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {f: getattr(row, f) for f in STATEMENT_FIELDS if getattr(row, f) is not None}


def credit_aggregates(events: Iterable[CreditEvent], as_of: dt.date) -> dict[str, int]:
    since_12m = years_before(as_of, 1)
    since_5y = years_before(as_of, 5)
    dpd = [e.days_past_due for e in events if since_12m < e.event_date <= as_of]
    recent = [e for e in events if since_5y < e.event_date <= as_of]
    return {
        "max_dpd_12m": max(dpd, default=0),
        "defaults_5y": sum(e.kind == "default" for e in recent),
        "restructurings_5y": sum(e.kind == "restructuring" for e in recent),
    }


def assemble(customer: Customer, as_of: dt.date) -> dict[str, Any]:
    """Every fact the store holds for the customer on the business date (call within a db_session)."""
    statements = orm.select(s for s in FinancialStatement if s.customer == customer and s.period_end <= as_of)
    latest = statements.order_by(orm.desc(FinancialStatement.period_end))[:2]
    applications = orm.select(a for a in Application if a.customer == customer and a.requested_on <= as_of).order_by(
        orm.desc(Application.requested_on), orm.desc(Application.id)
    )[:]
    application = next((a for a in applications if a.status == "requested"), applications[0] if applications else None)
    events = orm.select(e for e in CreditEvent if e.customer == customer and e.event_date <= as_of)[:]

    borrower: dict[str, Any] = {
        "name": customer.name,
        "legal_representative": customer.legal_representative,
        "registered_capital": customer.registered_capital,
        "industry": customer.industry,
        "region": customer.region,
        "lifecycle_stage": customer.lifecycle_stage,
    }
    if customer.founded is not None:
        borrower["founded"] = customer.founded.isoformat()
        borrower["years_in_business"] = max(full_years(customer.founded, as_of), 0)
    case: dict[str, Any] = {
        "borrower": {k: v for k, v in borrower.items() if v is not None},
        "credit": {**credit_aggregates(events, as_of), "existing_exposure": customer.existing_exposure},
    }
    if latest:
        case["financials"] = _statement(latest[0])
    if len(latest) > 1:
        case["financials_prev"] = _statement(latest[1])
    if application is not None:
        case["application"] = {
            k: v
            for k, v in {
                "amount": application.amount,
                "tenor_months": application.tenor_months,
                "product": application.product,
                "purpose": application.purpose,
            }.items()
            if v is not None
        }
        if application.project is not None:
            project = application.project
            case["project"] = {f: getattr(project, f) for f in PROJECT_FIELDS if getattr(project, f) is not None}
    return case


def unmappable_fields(snapshot: Snapshot, policy: str, as_of: dt.date) -> list[str]:
    """The fields the policy declares (or the shared schema requires) that the store cannot supply."""
    library = snapshot.library
    doc = library.find(policy, Policy, as_of)
    assert isinstance(doc, Policy)
    declared: set[str] = set()
    for ref in doc.rulesets:
        ruleset = library.find(ref, Ruleset, as_of)
        declared |= {f.dotted for f in getattr(ruleset, "facts", ()) if f.derived is None}
    if doc.scorecard is not None:
        scorecard = library.find(doc.scorecard, Scorecard, as_of)
        declared |= {f.dotted for f in getattr(scorecard, "facts", ()) if f.derived is None}
    unit = snapshot.compile_policy(policy, as_of)
    declared |= {f"{fact}.{d.name}" for fact, decls in unit.validator.required.items() for d in decls}
    return sorted(declared - MAPPABLE)


def _project(case: Mapping[str, Any], snapshot: Snapshot, policy: str, as_of: dt.date) -> dict[str, Any]:
    """The case cut down to the fields the policy's schema declares (the validator refuses any other)."""
    facts = snapshot.compile_policy(policy, as_of).validator.facts
    out: dict[str, Any] = {}
    for fact, values in case.items():
        decls = facts.get(fact)
        if decls is None:
            continue
        kept = {k: v for k, v in values.items() if k in decls and decls[k].derived is None}
        if kept:
            out[fact] = kept
    return out


def case_for(
    code: str, *, as_of: dt.date | None = None, policy: str | None = None, snapshot: Snapshot | None = None
) -> dict[str, Any]:
    """The case for a stored customer under its monitoring policy (or `policy`), on the business date."""
    as_of = as_of or dt.date.today()
    snapshot = snapshot or ACTIVE.current()
    with orm.db_session:
        customer = Customer.get(code=code)
        if customer is None:
            raise Refused("unknown-customer", f"no customer '{code}'", "not-found")
        chosen = policy or customer.policy
        _check_mappable(snapshot, chosen, as_of)
        return _project(assemble(customer, as_of), snapshot, chosen, as_of)


def _check_mappable(snapshot: Snapshot, policy: str, as_of: dt.date) -> None:
    try:
        missing = unmappable_fields(snapshot, policy, as_of)
    except CredoError as error:  # no such policy, or none in force on the date
        raise Refused(error.problems[0].code, error.problems[0].message, "invalid", error.problems) from None
    if missing:
        raise Refused(
            "unmappable-field",
            f"policy '{policy}' declares {', '.join(missing)}, which stored customers cannot supply; "
            "it cannot decide stored customers",
            "invalid",
            details=missing,
        )


def set_policy(code: str, policy: str, actor: str, as_of: dt.date | None = None) -> None:
    """Monitor a customer under a named policy; refused when the policy needs a field the store lacks."""
    as_of = as_of or dt.date.today()
    _check_mappable(ACTIVE.current(), policy, as_of)
    with write_session():
        customer = Customer.get_for_update(code=code)
        if customer is None:
            raise Refused("unknown-customer", f"no customer '{code}'", "not-found")
        customer.policy, customer.updated_at = policy, now()


# --- dynamic adjustment ----------------------------------------------------------------------------------------


@dataclass
class Reassessment:
    customer: str
    rating: int
    outcome: str | None
    tier: str | None
    previous_tier: str | None
    tier_changed: bool
    proposals: list[tuple[str, float | None, float | None]] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)
    notifications: list[int] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)


def _differs(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    return not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def reassess(code: str, *, as_of: dt.date | None = None, trigger: str = "manual", strict: bool = True) -> Reassessment:
    """Re-run the customer's monitoring policy (tiering, limits, pricing, early warnings) and act on the result.

    Records the rating, a tier change, limit and rate adjustment proposals against the previous rating; opens
    or refreshes alerts (one live alert per customer and trigger) and queues a notification to the RM for each
    new or escalated alert and for a tier change, all in one transaction: the outbox commits with the alert.

    A policy the store cannot feed is refused (`strict`), or, when new data triggered the re-run, recorded as
    a rating with that problem: the new statement or event is kept either way.
    """
    as_of = as_of or dt.date.today()
    snapshot = ACTIVE.current()
    with write_session():
        customer = Customer.get_for_update(code=code)  # serialises re-runs of one customer
        if customer is None:
            raise Refused("unknown-customer", f"no customer '{code}'", "not-found")
        stamp = now()
        previous = (
            orm.select(r for r in Rating if r.customer == customer and r.outcome is not None)
            .order_by(orm.desc(Rating.at), orm.desc(Rating.id))
            .first()
        )
        try:
            _check_mappable(snapshot, customer.policy, as_of)
            case = _project(assemble(customer, as_of), snapshot, customer.policy, as_of)
            decision = snapshot.decide(customer.policy, case, as_of)
        except (CredoError, Refused) as error:
            if isinstance(error, Refused) and strict:
                raise
            problems = (
                [p.to_dict() for p in error.problems]
                if isinstance(error, CredoError)
                else [{"code": error.code, "message": error.message}]
            )
            rating = Rating(
                customer=customer,
                at=stamp,
                as_of=as_of,
                policy=customer.policy,
                trigger=trigger,
                generation=snapshot.generation,
                versions="[]",
                problems=json.dumps(problems),
            )
            rating.flush()
            prior = previous.tier if previous else None
            return Reassessment(code, rating.id, None, None, prior, False, problems=problems)
        versions = [
            decision["policy"],
            *decision["rulesets"],
            *([decision["scorecard"]] if decision["scorecard"] else []),
        ]
        rating = Rating(
            customer=customer,
            at=stamp,
            as_of=as_of,
            policy=customer.policy,
            trigger=trigger,
            outcome=decision["outcome"],
            tier=decision["tier"],
            score=decision["score"],
            pd=decision["pd"],
            limit_amount=decision["limit"],
            rate=decision["rate"],
            generation=snapshot.generation,
            versions=json.dumps(versions),
            problems="[]",
        )
        rating.flush()
        result = Reassessment(
            code, rating.id, decision["outcome"], decision["tier"], previous.tier if previous else None, False
        )
        if previous is not None and previous.tier != rating.tier:
            TierChange(customer=customer, rating=rating, at=stamp, from_tier=previous.tier, to_tier=rating.tier)
            result.tier_changed = True
        if previous is not None:
            for kind, old, new in (
                ("limit", previous.limit_amount, rating.limit_amount),
                ("rate", previous.rate, rating.rate),
            ):
                if _differs(old, new):
                    AdjustmentProposal(
                        customer=customer, rating=rating, at=stamp, kind=kind, current_value=old, proposed_value=new
                    )
                    result.proposals.append((kind, old, new))
        for item in decision["alerts"]:
            _raise_alert(customer, rating, item, stamp, result)
        if result.tier_changed or result.proposals:
            body = {
                "customer": customer.code,
                "kind": "review",
                "tier": {"from": result.previous_tier, "to": result.tier},
                "proposals": [{"kind": k, "current": o, "proposed": n} for k, o, n in result.proposals],
                "as_of": as_of.isoformat(),
            }
            note = notify.queue(
                customer.rm,
                f"Review {customer.code}: rating changed",
                body,
                address=customer.rm_email,
                customer=customer,
            )
            result.notifications.append(note.id)
        return result


def _raise_alert(customer: Customer, rating: Rating, item: Mapping[str, Any], stamp: dt.datetime, result: Any) -> None:
    code, severity, message = str(item["code"]), str(item["severity"]), str(item["message"])
    live = orm.select(a for a in Alert if a.customer == customer and a.code == code and a.status in LIVE).first()
    if live is not None:
        escalated = SEVERITY_RANK.get(severity, 0) > SEVERITY_RANK.get(live.severity, 0)
        live.severity = severity if escalated else live.severity
        live.message, live.last_seen_at, live.rating = message, stamp, rating
        live.seen_count += 1
        result.refreshed.append(code)
        if not escalated:
            return
        alert = live
    else:
        alert = Alert(
            customer=customer,
            rating=rating,
            code=code,
            severity=severity,
            message=message,
            status="open",
            assignee=customer.rm,
            opened_at=stamp,
            last_seen_at=stamp,
        )
        alert.flush()
        result.opened.append(code)
    body = {
        "customer": customer.code,
        "kind": "alert",
        "alert": alert.id,
        "code": code,
        "severity": alert.severity,
        "message": message,
        "as_of": rating.as_of.isoformat(),
    }
    note = notify.queue(
        customer.rm,
        f"{alert.severity.upper()} {code} for {customer.code}",
        body,
        address=customer.rm_email,
        customer=customer,
        alert=alert,
    )
    result.notifications.append(note.id)


def acknowledge_alert(alert_id: int, actor: str, note: str | None = None) -> None:
    _move_alert(alert_id, actor, ("open",), "acknowledged", note)


def resolve_alert(alert_id: int, actor: str, note: str | None = None) -> None:
    _move_alert(alert_id, actor, LIVE, "resolved", note)


def _move_alert(alert_id: int, actor: str, allowed: Sequence[str], target: str, note: str | None) -> None:
    """Move an alert, and log who moved it and why in the governance log, in the same transaction."""
    with write_session():
        alert = Alert.get_for_update(id=alert_id)
        if alert is None:
            raise Refused("unknown-alert", f"no alert {alert_id}", "not-found")
        if actor != alert.assignee and not principal(actor).roles & {"underwriter", "admin"}:
            raise Refused(
                "not-assignee", f"alert {alert_id} is assigned to {alert.assignee}; {actor} cannot move it", "forbidden"
            )
        if alert.status not in allowed:
            raise Refused("alert-status", f"alert {alert_id} is {alert.status}; it cannot become {target}")
        alert.status = target
        if target == "acknowledged":
            alert.acknowledged_by, alert.acknowledged_at = actor, now()
        else:
            alert.resolved_by, alert.resolved_at = actor, now()
        # What the RM did about an early warning is part of the record an examiner asks for.
        detail = {"customer": alert.customer.code, "code": alert.code, "note": note}
        record_event(actor, f"alert-{target}", f"alert:{alert_id}", detail)


def _date_problem(name: str, day: dt.date) -> Problem | None:
    """A date of new customer data (a period end, an event date) that cannot have happened yet, or long ago."""
    today = today_utc()
    if EARLIEST_DATE <= day <= today:
        return None
    return Problem(
        "date-out-of-range",
        f"{name} must be between {EARLIEST_DATE.isoformat()} and today ({today.isoformat()}), found {day.isoformat()}",
        path=f"$.{name}",
    )


def statement_problems(
    period_end: dt.date, values: Mapping[str, Any], snapshot: Snapshot | None = None
) -> list[Problem]:
    """Every problem of one period's statement, each by its path in the request (`$.total_assets`).

    The items are checked as the `financials` fact that the rules in force declare (types, bounds, enum values,
    required items), whatever the period: an older statement becomes `financials_prev`, whose declarations are
    looser, but a statement is one document and is stored once, so it meets the stricter of the two. Items the
    rules do not declare are stored unchecked: no case carries them (`_project`).
    """
    problems = [
        Problem("unknown-field", f"'{name}' is not a statement item", path=f"$.{name}")
        for name in values
        if name not in STATEMENT_FIELDS
    ]
    dated = _date_problem("period_end", period_end)
    if dated is not None:
        problems.append(dated)
    schema = (snapshot or ACTIVE.current()).library.schema
    declared = {key: decl for key, decl in schema.fields.items() if key[0] == "financials" and decl.derived is None}
    if declared:
        items = {k: v for k, v in values.items() if ("financials", k) in declared}
        try:
            # The case validator itself, on the statement alone: the same checks and messages as a decision's.
            CaseValidator(declared).validate({"financials": items})
        except CredoError as error:
            problems += [replace(p, path=_item_path(p.path)) for p in error.problems]
    return problems


def _item_path(path: str | None) -> str:
    """The validator's path names the fact (`$.financials.revenue`); a statement holds its items at the top."""
    prefix = "$.financials."
    return "$." + path[len(prefix) :] if path and path.startswith(prefix) else "$"


def record_financials(
    code: str, period_end: dt.date, values: Mapping[str, Any], *, as_of: dt.date | None = None
) -> Reassessment:
    """Store (or restate) one period's statement, then re-run the customer's monitoring in the same transaction.

    A restatement replaces the period's statement whole: an item it leaves out is no longer held. So a statement
    is refused, with every problem and nothing stored, unless it is complete and valid by the fact declarations
    (`statement_problems`), a restatement as much as a first statement.
    """
    problems = statement_problems(period_end, values)
    if problems:
        raise Refused(
            "invalid-statement",
            "the statement does not match the fact declarations; nothing was stored",
            "invalid",
            problems,
        )
    with write_session():
        customer = Customer.get_for_update(code=code)
        if customer is None:
            raise Refused("unknown-customer", f"no customer '{code}'", "not-found")
        _upsert_statement(customer, period_end, values)
        return reassess(code, as_of=as_of, trigger=f"financials:{period_end.isoformat()}", strict=False)


def record_credit_event(
    code: str,
    kind: str,
    event_date: dt.date,
    *,
    days_past_due: int = 0,
    amount: float | None = None,
    note: str | None = None,
    as_of: dt.date | None = None,
) -> Reassessment:
    """Store a credit event, then re-rate the customer as of the event date (or `as_of`) in the same transaction.

    An event that cannot have happened is refused with every problem and nothing stored: an unknown kind, a date
    after today (UTC) or before 1900, days past due outside 0..MAX_DAYS_PAST_DUE.
    """
    problems: list[Problem] = []
    if kind not in CREDIT_EVENT_KINDS:
        problems.append(Problem("bad-event", f"unknown credit event kind '{kind}'", path="$.kind"))
    dated = _date_problem("event_date", event_date)
    if dated is not None:
        problems.append(dated)
    if not 0 <= days_past_due <= MAX_DAYS_PAST_DUE:
        problems.append(
            Problem(
                "out-of-range",
                f"days_past_due must be between 0 and {MAX_DAYS_PAST_DUE}, found {days_past_due}",
                path="$.days_past_due",
            )
        )
    if problems:
        raise Refused("invalid-event", "the credit event is not possible; nothing was stored", "invalid", problems)
    with write_session():
        customer = Customer.get_for_update(code=code)
        if customer is None:
            raise Refused("unknown-customer", f"no customer '{code}'", "not-found")
        CreditEvent(
            customer=customer,
            kind=kind,
            event_date=event_date,
            days_past_due=days_past_due,
            amount=amount,
            note=note,
            recorded_at=now(),
        )
        return reassess(code, as_of=as_of or event_date, trigger=f"credit-event:{kind}", strict=False)


def _upsert_statement(customer: Customer, period_end: dt.date, values: Mapping[str, Any]) -> FinancialStatement:
    unknown = [k for k in values if k not in STATEMENT_FIELDS]
    if unknown:
        raise Refused("unknown-field", f"'{unknown[0]}' is not a statement item", "invalid")
    row = FinancialStatement.get(customer=customer, period_end=period_end)
    fields = {f: values.get(f) for f in STATEMENT_FIELDS}
    if row is None:
        return FinancialStatement(customer=customer, period_end=period_end, recorded_at=now(), **fields)
    row.set(recorded_at=now(), **fields)
    return row


# --- storing records (the import and the demo seed share this) ---------------------------------------------------


def store_record(record: Mapping[str, Any], stamp: dt.datetime | None = None) -> tuple[Customer, bool]:
    """Create or update one customer from a structured record; returns (customer, created). Call in a write session.

    record = {"customer": {...}, "statements": [{"period_end": date, ...}], "events": [{...}],
              "project": {...} | None, "application": {...} | None}
    """
    stamp = stamp or now()
    data = dict(record["customer"])
    code = data.pop("code")
    customer = Customer.get(code=code)
    created = customer is None
    if customer is None:
        customer = Customer(code=code, created_at=stamp, updated_at=stamp, **data)
    else:
        customer.set(updated_at=stamp, **{k: v for k, v in data.items() if v is not None})
    for statement in record.get("statements", ()):
        values = dict(statement)
        _upsert_statement(customer, values.pop("period_end"), values)
    if record.get("replace_summary_events"):
        orm.delete(e for e in CreditEvent if e.customer == customer and e.note == SUMMARY)
    for event in record.get("events", ()):
        CreditEvent(customer=customer, recorded_at=stamp, **event)
    project_values = record.get("project")
    wanted = record.get("application")
    if wanted:
        current = orm.select(a for a in Application if a.customer == customer and a.status == "requested")[:]
        same = [a for a in current if all(getattr(a, k) == v for k, v in wanted.items())]
        if not same:  # a new request replaces the open one; an identical re-import changes nothing
            for old in current:
                old.status = "withdrawn"
            project = Project(customer=customer, created_at=stamp, **project_values) if project_values else None
            Application(customer=customer, project=project, status="requested", created_at=stamp, **wanted)
    elif project_values:
        Project(customer=customer, created_at=stamp, **project_values)
    return customer, created


SUMMARY = "import summary"


# --- import (part 7) ------------------------------------------------------------------------------------------

EXTRA_COLUMNS = ("performance.bad", "segment")  # portfolio columns that say nothing about the customer
COLUMNS: dict[str, str] = {
    "customer.id": "text",
    "customer.rm": "text",
    "customer.rm_email": "text",
    "customer.policy": "text",
    "borrower.name": "text",
    "borrower.legal_representative": "text",
    "borrower.registered_capital": "number",
    "borrower.industry": "text",
    "borrower.region": "text",
    "borrower.years_in_business": "integer",
    "borrower.lifecycle_stage": "text",
    "borrower.founded": "date",
    "financials.period_end": "date",
    "financials_prev.period_end": "date",
    **{f"{fact}.{f}": "number" for fact in ("financials", "financials_prev") for f in STATEMENT_FIELDS},
    "financials.audited": "boolean",
    "financials.audit_opinion": "text",
    "financials_prev.audited": "boolean",
    "financials_prev.audit_opinion": "text",
    "credit.max_dpd_12m": "integer",
    "credit.defaults_5y": "integer",
    "credit.restructurings_5y": "integer",
    "credit.existing_exposure": "number",
    "application.amount": "number",
    "application.tenor_months": "integer",
    "application.product": "text",
    "application.purpose": "text",
    "application.requested_on": "date",
    "project.name": "text",
    "project.total_investment": "number",
    "project.sponsor_equity_pct": "number",
    "project.expected_irr": "number",
    "project.construction_months": "integer",
    "project.construction_risk": "text",
    "project.covenant_dscr": "number",
}
REQUIRED_NEW = ("borrower.name", "borrower.registered_capital", "borrower.industry", "borrower.lifecycle_stage")


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    reassessed: list[Reassessment] = field(default_factory=list)


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            out.update(_flatten(item, name + "."))
        else:
            out[name] = item
    return out


def read_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, dotted row): CSV with a dotted header (row 1) or JSON Lines of flat or nested objects."""
    file = Path(path)
    text = file.read_text(encoding="utf-8-sig")
    if file.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise Refused("bad-json", f"row {number}: not JSON ({exc.msg})", "invalid") from None
            if not isinstance(value, Mapping):
                raise Refused("bad-json", f"row {number}: a row is a JSON object", "invalid")
            yield number, _flatten(value)
        return
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise Refused("bad-csv", f"row {number}: {len(cells)} cells for {len(header)} columns", "invalid")
        yield number, {h.strip(): (c if c.strip() else None) for h, c in zip(header, cells, strict=True)}


def _convert(kind: str, value: Any, where: str) -> Any:
    if value is None:
        return None
    try:
        if kind == "text":
            return str(value)
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if str(value).strip().lower() in ("true", "false"):
                return str(value).strip().lower() == "true"
            raise ValueError
        if kind == "date":
            return dt.date.fromisoformat(str(value).strip()) if not isinstance(value, dt.date) else value
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if not math.isfinite(number):
            raise ValueError
        if kind == "integer":
            if not number.is_integer():
                raise ValueError
            return int(number)
        return number
    except (TypeError, ValueError):
        raise ValueError(f"{where}: '{str(value)[:40]}' is not a valid {kind}") from None


def _record_of(
    row: Mapping[str, Any], number: int, as_of: dt.date, policy: str | None, rm: str | None
) -> dict[str, Any]:
    problems = []
    values: dict[str, Any] = {}
    for column, raw in row.items():
        if column in EXTRA_COLUMNS:
            continue
        kind = COLUMNS.get(column)
        if kind is None:
            hint = did_you_mean(column, COLUMNS)
            problems.append(f"row {number}: unknown column '{column}'" + (f" ({hint})" if hint else ""))
            continue
        try:
            values[column] = _convert(kind, raw, f"row {number}, column {column}")
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("\n".join(problems))
    code = values.get("customer.id")
    if not code:
        raise ValueError(f"row {number}: customer.id is required")

    def part(prefix: str, names: Iterable[str]) -> dict[str, Any]:
        return {n: values[f"{prefix}.{n}"] for n in names if values.get(f"{prefix}.{n}") is not None}

    borrower = part("borrower", BORROWER_FIELDS)
    founded = borrower.get("founded")
    if founded is None and "years_in_business" in borrower:
        # The store keeps a founding date; a bare age becomes the date that many years before the business date.
        founded = years_before(as_of, int(borrower["years_in_business"]))
    customer = {
        "code": str(code),
        "name": borrower.get("name"),
        "legal_representative": borrower.get("legal_representative"),
        "registered_capital": borrower.get("registered_capital"),
        "industry": borrower.get("industry"),
        "region": borrower.get("region"),
        "founded": founded,
        "lifecycle_stage": borrower.get("lifecycle_stage"),
        "rm": values.get("customer.rm") or rm,
        "rm_email": values.get("customer.rm_email"),
        "policy": values.get("customer.policy") or policy,
        "existing_exposure": values.get("credit.existing_exposure"),
    }
    statements = []
    for fact, default_end in (("financials", as_of), ("financials_prev", years_before(as_of, 1))):
        items = part(fact, STATEMENT_FIELDS)
        if items:
            items["period_end"] = values.get(f"{fact}.period_end") or default_end
            statements.append(items)
    events: list[dict[str, Any]] = []
    credit = part("credit", ("max_dpd_12m", "defaults_5y", "restructurings_5y"))
    for kind, count_key in (("default", "defaults_5y"), ("restructuring", "restructurings_5y")):
        events += [
            {"kind": kind, "event_date": as_of, "days_past_due": 0, "note": SUMMARY}
            for _ in range(int(credit.get(count_key, 0)))
        ]
    if credit.get("max_dpd_12m"):
        events.append(
            {"kind": "past_due", "event_date": as_of, "days_past_due": int(credit["max_dpd_12m"]), "note": SUMMARY}
        )
    application = part("application", APPLICATION_FIELDS)
    if application and not {"amount", "tenor_months", "product"} <= application.keys():
        raise ValueError(f"row {number}: an application needs amount, tenor_months and product")
    if application:
        application["requested_on"] = values.get("application.requested_on") or as_of
    project = part("project", PROJECT_FIELDS)
    if project:
        project["name"] = values.get("project.name") or f"{code} project"
    return {
        "customer": customer,
        "statements": statements,
        "events": events,
        "replace_summary_events": bool(credit),
        "project": project or None,
        "application": application or None,
    }


def import_customers(
    path: str | Path,
    *,
    as_of: dt.date | None = None,
    policy: str | None = None,
    rm: str | None = None,
    reassess_after: bool = False,
    actor: str = SYSTEM,
) -> ImportReport:
    """Import a CSV or JSON Lines file in the portfolios' dotted columns, all rows or none.

    Besides the fact columns: `customer.id` (required), `customer.rm`, `customer.rm_email`, `customer.policy`,
    `financials.period_end` and `financials_prev.period_end` (default: the business date and a year before),
    `application.requested_on`, `project.name`. Credit aggregates become summary events on the business date.
    """
    as_of = as_of or dt.date.today()
    records, problems = [], []
    for number, row in read_rows(path):
        try:
            records.append((number, _record_of(row, number, as_of, policy, rm)))
        except ValueError as exc:
            problems.append(str(exc))
    report = ImportReport()
    with write_session():
        for number, record in records:
            customer = record["customer"]
            exists = Customer.get(code=customer["code"]) is not None
            missing = [] if exists else [c for c in REQUIRED_NEW if customer.get(c.split(".")[1]) is None]
            missing += [] if exists or customer["rm"] else ["customer.rm"]
            missing += [] if exists or customer["policy"] else ["customer.policy"]
            if missing:
                problems.append(f"row {number}: a new customer needs {', '.join(missing)}")
        policies: dict[str, int] = {}
        for number, record in records:
            chosen = record["customer"]["policy"]
            if chosen:
                policies.setdefault(chosen, number)
        if policies:
            snapshot = ACTIVE.current()
            for chosen, number in policies.items():
                try:
                    _check_mappable(snapshot, chosen, as_of)
                except Refused as refusal:
                    problems.append(f"row {number}: {refusal.message}")
        if problems:
            raise Refused(
                "bad-rows",
                f"{len(problems)} problem(s) in {Path(path).name}; nothing imported",
                "invalid",
                details=problems,
            )
        stamp = now()
        for _, record in records:
            if record["customer"]["existing_exposure"] is None:
                record["customer"]["existing_exposure"] = 0.0
            try:
                customer, created = store_record(record, stamp)
            except ValueError as exc:  # a value the entities refuse; Pony names the attribute, not the value
                raise Refused("bad-rows", f"customer {record['customer']['code']}: {exc}", "invalid") from None
            (report.created if created else report.updated).append(customer.code)
        # Counts only: the log never holds customer data.
        record_event(
            actor,
            "customers-imported",
            Path(path).name,
            {"created": len(report.created), "updated": len(report.updated)},
        )
    if reassess_after:
        for code in [*report.created, *report.updated]:
            report.reassessed.append(reassess(code, as_of=as_of, trigger="import"))
    return report


__all__ = [
    "MAPPABLE",
    "ImportReport",
    "Reassessment",
    "acknowledge_alert",
    "assemble",
    "case_for",
    "credit_aggregates",
    "import_customers",
    "reassess",
    "record_credit_event",
    "record_financials",
    "resolve_alert",
    "set_policy",
    "statement_problems",
    "store_record",
    "unmappable_fields",
]
