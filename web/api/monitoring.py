"""Monitoring: early warnings on a stored customer or a case, the alert queue, and new customer data.

Each mutating endpoint runs in one write transaction (framework `transaction="write"`): the customer's new data,
the rating it triggers, its alerts and their outbox notifications commit together with the stored idempotent
answer, or not at all.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pony import orm
from pydantic import BaseModel, ConfigDict, Field

from engine.errors import CredoError
from engine.evaluate import decide
from engine.model import Ruleset
from web.api.errors import ApiError, from_credo_error
from web.api.framework import MAX_ID, Call, PathParam, endpoint, utc
from web.api.schemas import Adjustment as AdjustmentModel
from web.api.schemas import (
    AlertAction,
    AlertList,
    AlertStatus,
    CreditEventRequest,
    Financials,
    Identifier,
    MonitoringRequest,
    MonitoringResult,
    Severity,
    StoredAlert,
)
from web.models import Alert, Customer
from web.services import customers, decisions
from web.services.active import ACTIVE

CUSTOMER = PathParam(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", "the bank's customer number", example="C00001")
ALERT = PathParam(r"[0-9]{1,10}", "an alert id", integer=True, example="1")
MONITORS = ("monitor",)
LIVE = ("open", "acknowledged")


def alert_dict(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "customer_id": alert.customer.code,
        "code": alert.code,
        "severity": alert.severity,
        "message": alert.message,
        "status": alert.status,
        "assignee": alert.assignee,
        "opened_at": utc(alert.opened_at),
        "last_seen_at": utc(alert.last_seen_at),
        "seen_count": alert.seen_count,
        "acknowledged_by": alert.acknowledged_by,
        "acknowledged_at": utc(alert.acknowledged_at),
        "resolved_by": alert.resolved_by,
        "resolved_at": utc(alert.resolved_at),
    }


def _adjustment(result: customers.Reassessment) -> dict[str, Any]:
    customer = Customer.get(code=result.customer)
    live = (
        orm.select(a for a in Alert if a.customer == customer and a.status in LIVE).order_by(Alert.id)[:]
        if customer is not None
        else []
    )
    return {
        "customer_id": result.customer,
        "rating_id": result.rating,
        "outcome": result.outcome,
        "tier": result.tier,
        "previous_tier": result.previous_tier,
        "tier_changed": result.tier_changed,
        "proposals": [{"kind": k, "current": old, "proposed": new} for k, old, new in result.proposals],
        "alerts_opened": result.opened,
        "alerts_refreshed": result.refreshed,
        "alerts": [alert_dict(a) for a in live],
        "problems": result.problems,
    }


@endpoint(
    "POST",
    "/monitoring/evaluate",
    summary="Run the early warnings on a stored customer or a case",
    tag="monitoring",
    scopes=MONITORS,
    body=MonitoringRequest,
    response=MonitoringResult,
    errors=(404,),
    transaction="write",
)
def evaluate_monitoring(call: Call) -> dict[str, Any]:
    """With `customer_id`: re-runs the customer's monitoring policy (tiering, limits, pricing, early warnings) on the
    stored data, stores the rating, and opens or refreshes its alerts: one live alert per customer and trigger, so
    a repeated warning refreshes the alert instead of opening another. Returns the customer's live alerts.

    With `case`: runs the early-warning rulesets in force (or the named `policy`) on the case and returns the
    alerts without storing them: a case names no stored customer to hold them.

    `as_of` may look ahead up to a year after today (UTC), to see which rules will be in force; a later date, or
    one before 1900-01-01, is 422."""
    body: MonitoringRequest = call.body
    as_of = body.as_of or dt.date.today()
    if body.customer_id is not None:
        result = customers.reassess(body.customer_id, as_of=as_of, trigger="api", strict=True)
        adjustment = _adjustment(result)
        return {"persisted": True, "alerts": adjustment["alerts"], "adjustment": adjustment, "rulesets": []}
    snapshot = ACTIVE.current()
    try:
        if body.policy is not None:
            # Through the decision service's check, so an unknown policy or one not in force answers the codes
            # POST /decisions answers, not the engine's (unknown-document, not-in-force).
            decision = decide(decisions.compile_policy(snapshot, body.policy, as_of), body.case, as_of)
            return {"persisted": False, "alerts": decision["alerts"], "rulesets": decision["rulesets"]}
        library = snapshot.library
        warnings = [
            d for d in library.documents if isinstance(d, Ruleset) and d.kind == "early_warning" and d.in_force(as_of)
        ]
        if not warnings:
            raise ApiError(404, "no-early-warnings", f"no early-warning ruleset is in force on {as_of.isoformat()}")
        alerts: list[dict[str, Any]] = []
        seen: set[str] = set()
        ran = []
        for ruleset in warnings:
            decision = decide(library.compile_ruleset(ruleset), body.case, as_of)
            ran.append({"name": ruleset.name, "version": ruleset.version, "digest": ruleset.digest})
            for alert in decision["alerts"]:
                if alert["code"] not in seen:  # two rulesets raising one trigger: one alert
                    seen.add(alert["code"])
                    alerts.append(alert)
        return {"persisted": False, "alerts": alerts, "rulesets": ran}
    except CredoError as error:
        raise from_credo_error(error) from None


class AlertQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: AlertStatus | None = Field(None, description="only alerts in this status")
    severity: Severity | None = None
    customer_id: Identifier | None = None
    code: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")] | None = None
    assignee: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")] | None = None
    after_id: Annotated[int, Field(ge=0, le=MAX_ID)] | None = Field(None, description="the page after this id")
    limit: Annotated[int, Field(ge=1, le=500)] = 100


@endpoint(
    "GET",
    "/alerts",
    summary="Alerts, filtered",
    tag="monitoring",
    scopes=("monitor", "read"),
    query=AlertQuery,
    response=AlertList,
)
def list_alerts(call: Call) -> dict[str, Any]:
    """Alerts in id order, filtered by status, severity, customer, trigger code or assignee; paged by `after_id`."""
    q: AlertQuery = call.query
    # Plain locals: Pony translates a lambda's free variables into query parameters.
    status, severity, customer_id, code, assignee, after_id = (
        q.status,
        q.severity,
        q.customer_id,
        q.code,
        q.assignee,
        q.after_id,
    )
    query = orm.select(a for a in Alert)
    if status is not None:
        query = query.filter(lambda a: a.status == status)
    if severity is not None:
        query = query.filter(lambda a: a.severity == severity)
    if customer_id is not None:
        query = query.filter(lambda a: a.customer.code == customer_id)
    if code is not None:
        query = query.filter(lambda a: a.code == code)
    if assignee is not None:
        query = query.filter(lambda a: a.assignee == assignee)
    if after_id is not None:
        query = query.filter(lambda a: a.id > after_id)
    rows = query.order_by(Alert.id)[: q.limit + 1]
    page = rows[: q.limit]
    return {
        "alerts": [alert_dict(a) for a in page],
        "next_after_id": page[-1].id if len(rows) > q.limit else None,
    }


def _move(call: Call, move: Any) -> dict[str, Any]:
    alert_id = call.params["alert_id"]
    body: AlertAction | None = call.body
    move(alert_id, call.username, body.note if body is not None else None)
    alert = Alert.get(id=alert_id)
    if alert is None:  # moved and gone in one transaction cannot happen; keep the answer honest anyway
        raise ApiError(404, "unknown-alert", f"no alert {alert_id}")
    return alert_dict(alert)


@endpoint(
    "POST",
    "/alerts/{alert_id}/acknowledge",
    summary="Acknowledge an open alert",
    tag="monitoring",
    scopes=MONITORS,
    body=AlertAction,
    body_required=False,
    response=StoredAlert,
    errors=(404,),
    transaction="write",
    params={"alert_id": ALERT},
)
def acknowledge_alert(call: Call) -> dict[str, Any]:
    """By the alert's assignee (the customer's RM), an underwriter or an admin: the key's user is the actor."""
    return _move(call, customers.acknowledge_alert)


@endpoint(
    "POST",
    "/alerts/{alert_id}/resolve",
    summary="Resolve an open or acknowledged alert",
    tag="monitoring",
    scopes=MONITORS,
    body=AlertAction,
    body_required=False,
    response=StoredAlert,
    errors=(404,),
    transaction="write",
    params={"alert_id": ALERT},
)
def resolve_alert(call: Call) -> dict[str, Any]:
    """By the alert's assignee, an underwriter or an admin. A trigger that fires again later opens a new alert."""
    return _move(call, customers.resolve_alert)


@endpoint(
    "POST",
    "/customers/{customer_id}/financials",
    summary="Record a financial statement and re-rate the customer",
    tag="customers",
    scopes=MONITORS,
    body=Financials,
    response=AdjustmentModel,
    errors=(404,),
    transaction="write",
    params={"customer_id": CUSTOMER},
)
def record_financials(call: Call) -> dict[str, Any]:
    """Stores (or restates) the statement for `period_end`, then re-runs the customer's monitoring policy in the same
    transaction: the answer holds the tier change, limit and rate proposals and the alerts opened or refreshed.

    The statement is checked first against the `financials` fact the rules in force declare: the required items
    (total assets and liabilities, revenue, EBITDA, debt service) present, every item within its declared bounds
    and values, `period_end` from 1900-01-01 to today (UTC). Otherwise the answer is 422 listing every problem by
    JSON path (`$.total_assets`), and nothing is stored: no statement, no rating, no alert.

    A restatement (a second statement for the same `period_end`) replaces the stored one whole, as restated
    accounts replace the original accounts: an optional item it leaves out is no longer held. So it must be as
    complete as a first statement; send every item, not only the ones that changed."""
    body: Financials = call.body
    values = body.model_dump(exclude={"period_end", "as_of"}, exclude_none=True)
    result = customers.record_financials(call.params["customer_id"], body.period_end, values, as_of=body.as_of)
    return _adjustment(result)


@endpoint(
    "POST",
    "/customers/{customer_id}/credit-events",
    summary="Record a credit event and re-rate the customer",
    tag="customers",
    scopes=MONITORS,
    body=CreditEventRequest,
    response=AdjustmentModel,
    errors=(404,),
    transaction="write",
    params={"customer_id": CUSTOMER},
)
def record_credit_event(call: Call) -> dict[str, Any]:
    """A repayment (with its days past due), a past-due observation, a default or a restructuring; the customer is
    re-rated as of the event date (or `as_of`), in the same transaction.

    An event that cannot have happened is 422 with its path, and nothing is stored: `event_date` after today (UTC)
    or before 1900-01-01, `days_past_due` outside 0 to 36500."""
    body: CreditEventRequest = call.body
    result = customers.record_credit_event(
        call.params["customer_id"],
        body.kind,
        body.event_date,
        days_past_due=body.days_past_due,
        amount=body.amount,
        note=body.note,
        as_of=body.as_of,
    )
    return _adjustment(result)


__all__ = [
    "acknowledge_alert",
    "alert_dict",
    "evaluate_monitoring",
    "list_alerts",
    "record_credit_event",
    "record_financials",
    "resolve_alert",
]
