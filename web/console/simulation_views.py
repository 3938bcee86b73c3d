"""Simulation: pick a baseline, a candidate and a portfolio; watch the run; read the report; drill into any cell.

A run is a row in `simulation_run` worked by a separate process (web/services/simulations.py), so it survives a
reload or a restart; the run page refreshes itself (a plain meta refresh: no script needed) until it is done.
Every table exports to CSV, and every count links to the cases behind it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from engine.outputs import DECISIONS
from web.console import charts
from web.console.privacy import masked_input
from web.console.security import route, viewer
from web.services import authoring, rules, simulations
from web.services.errors import Refused

RUNNERS = simulations.RUNNERS
TABLES = ("kpis", "swap_set", "tier_migration", "rule_fires", "reason_mix", "score_histogram", "cutoff")


def _ensure_worker() -> None:
    if str(current_app.config.get("CONSOLE_WORKER", "auto")) == "auto":
        simulations.ensure_worker(current_app.config.get("DATABASE_URL"))


def runs() -> str:
    return render_template("console/sim_list.html", runs=simulations.list_runs(limit=100))


def _choices() -> tuple[list[rules.VersionInfo], list[str]]:
    versions = [v for v in rules.list_versions() if v.status != "retired" or v.published_at]
    policies = sorted({v.name for v in versions if v.kind == "policy" and v.status == "active"})
    return versions, policies


def _default_policy(chosen: Sequence[str], policies: Sequence[str]) -> str:
    """The policy a bare "Simulate" link starts with: one that uses the chosen version (all active ones if none is
    chosen), preferring the policy for the demo book's main product. Under another product's policy nearly every
    row would only be referred with R-PRODUCT-MISMATCH (the first policy by name is a term-loan one, the book is
    mostly project loans), which says nothing about the version."""
    names, library = list(policies), None
    if chosen:
        try:
            _, doc = authoring.load_version(chosen[0])
            library = authoring.library_with(doc)
            names = authoring.policies_using(doc, library) or names
        except Refused:
            pass  # the version does not load or fit: enqueue says why; the form still needs a default
    products = authoring.policy_products(library)
    return authoring.policy_for_product(names, products, simulations.book_product()) or ""


def new_run() -> BaseResponse | tuple[str, int]:
    versions, policies = _choices()
    form = request.form if request.method == "POST" else request.args
    chosen = [r for r in form.getlist("candidate") if r]
    # An explicit choice (the form always sends one) is kept as it is; only a bare link gets the default.
    policy = form.get("policy") or _default_policy(chosen, policies)
    baseline = [r for r in form.getlist("baseline") if r]
    source = "upload" if form.get("portfolio") == "upload" else "demo"
    as_of_text = form.get("as_of") or max(dt.date.today(), dt.date(2026, 1, 1)).isoformat()
    subject = form.get("subject") or (chosen[0] if len(chosen) == 1 else "")
    refusal = None
    if request.method == "POST":
        try:
            as_of = dt.date.fromisoformat(as_of_text)
        except ValueError:
            as_of = None
            refusal = Refused("bad-date", "the business date must be YYYY-MM-DD", "invalid")
        path, name = simulations.DEMO_BOOK, "demo book (examples/portfolio.csv)"
        if refusal is None and source == "upload":
            upload = request.files.get("file")
            if upload is None or not upload.filename:
                refusal = Refused("no-file", "choose a CSV or JSON Lines file to upload", "invalid")
            else:
                data = upload.read()
                if not data:
                    refusal = Refused("empty-file", "the uploaded file is empty", "invalid")
                else:
                    folder = current_app.config.get("CONSOLE_UPLOADS") or simulations.UPLOADS
                    path = simulations.store_upload(data, upload.filename, Path(folder))
                    name = f"upload: {upload.filename[:120]}"
        if refusal is None and as_of is not None:
            try:
                run_id = simulations.enqueue(
                    viewer().username,
                    policy=policy,
                    as_of=as_of,
                    candidate=chosen,
                    baseline=baseline,
                    portfolio=path,
                    portfolio_name=name,
                    subject=subject or None,
                )
            except Refused as error:
                refusal = error
            else:
                _ensure_worker()
                return redirect(url_for("console.run", run_id=run_id))
    return (
        render_template(
            "console/sim_new.html",
            versions=versions,
            policies=policies,
            chosen=chosen,
            baseline=baseline,
            source=source,
            policy=policy,
            as_of=as_of_text,
            subject=subject,
            refusal=refusal,
        ),
        refusal.http_status if refusal else 200,
    )


def _load(run_id: int) -> simulations.Run:
    try:
        return simulations.get_run(run_id)
    except Refused as error:
        abort(404, error.message)


def kpis(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The headline figures of both sides with their deltas (candidate - baseline)."""
    b, c = report["baseline"], report["candidate"]
    rows: list[dict[str, Any]] = []

    def add(label: str, bv: Any, cv: Any, kind: str, drill: dict[str, str] | None = None) -> None:
        delta = None if bv is None or cv is None else cv - bv
        rows.append({"label": label, "baseline": bv, "candidate": cv, "delta": delta, "kind": kind, "drill": drill})

    for outcome in DECISIONS:
        add(f"{outcome} count", b["outcomes"][outcome], c["outcomes"][outcome], "count",
            {"c_outcome": outcome})
    for outcome in DECISIONS:
        add(f"{outcome} rate", b["outcome_rates"][outcome], c["outcome_rates"][outcome], "rate")
    for outcome in DECISIONS:
        add(f"bad rate of {outcome}", b["bad_rate_by_outcome"][outcome], c["bad_rate_by_outcome"][outcome], "rate")
    add("approved exposure", b["exposure"]["approved_limit"], c["exposure"]["approved_limit"], "money")
    add("average limit", b["exposure"]["average_limit"], c["exposure"]["average_limit"], "money")
    add("average rate", b["exposure"]["average_rate"], c["exposure"]["average_rate"], "rate2")
    add("mean score", b["score"].get("mean"), c["score"].get("mean"), "number")
    add("KS", b["score"].get("ks"), c["score"].get("ks"), "ratio")
    add("Gini", b["score"].get("gini"), c["score"].get("gini"), "ratio")
    add("evaluation errors", b["errors"], c["errors"], "count")
    return rows


def run(run_id: int) -> str:
    item = _load(run_id)
    if not item.finished:
        _ensure_worker()  # after a restart nobody may be working the queue: start someone
    report = simulations.get_report(run_id) if item.status == "done" else None
    context: dict[str, Any] = {"run": item, "report": report, "decisions": DECISIONS}
    if report is not None:
        context["kpis"] = kpis(report)
        context["histogram"] = charts.histogram(
            {
                "baseline": report["baseline"]["score"].get("histogram") or [],
                "candidate": report["candidate"]["score"].get("histogram") or [],
            }
        )
        context["cutoff"] = charts.cutoff_curves(simulations.score_pairs(run_id))
        context["tier_rows"] = list(report["tier_migration"])
        context["tier_cols"] = list(next(iter(report["tier_migration"].values()), {}))
    return render_template("console/sim_run.html", **context)


def progress(run_id: int) -> Any:
    item = _load(run_id)
    return {"status": item.status, "progress": item.progress, "note": item.note, "error": item.error}


def _csv(name: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        # A cell that starts like a formula would run in a spreadsheet: quote it as text.
        writer.writerow(["'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v for v in row])
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def sim_export(run_id: int, table: str) -> Response:
    if table not in TABLES:
        abort(404)
    report = simulations.get_report(run_id)
    if report is None:
        abort(409, "the run has no report yet")
    name = f"simulation-{run_id}-{table}"
    if table == "kpis":
        return _csv(name, ("measure", "baseline", "candidate", "delta"),
                    ((k["label"], k["baseline"], k["candidate"], k["delta"]) for k in kpis(report)))
    if table == "swap_set":
        perf = report["swap_set_performance"]
        return _csv(
            name,
            ("baseline", "candidate", "cases", "known", "bad", "bad_rate"),
            (
                (b, c, report["swap_set"][b][c], perf[b][c]["known"], perf[b][c]["bad"], perf[b][c]["bad_rate"])
                for b in DECISIONS
                for c in DECISIONS
            ),
        )
    if table == "tier_migration":
        return _csv(name, ("baseline_tier", "candidate_tier", "cases"),
                    ((b, c, n) for b, cols in report["tier_migration"].items() for c, n in cols.items()))
    if table == "rule_fires":
        return _csv(name, ("rule", "baseline", "candidate", "change"),
                    ((k, v["baseline"], v["candidate"], v["change"]) for k, v in report["rule_fires"].items()))
    if table == "reason_mix":
        return _csv(name, ("reason", "baseline", "candidate"),
                    ((k, v["baseline"], v["candidate"]) for k, v in report["reason_mix"].items()))
    if table == "score_histogram":
        rows = [
            (side, b["from"], b["to"], b["count"])
            for side in ("baseline", "candidate")
            for b in report[side]["score"].get("histogram") or []
        ]
        return _csv(name, ("side", "from", "to", "count"), rows)
    curves = charts.cutoff_curves(simulations.score_pairs(run_id))
    return _csv(name, ("side", "cutoff", "approval_rate", "bad_rate_of_approved"),
                ((r["side"], r["cutoff"], r["approval_rate"], r["bad_rate"]) for r in (curves or {}).get("table", [])))


FILTER_FIELDS = ("b_outcome", "c_outcome", "b_tier", "c_tier", "rule", "rule_side", "reason", "reason_side",
                 "segment")


def _filter() -> simulations.CaseFilter:
    values: dict[str, Any] = {}
    for name in FILTER_FIELDS:
        value = request.args.get(name)
        if value:
            if len(value) > 200:
                abort(400, f"{name} is too long")
            values[name] = value
    bad = request.args.get("bad")
    if bad in ("0", "1"):
        values["bad"] = int(bad)
    values["changed"] = request.args.get("changed") == "1"
    if request.args.get("score_side") in ("baseline", "candidate"):
        values["score_side"] = request.args["score_side"]
        for bound in ("score_min", "score_max"):
            try:
                values[bound] = float(request.args[bound]) if request.args.get(bound) else None
            except ValueError:
                abort(400, f"{bound} is a number")
    return simulations.CaseFilter(**values)


def case_list(run_id: int) -> Response | str:
    item = _load(run_id)
    where = _filter()
    if request.args.get("format") == "csv":
        rows = simulations.cases(run_id, where, limit=None)
        header = ("row", "segment", "bad", "baseline_outcome", "candidate_outcome", "baseline_tier",
                  "candidate_tier", "baseline_score", "candidate_score", "baseline_limit", "candidate_limit",
                  "baseline_rate", "candidate_rate", "baseline_reasons", "candidate_reasons")
        return _csv(
            f"simulation-{run_id}-cases",
            header,
            (
                (r["row_number"], r["segment"], r["bad"], r["b_outcome"], r["c_outcome"], r["b_tier"], r["c_tier"],
                 r["b_score"], r["c_score"], r["b_limit"], r["c_limit"], r["b_rate"], r["c_rate"],
                 " ".join(r["b_reasons"]), " ".join(r["c_reasons"]))
                for r in rows
            ),
        )
    size = int(current_app.config.get("CONSOLE_PAGE_SIZE", 50))
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    total = simulations.count_cases(run_id, where)
    pages = max(1, -(-total // size))
    page = min(page, pages)  # past the end: the last page, not an empty "page 99999 of 6"
    rows = simulations.cases(run_id, where, offset=(page - 1) * size, limit=size)
    return render_template("console/sim_cases.html", run=item, rows=rows, where=where, total=total, page=page,
                           size=size, pages=pages)


def case(run_id: int, row_number: int) -> str:
    item = _load(run_id)
    try:
        detail = simulations.case_detail(run_id, row_number)
    except Refused as error:
        abort(404, error.message)
    detail["input"] = masked_input(detail["input"])  # an uploaded book can hold names: masked as in the audit trail
    return render_template("console/sim_case.html", run=item, case=detail)


def register(bp: Blueprint) -> None:
    route(bp, "/simulations")(runs)
    route(bp, "/simulations/new", roles=RUNNERS, methods=("GET", "POST"), changes=True)(new_run)
    route(bp, "/simulations/<int:run_id>")(run)
    route(bp, "/simulations/<int:run_id>/progress")(progress)
    route(bp, "/simulations/<int:run_id>/export/<table>.csv")(sim_export)
    route(bp, "/simulations/<int:run_id>/cases")(case_list)
    route(bp, "/simulations/<int:run_id>/cases/<int:row_number>")(case)


__all__ = ["kpis", "register"]
