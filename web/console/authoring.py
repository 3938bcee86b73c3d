"""Authoring: the lists, the editor, problems as you type, tables as grids, tests with coverage, diffs, the
lifecycle (submit → approve by someone else → publish; rollback; retire) and "try it" against a version.

Every lifecycle step calls web.services.rules, which holds the rules (four eyes, digests, tests); the console only
checks the role first (so the page can say who may) and explains a refusal in full when the service says no.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from pony import orm
from werkzeug.wrappers import Response as BaseResponse

from engine.model import Policy, Ruleset
from web.console.security import ANYONE, route, viewer
from web.models import RuleVersion
from web.services import authoring, rules, simulations
from web.services.errors import Refused

AUTHORS = ("author",)
STEPS: dict[str, tuple[tuple[str, ...], str]] = {
    # action: (roles, what a success says); the roles mirror web.services.rules' own checks
    "submit": (("author",), "Submitted: its embedded tests passed; an approver can now approve it."),
    "approve": (("approver",), "Approved, bound to this exact text: it can now be published."),
    "publish": (("approver", "admin"), "Published: it is active and the next decision uses it."),
    "rollback": (
        ("author", "approver", "admin"),
        "Rollback asked for: it takes effect when a second user (an approver) confirms it.",
    ),
    "retire": (("approver", "admin"), "Retired: taken out of the active set (or withdrawn)."),
}
DONE = {
    "saved": "Saved.",
    "drafted": "Saved as a new draft.",
    **{step: text for step, (_, text) in STEPS.items()},
    # The same rollback step either asks or confirms: each outcome gets its own banner (see step()).
    "rollback-requested": STEPS["rollback"][1],
    "rolled-back": "Rollback confirmed: this version is active again and the next decision uses it.",
}
NEW_TEMPLATE = """ruleset: my-new-ruleset
kind: eligibility
description: What this ruleset decides, in one sentence.
effective_from: 2026-01-01

reasons:
  R-EXAMPLE: "Explain the outcome to the applicant"

rules:
  - id: EXAMPLE-1
    when: application.amount > 100_000_000
    then:
      decision: refer
      reasons: [R-EXAMPLE]
"""


def _ref(name: str, number: int) -> str:
    return f"{name}@{number}"


def _show(ref: str) -> rules.VersionInfo:
    """The stored version, or the console's error page (404 for an unknown one): a Refused left uncaught would
    reach the app-wide handler, which answers in the API's JSON."""
    try:
        return rules.show(ref)
    except Refused as error:
        abort(error.http_status, error.message)


def documents() -> str:
    """Every document: kind, active version, drafts in flight, the newest version's status, who and when."""
    with orm.db_session:
        rows = orm.select(v for v in RuleVersion).order_by(RuleVersion.name, RuleVersion.number)[:]
        grouped: dict[str, list[RuleVersion]] = {}
        for row in rows:
            grouped.setdefault(row.name, []).append(row)
        items = []
        for name, versions in grouped.items():
            newest = versions[-1]
            items.append(
                {
                    "name": name,
                    "kind": newest.kind,
                    "active": [v.number for v in versions if v.status == "active"],
                    "drafts": [(v.number, v.status) for v in versions if v.status in rules.EDITABLE],
                    "status": newest.status,
                    "newest": newest.number,
                    "who": newest.author,
                    "when": newest.updated_at,
                    "errors": sum(p.get("severity") == "error" for p in newest.problem_list),
                }
            )
    kind = request.args.get("kind")
    if kind in ("ruleset", "scorecard", "policy"):
        items = [i for i in items if i["kind"] == kind]
    return render_template("console/rules_list.html", items=items, kind=kind)


def document(name: str) -> str:
    versions = rules.list_versions(name)
    if not versions:
        abort(404, f"no stored document named {name}")
    return render_template("console/rules_document.html", name=name, versions=versions)


def _version_page(ref: str, *, refusal: Refused | None = None, text: str | None = None, status: int = 200,
                  action: str | None = None) -> tuple[str, int]:
    info = _show(ref)
    who = viewer()
    editable = info.status in rules.EDITABLE
    simulation = simulations.latest_for(info.ref, info.digest)
    all_runs = simulations.list_runs(info.ref, limit=10)
    versions = rules.list_versions(info.name)
    return (
        render_template(
            "console/rules_version.html",
            info=info,
            text=info.text if text is None else text,
            editable=editable,
            can_edit=who.has(*AUTHORS),
            steps={step: who.has(*roles) for step, (roles, _) in STEPS.items()},
            step_roles={step: roles for step, (roles, _) in STEPS.items()},
            done=DONE.get(request.args.get("done", "")),
            refusal=refusal,
            failed_action=action,
            simulation=simulation,
            simulation_report=simulations.get_report(simulation.id) if simulation and simulation.status == "done"
            else None,
            runs=all_runs,
            versions=versions,
            i_wrote=who.username in info.editors,
        ),
        status,
    )


def version(name: str, number: int) -> tuple[str, int]:
    return _version_page(_ref(name, number))


def save(name: str, number: int) -> BaseResponse | tuple[str, int]:
    ref = _ref(name, number)
    text = _text_field()
    try:
        info = rules.show(ref)
        if info.status in rules.EDITABLE:
            rules.edit_draft(ref, text, viewer().username)
            return redirect(url_for("console.version", name=name, number=number, done="saved"))
        new = rules.save_draft(text, viewer().username, parent=ref)
        return redirect(url_for("console.version", name=new.name, number=new.number, done="drafted"))
    except Refused as refusal:
        return _version_page(ref, refusal=refusal, text=text, status=refusal.http_status, action="save")


def new_document() -> BaseResponse | tuple[str, int] | str:
    if request.method == "GET":
        source = request.args.get("from")
        text = NEW_TEMPLATE
        if source:
            with contextlib.suppress(Refused):
                text = rules.show(source).text
        return render_template("console/rules_new.html", text=text, refusal=None)
    text = _text_field()
    try:
        info = rules.save_draft(text, viewer().username)
    except Refused as refusal:
        return render_template("console/rules_new.html", text=text, refusal=refusal), refusal.http_status
    return redirect(url_for("console.version", name=info.name, number=info.number, done="saved"))


def _text_field() -> str:
    text = request.form.get("text", "")
    if len(text) > authoring.MAX_TEXT:
        abort(413, "the text is too long")
    # Browsers send form text with CRLF line ends; the digest covers the stored text, written with LF.
    return text.replace("\r\n", "\n")


def step(name: str, number: int, action: str) -> BaseResponse | tuple[str, int]:
    if action not in STEPS:
        abort(404)
    roles, _ = STEPS[action]
    who = viewer()
    if not who.has(*roles):
        abort(403, f"{action} needs the {' or '.join(roles)} role")
    ref = _ref(name, number)
    try:
        info = getattr(rules, action)(ref, who.username)
    except Refused as refusal:
        return _version_page(ref, refusal=refusal, status=refusal.http_status, action=action)
    done = action
    if action == "rollback":
        # The first call only records the request; the version is active once a second user confirmed it.
        done = "rolled-back" if info.status == "active" else "rollback-requested"
    return redirect(url_for("console.version", name=name, number=number, done=done))


def validate() -> Any:
    """The editor's live check: the problems of the posted text, as JSON (the same analysis as a save)."""
    payload = request.get_json(silent=True) or {}
    text = payload.get("text")
    ref = payload.get("ref") or None
    if not isinstance(text, str) or (ref is not None and not isinstance(ref, str)):
        abort(400, "send {text, ref}")
    try:
        problems = authoring.check_text(text.replace("\r\n", "\n"), ref)
    except Refused as refusal:
        problems = [{"code": refusal.code, "message": refusal.message, "severity": "error", "line": 1, "column": 1}]
    return jsonify({"problems": problems})


def tests(name: str, number: int) -> str:
    ref = _ref(name, number)
    info = _show(ref)
    try:
        run = authoring.run_version_tests(ref)
        refusal = None
    except Refused as error:
        run, refusal = None, error
    return render_template("console/rules_tests.html", info=info, run=run, refusal=refusal)


def tables(name: str, number: int) -> str:
    ref = _ref(name, number)
    info = _show(ref)
    try:
        grids = authoring.table_grids(ref)
        refusal = None
    except Refused as error:
        grids, refusal = [], error
    return render_template("console/rules_tables.html", info=info, grids=grids, refusal=refusal)


def diff(name: str) -> str:
    versions = rules.list_versions(name)
    if not versions:
        abort(404)
    numbers = [v.number for v in versions]
    try:
        a = int(request.args.get("a") or (numbers[-2] if len(numbers) > 1 else numbers[0]))
        b = int(request.args.get("b") or numbers[-1])
    except ValueError:
        abort(400, "a and b are version numbers")
    if a not in numbers or b not in numbers:
        abort(404, "no such version")
    left, right = rules.show(_ref(name, a)), rules.show(_ref(name, b))
    rows = authoring.side_by_side(left.text, right.text)
    changed = sum(r["kind"] != "same" for r in rows)
    return render_template("console/rules_diff.html", name=name, versions=versions, left=left, right=right,
                           rows=rows, changed=changed)


def _product_of(case: Any) -> str | None:
    """The case's application.product, if it has one."""
    application = case.get("application") if isinstance(case, dict) else None
    product = application.get("product") if isinstance(application, dict) else None
    return product if isinstance(product, str) else None


def try_it(name: str, number: int) -> tuple[str, int]:
    ref = _ref(name, number)
    stored = _show(ref)
    try:
        info, doc = authoring.load_version(ref)
        library = authoring.library_with(doc)
    except Refused as refusal:
        return render_template("console/rules_try.html", info=stored, refusal=refusal, fields=[],
                               values={}, targets=[], result=None, raw="", examples=[], target=None,
                               as_of=dt.date.today(), form_problems=[]), refusal.http_status
    fields = authoring.form_fields(library)
    targets = authoring.policies_using(doc, library)
    if isinstance(doc, Ruleset):
        targets = [*targets, "__alone__"]
    form = request.form if request.method == "POST" else request.args
    example = request.args.get("example")
    found = authoring.example_case(example) if example else None
    # An explicit target is kept; otherwise the example goes under the policy of its own product, as the API
    # would take it (under another product's policy it is only referred with R-PRODUCT-MISMATCH).
    target = form.get("target") or authoring.policy_for_product(
        targets, authoring.policy_products(library), _product_of(found)
    ) or "__alone__"
    if target not in targets:
        abort(400, "choose one of the listed policies")
    form_problems: list[str] = []
    typed = (form.get("as_of") or "").strip()
    try:
        as_of = dt.date.fromisoformat(typed) if typed else authoring.default_as_of(doc)
    except ValueError:  # never decide under a date the user did not give: say so, and decide nothing
        as_of = authoring.default_as_of(doc)
        form_problems.append(f"the business date '{typed[:40]}' is not a date (YYYY-MM-DD)")
    raw = form.get("raw", "") if request.method == "POST" else ""
    values: dict[str, str] = {}
    result = None
    if found is not None:
        values = authoring.flatten_case(found)
    if request.method == "POST":
        values = {key[2:]: value for key, value in request.form.items() if key.startswith("f:")}
        if raw.strip():
            try:
                case = json.loads(raw)
            except ValueError as exc:
                case = None
                form_problems.append(f"the raw JSON is not valid: {exc}")
        else:
            case, field_problems = authoring.case_from_form(fields, request.form)
            form_problems += field_problems
        if case is not None and not form_problems:
            result = authoring.try_case(ref, case, target=target, as_of=as_of)
    return (
        render_template(
            "console/rules_try.html",
            info=info,
            refusal=None,
            fields=fields,
            values=values,
            targets=targets,
            target=target,
            result=result,
            raw=raw,
            examples=authoring.examples(),
            as_of=as_of,
            form_problems=form_problems,
            is_policy=isinstance(doc, Policy),
        ),
        200,
    )


def register(bp: Blueprint) -> None:
    route(bp, "/rules")(documents)
    route(bp, "/rules/new", roles=AUTHORS, methods=("GET", "POST"), changes=True)(new_document)
    route(bp, "/rules/validate", methods=("POST",), changes=False)(validate)
    route(bp, "/rules/<name>")(document)
    route(bp, "/rules/<name>/diff")(diff)
    route(bp, "/rules/<name>/<int:number>")(version)
    route(bp, "/rules/<name>/<int:number>/save", roles=AUTHORS, methods=("POST",))(save)
    route(bp, "/rules/<name>/<int:number>/tests")(tests)
    route(bp, "/rules/<name>/<int:number>/tables")(tables)
    route(bp, "/rules/<name>/<int:number>/try", roles=ANYONE, methods=("GET", "POST"), changes=False)(try_it)
    # One URL per step, so the role matrix can name each; the roles match the service's own checks.
    for action, (roles, _) in STEPS.items():
        def make(action: str = action) -> Any:
            def view(name: str, number: int) -> BaseResponse | tuple[str, int]:
                return step(name, number, action)

            view.__name__ = f"step_{action}"
            return view

        route(bp, f"/rules/<name>/<int:number>/{action}", roles=roles, methods=("POST",))(make())


__all__ = ["register"]
