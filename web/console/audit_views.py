"""Audit: decision search, a decision's full record with replay, the chains' verification, exports and the
governance log. Auditors read everything here and change nothing; replay and export are reads (an export is
logged as a governance event by design, as every export of the log is).
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request
from pony import orm
from werkzeug.exceptions import BadRequest

from audit import checkpoints, store
from audit.errors import AuditUnavailable
from audit.overrides import is_override
from audit.records import read_head
from audit.verify import format_report
from web.api.auth import UNMASK_ROLES
from web.console.security import route, viewer
from web.services import audit_search, decisions
from web.services.errors import Refused
from web.services.rules import parse_ref

READERS = ("auditor", "admin", "approver", "underwriter")  # case data: never authors (least privilege)
EXPORTERS = audit_search.READERS
MAX_FIELD = 200


def _date(name: str) -> dt.date | None:
    value = request.values.get(name)
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        abort(400, f"{name} must be a date YYYY-MM-DD")


def _text(name: str) -> str | None:
    value = (request.values.get(name) or "").strip()
    if len(value) > MAX_FIELD:
        abort(400, f"{name} is too long")
    return value or None


def _filters() -> audit_search.DecisionFilter:
    version = _text("policy_version")
    if version is not None and not version.isdigit():
        abort(400, "policy_version is a number")
    uses = _text("uses")
    used: tuple[str, int] | None = None
    if uses is not None:
        try:
            name, number = parse_ref(uses)
        except Refused as error:
            abort(400, error.message)
        used = (name, int(number or 0))
    return audit_search.DecisionFilter(
        start=_date("from"),
        end=_date("to"),
        outcome=_text("outcome"),
        policy=_text("policy"),
        policy_version=int(version) if version else None,
        rule=_text("rule"),
        tier=_text("tier"),
        customer=_text("customer"),
        caller=_text("caller"),
        decision_id=_text("decision_id"),
        uses=used,
    )


def search() -> tuple[str, int]:
    args = {k: v for k, v in request.args.items() if k != "before" and v}
    size = int(current_app.config.get("CONSOLE_PAGE_SIZE", 50))
    try:
        filters = _filters()
    except BadRequest as refused:  # a filter that cannot be read: the form comes back as typed, saying which
        return render_template("console/audit_search.html", rows=[], total=0, filters=None, args=args,
                               next_before=None, size=size, problems=[refused.description]), 400
    before = request.args.get("before")
    rows, total = audit_search.search(filters, before=int(before) if before and before.isdigit() else None,
                                      limit=size)
    return render_template("console/audit_search.html", rows=rows, total=total, filters=filters, args=args,
                           next_before=rows[-1]["seq"] if len(rows) == size else None, size=size, problems=[]), 200


def _caller() -> decisions.Caller:
    who = viewer()
    return decisions.Caller("user", who.username, can_unmask=bool(who.roles & UNMASK_ROLES))


def detail(decision_id: str) -> tuple[str, int]:
    try:
        try:
            doc = decisions.get_decision(decision_id, _caller())
        except Exception:  # no audit key here: show the record as stored (masked) rather than nothing
            doc = decisions.get_decision(decision_id, decisions.Caller("user", viewer().username))
    except Refused as error:
        abort(404, error.message)
    history = audit_search.override_history(decision_id)
    if is_override(doc):
        # An override's input is the underwriter's change, not a case: the rules have nothing to replay. The
        # automated decision it overrides is the one to replay, so the page points there instead.
        override_of = doc["input"].get("override_of") if isinstance(doc["input"], dict) else None
        refused = request.method == "POST"
        return (
            render_template("console/audit_detail.html", doc=doc, replay=None, history=history, override=True,
                            override_of=override_of, replay_refused=refused),
            409 if refused else 200,
        )
    replay = None
    if request.method == "POST":
        try:
            replay = decisions.replay(decision_id)
        except Refused as error:
            replay = {"error": error.message}
        except AuditUnavailable as error:
            replay = {"error": str(error)}
    return render_template("console/audit_detail.html", doc=doc, replay=replay, history=history, override=False), 200


def audit_export() -> Response:
    fmt = request.form.get("format", "jsonl")
    if fmt not in ("csv", "jsonl"):
        abort(400, "format is csv or jsonl")
    out = io.StringIO()
    try:
        count = audit_search.export(out, viewer().username, _filters(), fmt)
    except Refused as error:
        abort(error.http_status, error.message)
    name = f"decisions-{dt.date.today().isoformat()}.{fmt}"
    return Response(
        out.getvalue(),
        mimetype="text/csv" if fmt == "csv" else "application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Records": str(count)},
    )


def chain() -> str:
    report = decisions.verify()
    head = read_head()
    points = checkpoints.read(head.chain_id)
    last = points.last if points else None
    with orm.db_session:
        governance = store.query_one("SELECT seq FROM governance_head WHERE id = 1")
    return render_template(
        "console/audit_chain.html",
        report=report,
        lines=format_report(report),
        head=head,
        last=last,
        governance_seq=int(governance[0]) if governance else 0,
        done=request.args.get("done") == "checkpoint",
    )


def checkpoint() -> Any:
    from flask import redirect, url_for

    try:
        decisions.write_checkpoint()
    except AuditUnavailable as error:
        abort(503, str(error))
    return redirect(url_for("console.chain", done="checkpoint"))


def _event_filter() -> audit_search.EventFilter:
    return audit_search.EventFilter(actor=_text("actor"), action=_text("action"), subject=_text("subject"))


def governance() -> str:
    filters = _event_filter()
    before = request.args.get("before")
    rows, total = audit_search.events(filters, before=int(before) if before and before.isdigit() else None)
    args = {k: v for k, v in request.args.items() if k != "before" and v}
    return render_template("console/audit_governance.html", rows=rows, total=total, filters=filters, args=args,
                           next_before=rows[-1]["seq"] if len(rows) == 100 else None)


def governance_export() -> Response:
    fmt = request.form.get("format", "jsonl")
    if fmt not in ("csv", "jsonl"):
        abort(400, "format is csv or jsonl")
    out = io.StringIO()
    audit_search.export_events(out, viewer().username, _event_filter(), fmt)
    return Response(
        out.getvalue(),
        mimetype="text/csv" if fmt == "csv" else "application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="governance.{fmt}"'},
    )


def register(bp: Blueprint) -> None:
    route(bp, "/audit", roles=READERS)(search)
    route(bp, "/audit/decisions/<decision_id>", roles=READERS, methods=("GET", "POST"), changes=False)(detail)
    route(bp, "/audit/export", roles=EXPORTERS, methods=("POST",), changes=False)(audit_export)
    route(bp, "/audit/chain", roles=READERS)(chain)
    route(bp, "/audit/checkpoint", roles=("admin",), methods=("POST",))(checkpoint)
    route(bp, "/audit/governance", roles=READERS)(governance)
    route(bp, "/audit/governance/export", roles=EXPORTERS, methods=("POST",), changes=False)(governance_export)


__all__ = ["register"]
