"""Roles, CSRF and injection, over every console route.

The routes are read from the app itself (every view registered through `security.route` carries its roles and
whether it changes anything), so a new route is covered the day it is added.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from pony import orm

from audit import store
from engine.library import REPO
from tests.console.conftest import PEOPLE, Console, login, token
from web.console.security import Access

SAMPLE = {
    "name": "limits-pricing",
    "number": "1",
    "table": "kpis",
    "row_number": "1",
    "code": "C00001",
}


def console_routes(console: Console) -> Iterator[tuple[str, str, Access]]:
    """(url, method, access) for every console route, with sample values in its parameters."""
    app = console.app
    values = {**SAMPLE, "run_id": str(console.run_id), "decision_id": console.decisions["refer"]}
    with orm.db_session:
        alert = store.query_one("SELECT MIN(id) FROM alert")
    values["alert_id"] = str(alert[0]) if alert and alert[0] is not None else "1"
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        access: Access | None = getattr(view, "console_access", None)
        if access is None:
            continue
        url = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: values[m.group(1)], rule.rule)
        for method in access.methods:
            yield url, method, access


def fingerprint() -> dict[str, Any]:
    """What a change would touch: rule versions, alerts, reviews, runs, decisions (governance events aside)."""
    with orm.db_session:
        return {
            table: store.query(f"SELECT * FROM {table} ORDER BY 1")
            for table in ("rule_version", "alert", "decision_review", "simulation_run", "decision_record",
                          "rules_state", "customer")
        }


def test_every_console_route_is_declared_with_roles(console: Console) -> None:
    routes = list(console_routes(console))
    assert len(routes) > 30
    unguarded = [
        rule.rule
        for rule in console.app.url_map.iter_rules()
        if rule.endpoint.startswith("console.")
        and not hasattr(console.app.view_functions[rule.endpoint], "console_access")
    ]
    # Only these go without a role: signing in and out, the static files, and "who am I".
    assert sorted(unguarded) == sorted(
        ["/console/login", "/console/logout", "/console/static/<path:filename>", "/console/whoami"]
    )


def test_role_route_matrix(console: Console) -> None:
    clients = {name: console.client(name) for name in PEOPLE}
    tokens = {name: token(client) for name, client in clients.items()}
    anonymous = console.app.test_client()
    failures = []
    for url, method, access in console_routes(console):
        for name, client in clients.items():
            allowed = bool(access.roles & set(PEOPLE[name]))
            if method == "GET":
                answer = client.get(url)
            else:
                answer = client.post(url, data={"csrf_token": tokens[name]})
            if not allowed and answer.status_code != 403:
                failures.append(f"{name} {method} {url}: {answer.status_code}, expected 403")
            if allowed and method == "GET" and answer.status_code != 200:
                failures.append(f"{name} {method} {url}: {answer.status_code}, expected 200")
        # Nobody signed in: pages send to the login page, anything else is refused.
        answer = anonymous.get(url) if method == "GET" else anonymous.post(url)
        if answer.status_code not in (302, 400, 401):
            failures.append(f"anonymous {method} {url}: {answer.status_code}")
    assert failures == []


def test_auditors_change_nothing(console: Console) -> None:
    auditor = console.client("auditor1")
    csrf = token(auditor)
    before = fingerprint()
    changing = []
    for url, method, access in console_routes(console):
        if access.changes:
            assert "auditor" not in access.roles, url
            changing.append(url)
        if method == "POST":
            auditor.post(url, data={"csrf_token": csrf, "text": "ruleset: x\n", "outcome": "approve",
                                    "reason": "audit", "format": "jsonl"})
    assert changing, "the matrix found no route that changes anything"
    assert fingerprint() == before


def _draft(console: Console, who: str, marker: str) -> str:
    """A draft of limits-pricing that passes its tests: the active text with a comment added."""
    client = console.client(who)
    page = client.get("/console/rules/limits-pricing/1").get_data(as_text=True)
    text = re.search(r'<textarea name="text"[^>]*>(.*?)</textarea>', page, re.S)
    assert text
    import html

    body = html.unescape(text.group(1)) + f"# {marker}\n"
    answer = client.post("/console/rules/limits-pricing/1/save", data={"csrf_token": token(client), "text": body})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:2000]
    match = re.search(r"/console/rules/limits-pricing/(\d+)", answer.headers["Location"])
    assert match
    return match.group(1)


def test_authors_cannot_approve_their_own_work(console: Console) -> None:
    number = _draft(console, "both1", "four eyes")
    both = console.client("both1")
    csrf = token(both)
    submitted = both.post(f"/console/rules/limits-pricing/{number}/submit", data={"csrf_token": csrf})
    assert submitted.status_code == 302, submitted.get_data(as_text=True)[:3000]
    # A plain author may not approve at all ...
    author = console.client("author1")
    assert author.post(f"/console/rules/limits-pricing/{number}/approve",
                       data={"csrf_token": token(author)}).status_code == 403
    # ... and an approver who wrote it is refused by the service, and told why.
    refused = both.post(f"/console/rules/limits-pricing/{number}/approve", data={"csrf_token": csrf})
    assert refused.status_code == 409
    page = refused.get_data(as_text=True)
    assert "four-eyes" in page and "cannot approve it" in page
    assert "submitted" in both.get(f"/console/rules/limits-pricing/{number}").get_data(as_text=True)
    # Another approver may.
    other = console.client("approver2")
    assert other.post(f"/console/rules/limits-pricing/{number}/approve",
                      data={"csrf_token": token(other)}).status_code == 302


def test_a_missing_or_foreign_csrf_token_is_rejected_everywhere(console: Console) -> None:
    admin = console.client("admin1")
    author = console.client("author1")
    foreign = token(author)  # a real token, of another session
    own = token(admin)
    before = fingerprint()
    checked = 0
    for url, method, _ in console_routes(console):
        if method != "POST":
            continue
        for client in (admin, author):
            missing = client.post(url, data={"text": "ruleset: x\n"})
            assert missing.status_code == 400, (url, missing.status_code)
        assert admin.post(url, data={"csrf_token": foreign}).status_code == 400, url
        assert admin.post(url, data={"csrf_token": own + "x"}).status_code == 400, url
        # The right token from another site's page is refused too.
        assert admin.post(url, data={"csrf_token": own}, headers={"Origin": "https://evil.example"}).status_code == 400
        checked += 1
    assert checked >= 12
    assert fingerprint() == before
    # The forms without a session: signing in and out.
    fresh = console.app.test_client()
    assert fresh.post("/console/login", data={"username": "author1", "password": "x"}).status_code == 400
    assert admin.post("/console/logout").status_code == 400
    assert admin.get("/console/whoami").status_code == 200  # still signed in


PAYLOADS = (
    "{{7*7}}",
    "{% print 'pwned' %}",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "${7*7}",
)


def _inert(html: str, payload: str) -> None:
    assert "<script>alert(1)</script>" not in html
    assert "<img src=x onerror" not in html
    # An evaluated `{% print %}` would leave "pwned" alone; shown as text, "print" is right before it.
    for found in re.finditer("pwned", html):
        assert "print" in html[max(0, found.start() - 16) : found.start()], html[found.start() - 60 : found.end()]


def _shown_as_typed(html: str, payload: str) -> None:
    from markupsafe import escape

    assert str(escape(payload)) in html


def _field_pages(console: Console, client: FlaskClient, payload: str) -> Iterator[tuple[str, str]]:
    from urllib.parse import quote

    q = quote(payload)
    run = console.run_id
    for url in (
        f"/console/audit?rule={q}&customer={q}&caller={q}&policy={q}&tier={q}",
        f"/console/audit/governance?actor={q}&action={q}&subject={q}",
        f"/console/customers?q={q}",
        f"/console/alerts?rm={q}",
        f"/console/simulations/{run}/cases?segment={q}&rule={q}&reason={q}",
        f"/console/rules/limits-pricing/1/try?target=__alone__&as_of={q}",
    ):
        answer = client.get(url)
        yield url, answer.get_data(as_text=True)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_injection_payloads_render_inert(console: Console, payload: str) -> None:
    admin = console.client("admin1")
    for url, html in _field_pages(console, admin, payload):
        _inert(html, payload)
        assert "Traceback" not in html, url
        if url.startswith(("/console/audit", "/console/customers", "/console/simulations")):
            _shown_as_typed(html, payload)  # reflected back into the form, escaped, never evaluated
    # Text an author writes: a description, a reason text and a comment, saved and shown back.
    author = console.client("author1")
    csrf = token(author)
    yaml_payload = payload.replace('"', "'")
    text = (
        "ruleset: inject-check\nkind: eligibility\n"
        f'description: "{yaml_payload}"\neffective_from: 2026-01-01\n'
        f'reasons:\n  R-INJECT: "{yaml_payload}"\n'
        "rules:\n  - id: INJECT-1\n    when: application.amount > 1\n    then:\n      decision: refer\n"
        f"      reasons: [R-INJECT]\n# {payload}\n"
    )
    saved = author.post("/console/rules/new", data={"csrf_token": csrf, "text": text})
    assert saved.status_code in (302, 422), saved.get_data(as_text=True)[:2000]
    if saved.status_code == 302:
        page = author.get(saved.headers["Location"]).get_data(as_text=True)
        _inert(page, payload)
        number = re.search(r"/(\d+)\?", saved.headers["Location"])
        assert number
        tried = author.post(
            f"/console/rules/inject-check/{number.group(1)}/try",
            data={"csrf_token": csrf, "target": "__alone__", "as_of": "2026-06-30",
                  "raw": (REPO / "examples" / "approve-energy.json").read_text()},
        ).get_data(as_text=True)
        _inert(tried, payload)
        if "{" not in payload:  # braces in a reason text are placeholders to the engine: that draft has errors
            assert "R-INJECT" in tried
    # The live check answers JSON, never HTML.
    checked = author.post("/console/rules/validate", json={"text": text, "ref": None},
                          headers={"X-CSRF-Token": csrf})
    assert checked.status_code == 200 and checked.mimetype == "application/json"
    # A reason an underwriter types.
    underwriter = console.client("underwriter1")
    decision = console.decisions["refer"]
    answer = underwriter.post(f"/console/reviews/{decision}/decide",
                              data={"csrf_token": token(underwriter), "outcome": "decline", "reason": payload,
                                    "limit": payload, "rate": "", "conditions": payload})
    _inert(answer.get_data(as_text=True), payload)
    # Raw JSON and form values in "try it".
    tried = author.post(
        "/console/rules/limits-pricing/1/try",
        data={"csrf_token": csrf, "target": "__alone__", "as_of": "2026-06-30", "raw": payload,
              "f:borrower.industry": payload},
    ).get_data(as_text=True)
    _inert(tried, payload)


def test_session_ends_when_idle(console: Console) -> None:
    client = console.client("author1")
    assert client.get("/console/").status_code == 200
    with orm.db_session:
        pass
    from audit.db import write_session

    with write_session():
        store.write_cursor().execute(
            store.adapt("UPDATE console_session SET last_seen_at = ? WHERE username = ?"),
            ("2000-01-01 00:00:00", "author1"),
        )
    assert client.get("/console/").status_code == 302


def test_logins_are_governance_events(console: Console) -> None:
    client = console.app.test_client()
    login(client, "approver2")
    with orm.db_session:
        events = store.query("SELECT actor, action FROM governance_event WHERE action = 'console-login'")
    assert ("approver2", "console-login") in [tuple(e) for e in events]
