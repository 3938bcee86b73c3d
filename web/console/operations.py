"""Manual review (the underwriters' queue), the alerts board, and the customer pages.

A review goes through the API's review workflow (web/api/reviews.py: roles, four eyes, one effective override
per decision) in one write transaction, so the console and the API can never disagree on what a review needs.
Alerts move through web.services.customers, which knows who may move which alert.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from pony import orm
from pydantic import ValidationError
from werkzeug.wrappers import Response as BaseResponse

from audit import store
from audit.chain import SELECT_LIST, row_dict
from audit.db import write_session
from audit.records import to_document
from web.api.errors import ApiError
from web.api.reviews import review, review_state
from web.api.schemas import ReviewRequest
from web.console import charts
from web.console.privacy import may_see_identities, shown
from web.console.security import ANYONE, Viewer, route, viewer
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
from web.services import audit_search, customers
from web.services.errors import Refused

UNDERWRITERS = ("underwriter",)
QUEUE_READERS = ("underwriter", "admin", "auditor")
ALERT_MOVERS = ("underwriter", "admin", "approver", "author")  # the service then checks assignee or role
SEVERITIES = ("critical", "high", "medium", "low")


# --- the review queue -------------------------------------------------------------------------------------------


def queue() -> str:
    with orm.db_session:
        rows = store.query(
            "SELECT d.seq, d.decision_id, d.at, d.policy, d.policy_version, d.tier, d.score, d.limit_amount,"
            " d.application_id, r.status, r.proposed_by FROM decision_record d"
            " LEFT JOIN decision_review r ON r.decision_id = d.decision_id"
            " WHERE d.outcome = 'refer' AND d.engine <> 'override' AND (r.status IS NULL OR r.status <> 'effective')"
            " ORDER BY d.seq LIMIT 200"
        )
    keys = ("seq", "decision_id", "at", "policy", "policy_version", "tier", "score", "limit", "application_id",
            "review_status", "proposed_by")
    return render_template("console/review_queue.html", rows=[dict(zip(keys, r, strict=True)) for r in rows])


def _record(decision_id: str) -> dict[str, Any]:
    with orm.db_session:
        row = store.query_one(f"SELECT {SELECT_LIST} FROM decision_record WHERE decision_id = ?", (decision_id,))
    if row is None:
        abort(404, f"no decision {decision_id}")
    data = row_dict(row)
    who = viewer()
    try:
        return to_document(data, unmask=who.has("underwriter", "admin", "auditor"))
    except Exception:  # no audit key on this machine: the masked record still lets a reviewer work
        return to_document(data)


def _number(text: str | None, name: str, problems: list[str]) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        return float(text.replace(",", "").replace("_", ""))
    except ValueError:
        problems.append(f"{name}: '{text[:40]}' is not a number")
        return None


def review_page(decision_id: str) -> tuple[str, int] | BaseResponse:
    doc = _record(decision_id)
    state = review_state(decision_id)
    result = None
    problems: list[str] = []
    status = 200
    form: dict[str, Any] = {}
    if request.method == "POST":
        if not viewer().has(*UNDERWRITERS):
            abort(403, "deciding a referred case needs the underwriter role")
        form = {k: request.form.get(k, "") for k in ("outcome", "reason", "limit", "rate", "conditions")}
        rate = _number(form["rate"], "rate", problems)
        limit = _number(form["limit"], "limit", problems)
        conditions_text = form["conditions"].replace("\r\n", "\n")
        conditions = [c.strip() for c in conditions_text.split("\n") if c.strip()] if conditions_text.strip() else None
        if not problems:
            try:
                body = ReviewRequest(
                    outcome=form["outcome"], reason=form["reason"].strip(), limit=limit,
                    # Always a percentage: "1" read as a fraction would have been a rate of 100%.
                    rate=None if rate is None else rate / 100.0, conditions=conditions,
                )
            except ValidationError as error:
                problems += [f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}" for e in error.errors()]
            else:
                try:
                    with write_session():
                        result = review(decision_id, body, viewer().username)
                except ApiError as error:
                    problems.append(error.message)
                    status = error.status
                except Refused as error:
                    problems.append(error.message)
                    status = error.http_status
        if problems and status == 200:
            status = 422
        state = review_state(decision_id)
    history = audit_search.override_history(decision_id)
    return (
        render_template("console/review.html", doc=doc, state=state, result=result, problems=problems,
                        history=history, form=form),
        status,
    )


def decide(decision_id: str) -> tuple[str, int] | BaseResponse:
    return review_page(decision_id)


# --- alerts -----------------------------------------------------------------------------------------------------


def may_move_alert(who: Viewer, assignee: str) -> bool:
    """Whether `who` may acknowledge or resolve an alert assigned to `assignee`: the route's roles and the rule of
    web.services.customers._move_alert (the assignee, an underwriter or an admin), mirrored so the board only
    offers buttons that work."""
    return who.has(*ALERT_MOVERS) and (who.username == assignee or who.has("underwriter", "admin"))


def alerts() -> str:
    who = viewer()
    severity = request.args.get("severity") or None
    assignee = (request.args.get("rm") or "").strip()[:64] or None
    with orm.db_session:
        query = orm.select(a for a in Alert)
        if severity in SEVERITIES:
            query = query.filter(lambda a: a.severity == severity)
        if assignee:
            query = query.filter(lambda a: a.assignee == assignee)
        rows = query.order_by(orm.desc(Alert.last_seen_at))[:600]
        columns: dict[str, list[dict[str, Any]]] = {"open": [], "acknowledged": [], "resolved": []}
        for a in rows:
            columns[a.status].append(
                {
                    "id": a.id,
                    "customer": a.customer.code,
                    "customer_name": shown(a.customer.name),
                    "code": a.code,
                    "severity": a.severity,
                    "message": a.message,
                    "assignee": a.assignee,
                    "opened_at": a.opened_at,
                    "last_seen_at": a.last_seen_at,
                    "seen_count": a.seen_count,
                    "acknowledged_by": a.acknowledged_by,
                    "resolved_by": a.resolved_by,
                    "can_move": may_move_alert(who, a.assignee),
                }
            )
        rms = sorted(set(orm.select(a.assignee for a in Alert)[:]))
    for items in columns.values():
        items.sort(key=lambda i: (SEVERITIES.index(i["severity"]) if i["severity"] in SEVERITIES else 9))
    refusal = request.args.get("refused")
    return render_template("console/alerts.html", columns=columns, severity=severity, rm=assignee, rms=rms,
                           severities=SEVERITIES, refused=refusal)


def move_alert(alert_id: int, action: str) -> BaseResponse | tuple[str, int]:
    move = customers.acknowledge_alert if action == "acknowledge" else customers.resolve_alert
    try:
        move(alert_id, viewer().username)
    except Refused as error:
        return render_template("console/error.html", code=error.http_status, refusal=error,
                               error=None), error.http_status
    target = request.form.get("back") or ""
    if target.startswith("/console/"):
        return redirect(target)
    return redirect(url_for("console.alerts"))


# --- customers --------------------------------------------------------------------------------------------------


def customer_list() -> str:
    text = (request.args.get("q") or "").strip()[:100]
    size = int(current_app.config.get("CONSOLE_PAGE_SIZE", 50))
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    with orm.db_session:
        query = orm.select(c for c in Customer)
        if text and may_see_identities():
            query = query.filter(lambda c: text.lower() in c.name.lower() or c.code == text)
        elif text:  # names are not shown to this viewer, so they are not searched either: a match would tell
            query = query.filter(lambda c: c.code == text)
        total = query.count()
        pages = max(1, -(-total // size))
        page = min(page, pages)  # past the end: the last page, not "page 99999 of 6" with nothing on it
        rows = [
            {"code": c.code, "name": shown(c.name), "industry": c.industry, "rm": c.rm, "policy": c.policy,
             "stage": c.lifecycle_stage,
             "alerts": orm.count(a for a in Alert if a.customer == c and a.status != "resolved")}
            for c in query.order_by(Customer.code).page(page, size)
        ]
    return render_template("console/customers.html", rows=rows, q=text, page=page, pages=pages, total=total)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def customer(code: str) -> str:
    with orm.db_session:
        c = Customer.get(code=code)
        if c is None:
            abort(404, f"no customer {code}")
        statements = orm.select(s for s in FinancialStatement if s.customer == c).order_by(
            FinancialStatement.period_end)[:]
        history = []
        for s in statements:
            equity = None if s.total_assets is None or s.total_liabilities is None else (
                s.total_assets - s.total_liabilities)
            history.append(
                {
                    "period": s.period_end.isoformat(),
                    "revenue": s.revenue,
                    "ebitda": s.ebitda,
                    "net_income": s.net_income,
                    "total_assets": s.total_assets,
                    "total_liabilities": s.total_liabilities,
                    "dscr": _ratio(s.ebitda, s.debt_service),
                    "leverage": _ratio(s.total_liabilities, equity),
                    "current_ratio": _ratio(s.current_assets, s.current_liabilities),
                    "margin": _ratio(s.ebitda, s.revenue),
                    "audited": s.audited,
                    "audit_opinion": s.audit_opinion,
                }
            )
        events = [
            {"kind": e.kind, "date": e.event_date, "dpd": e.days_past_due, "amount": e.amount, "note": e.note}
            for e in orm.select(e for e in CreditEvent if e.customer == c).order_by(orm.desc(CreditEvent.event_date))
        ]
        projects = [
            {"name": p.name, "investment": p.total_investment, "equity": p.sponsor_equity_pct, "irr": p.expected_irr,
             "months": p.construction_months, "risk": p.construction_risk, "covenant": p.covenant_dscr}
            for p in orm.select(p for p in Project if p.customer == c)
        ]
        applications = [
            {"id": a.id, "amount": a.amount, "tenor": a.tenor_months, "product": a.product, "purpose": a.purpose,
             "status": a.status, "requested_on": a.requested_on}
            for a in orm.select(a for a in Application if a.customer == c).order_by(Application.id)
        ]
        tiers = [
            {"at": t.at, "from": t.from_tier, "to": t.to_tier}
            for t in orm.select(t for t in TierChange if t.customer == c).order_by(orm.desc(TierChange.at))
        ]
        ratings = [
            {"at": r.at, "as_of": r.as_of, "trigger": r.trigger, "outcome": r.outcome, "tier": r.tier,
             "score": r.score, "limit": r.limit_amount, "rate": r.rate, "policy": r.policy}
            for r in orm.select(r for r in Rating if r.customer == c).order_by(orm.desc(Rating.at))[:50]
        ]
        proposals = [
            {"at": p.at, "kind": p.kind, "current": p.current_value, "proposed": p.proposed_value,
             "status": p.status}
            for p in orm.select(p for p in AdjustmentProposal if p.customer == c).order_by(
                orm.desc(AdjustmentProposal.at))[:50]
        ]
        alerts_rows = [
            {"id": a.id, "code": a.code, "severity": a.severity, "message": a.message, "status": a.status,
             "assignee": a.assignee, "opened_at": a.opened_at}
            for a in orm.select(a for a in Alert if a.customer == c).order_by(orm.desc(Alert.opened_at))
        ]
        info = {
            "code": c.code, "name": shown(c.name), "legal_representative": shown(c.legal_representative),
            "registered_capital": c.registered_capital, "industry": c.industry, "region": c.region,
            "founded": c.founded, "stage": c.lifecycle_stage, "rm": c.rm, "policy": c.policy,
            "exposure": c.existing_exposure,
        }
        app_ids = [str(a["id"]) for a in applications]
    past: list[dict[str, Any]] = []
    if app_ids:
        marks = ", ".join("?" for _ in app_ids)
        with orm.db_session:
            rows = store.query(
                "SELECT decision_id, at, policy, policy_version, outcome, tier, score, limit_amount, rate, engine,"
                f" application_id FROM decision_record WHERE application_id IN ({marks}) ORDER BY seq DESC LIMIT 100",
                app_ids,
            )
        keys = ("decision_id", "at", "policy", "version", "outcome", "tier", "score", "limit", "rate", "engine",
                "application_id")
        past = [dict(zip(keys, r, strict=True)) for r in rows]
    trends = {
        name: charts.trend([(h["period"][:4], h[name]) for h in history], percent=name == "margin")
        for name in ("dscr", "leverage", "current_ratio", "margin")
    }
    revenue = charts.trend([(h["period"][:4], h["revenue"] / 1e6 if h["revenue"] is not None else None)
                            for h in history])
    return render_template(
        "console/customer.html", info=info, history=history, events=events, projects=projects,
        applications=applications, tiers=tiers, ratings=ratings, proposals=proposals, alerts=alerts_rows,
        past=past, trends=trends, revenue=revenue,
    )


def register(bp: Blueprint) -> None:
    route(bp, "/reviews", roles=QUEUE_READERS)(queue)
    route(bp, "/reviews/<decision_id>", roles=QUEUE_READERS)(review_page)
    route(bp, "/reviews/<decision_id>/decide", roles=UNDERWRITERS, methods=("POST",))(decide)
    route(bp, "/alerts", roles=ANYONE)(alerts)
    for action in ("acknowledge", "resolve"):
        def make(action: str = action) -> Any:
            def view(alert_id: int) -> BaseResponse | tuple[str, int]:
                return move_alert(alert_id, action)

            view.__name__ = f"alert_{action}"
            return view

        route(bp, f"/alerts/<int:alert_id>/{action}", roles=ALERT_MOVERS, methods=("POST",))(make())
    route(bp, "/customers", roles=ANYONE)(customer_list)
    route(bp, "/customers/<code>", roles=ANYONE)(customer)


__all__ = ["register"]
