"""Every page renders for every role that may see it, and the main flows work through the test client."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tests.console.conftest import PASSWORD, PEOPLE, Console, token


def test_login_sets_a_hardened_cookie_and_rotates_the_session(console: Console) -> None:
    client = console.app.test_client()
    first = client.get("/console/login")
    assert first.status_code == 200
    from tests.console.conftest import login

    answer = login(client, "author1")
    assert answer.status_code == 302
    cookie = next(h for h in answer.headers.getlist("Set-Cookie") if h.startswith("credo_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    old = cookie.split(";")[0].split("=", 1)[1]
    again = login(client, "author1")
    new = next(h for h in again.headers.getlist("Set-Cookie") if h.startswith("credo_console="))
    assert new.split(";")[0].split("=", 1)[1] != old
    # The old session no longer works.
    stale = console.app.test_client()
    stale.set_cookie("credo_console", old)
    assert stale.get("/console/").status_code == 302


def test_wrong_password_is_refused(console: Console) -> None:
    from tests.console.conftest import login

    client = console.app.test_client()
    answer = login(client, "author1", "nope")
    assert answer.status_code == 401
    assert client.get("/console/").status_code == 302


def test_every_page_renders(console: Console) -> None:
    pages = [
        "/console/",
        "/console/rules",
        "/console/rules?kind=policy",
        "/console/rules/limits-pricing",
        "/console/rules/limits-pricing/1",
        "/console/rules/limits-pricing/1/tests",
        "/console/rules/limits-pricing/1/tables",
        "/console/rules/project-finance/1/tests",
        "/console/rules/limits-pricing/1/try?example=approve-energy",
        "/console/rules/project-finance/1/try",
        "/console/rules/limits-pricing/diff?a=1&b=1",
        "/console/simulations",
        "/console/simulations/new?candidate=limits-pricing@1",
        f"/console/simulations/{console.run_id}",
        f"/console/simulations/{console.run_id}/cases",
        f"/console/simulations/{console.run_id}/cases?b_outcome=refer&c_outcome=refer",
        f"/console/simulations/{console.run_id}/cases?rule=TIER-GRID/1&rule_side=candidate",
        f"/console/simulations/{console.run_id}/cases?b_tier=none&c_tier=none",
        f"/console/simulations/{console.run_id}/cases/1",
        f"/console/simulations/{console.run_id}/cases?score_side=candidate&score_min=600&score_max=640",
        f"/console/simulations/{console.run_id}/progress",
        "/console/alerts",
        "/console/customers",
        "/console/customers/C00001",
    ]
    admin = console.client("admin1")
    for page in pages:
        answer = admin.get(page)
        assert answer.status_code == 200, (page, answer.status_code, answer.get_data(as_text=True)[:2000])
    for table in ("kpis", "swap_set", "tier_migration", "rule_fires", "reason_mix", "score_histogram", "cutoff"):
        answer = admin.get(f"/console/simulations/{console.run_id}/export/{table}.csv")
        assert answer.status_code == 200 and answer.mimetype == "text/csv", table
        assert len(answer.get_data(as_text=True).splitlines()) > 1, table
    auditor = console.client("auditor1")
    decision = console.decisions["refer"]
    for page in ["/console/audit", "/console/audit?outcome=refer&rule=PF-DSCR-THIN&uses=limits-pricing@1",
                 "/console/audit/chain",
                 "/console/audit/governance", f"/console/audit/decisions/{decision}", "/console/reviews",
                 f"/console/reviews/{decision}"]:
        answer = auditor.get(page)
        assert answer.status_code == 200, (page, answer.status_code, answer.get_data(as_text=True)[:2000])


def test_everyone_can_sign_in(console: Console) -> None:
    for name in PEOPLE:
        client = console.client(name)
        assert client.get("/console/whoami").get_json()["username"] == name
        assert token(client)


def test_an_underwriter_decides_a_referred_case(console: Console) -> None:
    decision = console.decisions["refer"]
    underwriter = console.client("underwriter1")
    page = underwriter.get(f"/console/reviews/{decision}").get_data(as_text=True)
    assert "Automated decision" in page and "R-PF-DSCR-THIN" in page
    queue = underwriter.get("/console/reviews").get_data(as_text=True)
    assert decision in queue
    # The form starts from the rules' conditions; the underwriter adds one (dropping one would need four eyes).
    import re
    from html import unescape

    prefilled = unescape(re.search(r'<textarea name="conditions"[^>]*>(.*?)</textarea>', page, re.S).group(1))
    assert prefilled.strip(), "the rules' conditions are in the form"
    answer = underwriter.post(
        f"/console/reviews/{decision}/decide",
        data={"csrf_token": token(underwriter), "outcome": "approve", "reason": "strong sponsor support",
              "limit": "150000000", "rate": "5.5", "conditions": prefilled + "\nSponsor guarantee"},
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200, html[:3000]
    assert "The override is effective" in html
    assert "strong sponsor support" in html  # the override history
    assert "5.50%" in html  # "5.5" is a percentage
    assert decision not in underwriter.get("/console/reviews").get_data(as_text=True)
    again = underwriter.post(f"/console/reviews/{decision}/decide",
                             data={"csrf_token": token(underwriter), "outcome": "decline", "reason": "second try"})
    assert again.status_code == 409 and "already reviewed" in again.get_data(as_text=True)


def test_overriding_a_decline_needs_a_second_underwriter(console: Console) -> None:
    decision = console.decisions["decline"]
    first, second = console.client("underwriter1"), console.client("underwriter2")
    terms = {"outcome": "approve", "reason": "arrears cured", "limit": "10000000", "rate": "6", "conditions": ""}
    asked = first.post(f"/console/reviews/{decision}/decide", data={"csrf_token": token(first), **terms})
    assert asked.status_code == 200 and "second underwriter must confirm" in asked.get_data(as_text=True)
    same = first.post(f"/console/reviews/{decision}/decide", data={"csrf_token": token(first), **terms})
    assert same.status_code == 409 and "different underwriter must confirm" in same.get_data(as_text=True)
    confirmed = second.post(f"/console/reviews/{decision}/decide", data={"csrf_token": token(second), **terms})
    html = confirmed.get_data(as_text=True)
    assert confirmed.status_code == 200 and "confirmed by underwriter2" in html, html[:3000]


def test_alerts_move_from_open_to_resolved(console: Console) -> None:
    import re

    admin = console.client("admin1")
    board = admin.get("/console/alerts").get_data(as_text=True)
    ids = re.findall(r"/console/alerts/(\d+)/acknowledge", board)
    assert ids, "the seeded customers raised no alert"
    alert = ids[0]
    csrf = token(admin)
    assert admin.post(f"/console/alerts/{alert}/acknowledge", data={"csrf_token": csrf}).status_code == 302
    board = admin.get("/console/alerts").get_data(as_text=True)
    assert f"/console/alerts/{alert}/acknowledge" not in board and f"/console/alerts/{alert}/resolve" in board
    assert admin.post(f"/console/alerts/{alert}/resolve", data={"csrf_token": csrf}).status_code == 302
    refused = admin.post(f"/console/alerts/{alert}/resolve", data={"csrf_token": csrf})
    assert refused.status_code == 409 and "resolved" in refused.get_data(as_text=True)
    # An author who is not the RM may not move someone else's alert: the service says so, the page explains.
    author = console.client("author1")
    other = ids[1] if len(ids) > 1 else None
    if other:
        answer = author.post(f"/console/alerts/{other}/acknowledge", data={"csrf_token": token(author)})
        assert answer.status_code == 403 and "assigned to" in answer.get_data(as_text=True)


def test_the_editor_check_matches_the_save(console: Console) -> None:
    author = console.client("author1")
    csrf = token(author)
    from engine.library import REPO

    text = (REPO / "rulesets" / "limits-pricing.yaml").read_text().replace(
        "application.tenor_months > 120", "application.tenor_month > 120"
    )
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "application.tenor_month > 120" in t)
    live = author.post("/console/rules/validate", json={"text": text, "ref": "limits-pricing@1"},
                       headers={"X-CSRF-Token": csrf}).get_json()["problems"]
    assert [(p["code"], p["line"]) for p in live if p["severity"] == "error"] == [("unknown-field", line)]
    saved = author.post("/console/rules/limits-pricing/1/save", data={"csrf_token": csrf, "text": text})
    assert saved.status_code == 302
    page = author.get(saved.headers["Location"]).get_data(as_text=True)
    assert f'data-line="{line}">line {line}, column 11: <code>unknown-field</code>' in page
    # Submitting it is refused, and the refusal lists the same problem.
    number = saved.headers["Location"].split("/")[-1].split("?")[0]
    refused = author.post(f"/console/rules/limits-pricing/{number}/submit", data={"csrf_token": csrf})
    assert refused.status_code == 422
    assert f"line {line}, column 11" in refused.get_data(as_text=True)
    # The side-by-side diff shows the one changed line.
    diff = author.get(f"/console/rules/limits-pricing/diff?a=1&b={number}").get_data(as_text=True)
    assert "1 line(s) differ" in diff


def test_try_it_decides_with_the_full_trace(console: Console) -> None:
    from engine.library import REPO

    author = console.client("author1")
    raw = (REPO / "examples" / "approve-energy.json").read_text()
    html = author.post(
        "/console/rules/limits-pricing/1/try",
        data={"csrf_token": token(author), "target": "project-finance", "as_of": "2026-06-30", "raw": raw},
    ).get_data(as_text=True)
    assert 'id="try-result"' in html and "oc-approve" in html
    assert "TIER-GRID/1" in html and "financials.dscr = " in html  # the trace, with the values
    # The generated form, prefilled from an example, decides the same.
    form_page = author.get("/console/rules/limits-pricing/1/try?example=approve-energy").get_data(as_text=True)
    assert 'name="f:financials.ebitda" value="130000000"' in form_page
    # A date that is not one is said, and nothing is decided under some other date.
    undated = author.post(
        "/console/rules/limits-pricing/1/try",
        data={"csrf_token": token(author), "target": "project-finance", "as_of": "2026-13-45", "raw": raw},
    ).get_data(as_text=True)
    assert 'id="try-result"' not in undated and "&#39;2026-13-45&#39; is not a date" in undated


def test_a_search_filter_that_cannot_be_read_keeps_the_form(console: Console) -> None:
    auditor = console.client("auditor1")
    answer = auditor.get("/console/audit?uses=limits-pricing&caller=someone")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400 and 'id="search-problems"' in page
    assert 'name="caller" value="someone"' in page and 'name="uses" value="limits-pricing"' in page


def test_a_run_whose_worker_died_is_queued_again_and_finishes(console: Console, tmp_path: object) -> None:
    from pathlib import Path

    from audit import store
    from audit.db import write_session
    from engine.library import REPO
    from web.services import simulations

    book = Path(str(tmp_path)) / "tiny.csv"
    book.write_text("\n".join((REPO / "examples" / "portfolio.csv").read_text().splitlines()[:21]) + "\n")
    run_id = simulations.enqueue("approver1", policy="corporate-term-loan", as_of=simulations.dt.date(2026, 6, 30),
                                 candidate=["limits-pricing@1"], portfolio=book, portfolio_name="tiny")
    assert simulations.claim("worker-that-dies") == run_id
    assert simulations.get_run(run_id).status == "running"
    with write_session():  # its heartbeat stops
        store.write_cursor().execute(
            store.adapt("UPDATE simulation_run SET heartbeat_at = ? WHERE id = ?"), ("2000-01-01 00:00:00", run_id)
        )
    assert simulations.requeue_stale() == [run_id]
    assert simulations.get_run(run_id).status == "queued"
    # The page of a queued run says so (and would start a worker, were the console's worker not off here).
    page = console.client("approver1").get(f"/console/simulations/{run_id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' in page and "queued" in page
    assert simulations.work(idle_exit=0, once=True) >= 1
    finished = simulations.get_run(run_id)
    assert finished.status == "done" and finished.attempts == 2 and finished.progress == 1.0
    assert simulations.count_cases(run_id, simulations.CaseFilter()) == 20


def test_a_run_that_fails_unexpectedly_shows_an_incident_not_the_data(
    console: Console, tmp_path: object, monkeypatch: object, caplog: object
) -> None:
    import logging
    from pathlib import Path

    import pytest

    from engine.library import REPO
    from web.services import simulations

    assert isinstance(monkeypatch, pytest.MonkeyPatch) and isinstance(caplog, pytest.LogCaptureFixture)
    book = Path(str(tmp_path)) / "leaky.csv"
    book.write_text("\n".join((REPO / "examples" / "portfolio.csv").read_text().splitlines()[:6]) + "\n")
    run_id = simulations.enqueue("approver1", policy="corporate-term-loan", as_of=simulations.dt.date(2026, 6, 30),
                                 candidate=["limits-pricing@1"], portfolio=book, portfolio_name="leaky")

    def broken(*args: object, **kwargs: object) -> object:
        raise ValueError("could not read revenue of borrower ACME Holdings")

    monkeypatch.setattr(simulations, "_input_rows", broken)
    with caplog.at_level(logging.DEBUG, logger="credo"):
        assert simulations.work(idle_exit=0, once=True) >= 1
    run = simulations.get_run(run_id)
    assert run.status == "failed" and run.error is not None
    assert "ACME" not in run.error and "ValueError, incident " in run.error
    incident = run.error.rsplit("incident ", 1)[1].rstrip(")")
    assert any(incident in r.getMessage() and r.exc_info is None for r in caplog.records)
    assert "ACME" not in caplog.text and "Traceback" not in caplog.text
    page = console.client("approver1").get(f"/console/simulations/{run_id}").get_data(as_text=True)
    assert incident in page and "ACME" not in page


def test_every_report_table_drills_down_to_its_cases(console: Console) -> None:
    import re
    from html import unescape

    client = console.client("approver1")
    page = client.get(f"/console/simulations/{console.run_id}").get_data(as_text=True)
    links = {unescape(h) for h in re.findall(r'href="(/console/simulations/\d+/cases\?[^"]+)"', page)}
    kinds = {k for link in links for k in ("c_outcome=", "b_tier=", "rule=", "reason=", "score_side=") if k in link}
    assert kinds == {"c_outcome=", "b_tier=", "rule=", "reason=", "score_side="}
    from web.services import simulations

    total = simulations.count_cases(console.run_id, simulations.CaseFilter())
    swap = [link for link in links if "b_outcome=" in link and "c_outcome=" in link]
    counted = 0
    for link in swap:
        answer = client.get(link).get_data(as_text=True)
        found = re.search(r"<h1>(\d+) case", answer)
        assert found, link
        counted += int(found.group(1))
    assert counted == total  # the swap-set cells partition the book


def upload_a_run(client: FlaskClient, data: bytes, filename: str) -> int:
    """Queue a corporate-term-loan simulation of an uploaded book through the form; the new run's id."""
    import io

    answer = client.post(
        "/console/simulations/new",
        data={
            "csrf_token": token(client),
            "policy": "corporate-term-loan",
            "as_of": "2026-06-30",
            "candidate": "limits-pricing@1",
            "portfolio": "upload",
            "file": (io.BytesIO(data), filename),
        },
        content_type="multipart/form-data",
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)[:3000]
    return int(answer.headers["Location"].rsplit("/", 1)[-1])


def test_a_simulation_of_an_uploaded_portfolio(console: Console) -> None:

    from engine.library import REPO
    from web.services import simulations

    rows = (REPO / "examples" / "portfolio.csv").read_text().splitlines()[:31]
    client = console.client("author1")
    run_id = upload_a_run(client, ("\n".join(rows) + "\n").encode(), "my book.csv")
    assert simulations.get_run(run_id).status == "queued"
    simulations.work(idle_exit=0, once=True)
    run = simulations.get_run(run_id)
    assert run.status == "done" and run.portfolio_name == "upload: my book.csv"
    page = client.get(f"/console/simulations/{run_id}").get_data(as_text=True)
    assert "30 cases decided" in page
    # A side that does not compile is refused at once, with its problems.
    refused = client.post(
        "/console/simulations/new",
        data={"csrf_token": token(client), "policy": "no-such-policy", "as_of": "2026-06-30",
              "candidate": "limits-pricing@1", "portfolio": "demo"},
    )
    assert refused.status_code == 422 and "unknown-policy" in refused.get_data(as_text=True)


def test_the_decision_search_filters(console: Console) -> None:
    auditor = console.client("auditor1")

    def count(query: str) -> int:
        import re

        page = auditor.get("/console/audit?" + query).get_data(as_text=True)
        found = re.search(r"(\d+) matching decision", page)
        assert found, page[:2000]
        return int(found.group(1))

    assert count("outcome=refer") >= 1
    assert count("rule=PF-DSCR-THIN&outcome=refer") >= 1
    assert count("rule=NO-SUCH-RULE") == 0
    assert count("uses=limits-pricing@1&policy=project-finance&policy_version=1") >= 3
    assert count("uses=limits-pricing@99") == 0
    assert count("caller=client-demo") >= 3 and count("caller=someone-else") == 0
    assert count("caller=api_key") >= 3 and count("caller=api_key:+client-demo/credo_abc") >= 3  # as listed
    assert count("customer=app-refer") >= 1 and count("customer=app-nothing") == 0
    assert count("tier=A&outcome=approve") >= 1
    assert count("from=2000-01-01&to=2000-01-02") == 0
    assert auditor.get("/console/audit?from=not-a-date").status_code == 400
    exported = auditor.post("/console/audit/export?outcome=refer",
                            data={"csrf_token": token(auditor), "format": "csv"})
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    lines = exported.get_data(as_text=True).splitlines()
    assert lines[0].startswith("seq,decision_id") and all(",refer," in line for line in lines[1:])


def test_a_failed_simulation_of_an_upload_names_the_upload_not_a_server_path(console: Console) -> None:

    from web.services import simulations

    client = console.client("author1")
    run_id = upload_a_run(client, b"\xff\xfeapplication.amount\n1\n", "latin book.csv")
    simulations.work(idle_exit=0, once=True)
    run = simulations.get_run(run_id)
    assert run.status == "failed" and run.error is not None and "not-utf8" in run.error
    page = client.get(f"/console/simulations/{run_id}").get_data(as_text=True)
    assert "upload: latin book.csv" in page and "not-utf8" in page
    uploads = str(console.app.config["CONSOLE_UPLOADS"])
    assert uploads not in page and run.portfolio_path not in page and "uploads/" not in page


def test_unknown_versions_and_paths_get_the_console_error_page(console: Console) -> None:
    import re

    author = console.client("author1")
    for page in ("/console/rules/limits-pricing/99/tests", "/console/rules/limits-pricing/99/tables",
                 "/console/rules/limits-pricing/99/try", "/console/rules/limits-pricing/99",
                 "/console/no-such-page", "/console/rules/limits-pricing/1/no-such-tab"):
        answer = author.get(page)
        html = answer.get_data(as_text=True)
        assert answer.status_code == 404 and answer.mimetype == "text/html", (page, html[:500])
        assert "<h1>Not found</h1>" in html and 'href="/console/"' in html, page
        title = re.search(r"<title>(.*?)</title>", html, re.S)
        assert title and title.group(1).startswith("Not found: "), (page, title)
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'self'"), page
    assert "no version limits-pricing@99" in author.get("/console/rules/limits-pricing/99/try").get_data(as_text=True)
    assert "/console/no-such-page" in author.get("/console/no-such-page").get_data(as_text=True)
    # Posting a try of an unknown version is the same page; the API keeps its own JSON answers.
    posted = author.post("/console/rules/limits-pricing/99/try", data={"csrf_token": token(author)})
    assert posted.status_code == 404 and posted.mimetype == "text/html"
    api = console.app.test_client().get("/api/v1/no-such-endpoint")
    assert api.status_code == 404 and api.get_json()["error"]["code"] == "not-found"


def test_an_override_record_is_not_replayed_and_links_the_decision_it_overrides(console: Console) -> None:
    import json

    from engine.library import REPO
    from tests.console.conftest import AS_OF
    from web.services import audit_search, decisions

    case = json.loads((REPO / "examples" / "refer-thin-coverage.json").read_text())
    original = decisions.decide_and_record("project-finance", case, caller=decisions.Caller("api_key", "client-demo"),
                                           as_of=AS_OF, application_id="app-overridden")["decision_id"]
    underwriter = console.client("underwriter1")
    decided = underwriter.post(f"/console/reviews/{original}/decide",
                               data={"csrf_token": token(underwriter), "outcome": "decline", "reason": "weak sponsor"})
    assert decided.status_code == 200 and "The override is effective" in decided.get_data(as_text=True)
    override = next(h["decision_id"] for h in audit_search.override_history(original) if h["kind"] == "override")
    auditor = console.client("auditor1")
    page = auditor.get(f"/console/audit/decisions/{override}").get_data(as_text=True)
    assert 'id="replay"' not in page
    assert "underwriter's override" in page and f'href="/console/audit/decisions/{original}"' in page
    # The automated decision keeps its Replay button.
    assert 'id="replay"' in auditor.get(f"/console/audit/decisions/{original}").get_data(as_text=True)
    # A replay posted anyway is refused in words, with the way to the decision that can be replayed.
    posted = auditor.post(f"/console/audit/decisions/{override}", data={"csrf_token": token(auditor)})
    html = posted.get_data(as_text=True)
    assert posted.status_code == 409, html[:2000]
    assert "overrides are not replayed" in html.lower() and f'href="/console/audit/decisions/{original}"' in html
    assert "is required" not in html and "not a declared fact" not in html


def test_simulate_and_try_it_default_to_the_policy_of_the_data(console: Console) -> None:
    author = console.client("author1")
    # limits-pricing is shared by both policies; the demo book is mostly project loans (project-finance), so a
    # bare "Simulate" link starts there, not at the first policy by name (corporate-term-loan).
    for url in ("/console/simulations/new?candidate=limits-pricing@1&subject=limits-pricing@1",
                "/console/simulations/new"):
        html = author.get(url).get_data(as_text=True)
        assert "<option selected>project-finance</option>" in html, url
    # An explicit choice is kept.
    html = author.get("/console/simulations/new?candidate=limits-pricing@1&policy=corporate-term-loan").get_data(
        as_text=True)
    assert "<option selected>corporate-term-loan</option>" in html
    # "Try it" puts an example under the policy of its own product, unless a target was chosen.
    for example, policy in (("approve-energy", "project-finance"), ("corporate-approve", "corporate-term-loan")):
        html = author.get(f"/console/rules/limits-pricing/1/try?example={example}").get_data(as_text=True)
        assert f'<option value="{policy}" selected>' in html, example
    html = author.get("/console/rules/limits-pricing/1/try?example=approve-energy&target=corporate-term-loan")
    assert '<option value="corporate-term-loan" selected>' in html.get_data(as_text=True)


def test_the_new_simulation_form_keeps_every_choice_on_a_refusal(console: Console) -> None:
    author = console.client("author1")
    refused = author.post(
        "/console/simulations/new",
        data={"csrf_token": token(author), "policy": "corporate-term-loan", "as_of": "not a date",
              "baseline": "corporate-tiering@1", "candidate": "limits-pricing@1", "portfolio": "upload"},
    )
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "YYYY-MM-DD" in html
    assert '<option value="corporate-tiering@1" selected>' in html
    assert '<option value="limits-pricing@1" selected>' in html
    assert "<option selected>corporate-term-loan</option>" in html
    assert 'value="upload" checked' in html and 'value="demo" checked' not in html
    assert 'id="choose-file-again"' in html  # a browser cannot keep the file: the page says to choose it again
    # The demo book stays the default of a fresh form, with no such note.
    fresh = author.get("/console/simulations/new").get_data(as_text=True)
    assert 'value="demo" checked' in fresh and 'id="choose-file-again"' not in fresh


def test_a_rollback_says_whether_it_was_asked_for_or_confirmed(console: Console) -> None:
    from web.services import rules

    # Publish a second early-warning (which nothing else here uses) so that @1 is retired and can come back.
    text = rules.show("early-warning@1").text.replace("Early-warning triggers", "Early-warning triggers (revised)")
    draft = rules.save_draft(text, "author1", parent="early-warning@1")
    rules.submit(draft.ref, "author1")
    rules.approve(draft.ref, "approver1")
    rules.publish(draft.ref, "approver1")
    page = "/console/rules/early-warning/1"

    author = console.client("author1")
    asked = author.post(f"{page}/rollback", data={"csrf_token": token(author)})
    assert asked.status_code == 302
    html = author.get(asked.headers["Location"]).get_data(as_text=True)
    assert "takes effect when a second" in html
    # Whoever asked cannot confirm (four eyes): no button that is always refused, but what happens next.
    assert 'id="step-rollback"' not in html and 'id="rollback-awaiting"' in html

    approver = console.client("approver1")
    assert "Confirm the rollback" in approver.get(page).get_data(as_text=True)
    confirmed = approver.post(f"{page}/rollback", data={"csrf_token": token(approver)})
    assert confirmed.status_code == 302
    html = approver.get(confirmed.headers["Location"]).get_data(as_text=True)
    assert "Rollback confirmed" in html and "takes effect when" not in html
    assert rules.show("early-warning@1").status == "active"


def test_the_customer_page_writes_the_tenor_in_months(console: Console) -> None:
    html = console.client("author1").get("/console/customers/C00001").get_data(as_text=True)
    assert re.search(r"<td>\d+ months</td>", html) and not re.search(r"<td>\d+ m</td>", html)


def test_alert_buttons_show_only_to_who_may_move_the_alert(console: Console) -> None:
    from web.services.users import create_user

    board = console.client("admin1").get("/console/alerts").get_data(as_text=True)
    assert "/acknowledge" in board  # an admin may move any alert
    assert "/acknowledge" in console.client("underwriter1").get("/console/alerts").get_data(as_text=True)
    for person in ("author1", "approver1"):  # neither the RM of these alerts, nor an underwriter or an admin
        html = console.client(person).get("/console/alerts").get_data(as_text=True)
        assert "/acknowledge" not in html and "/resolve" not in html, person
    # The RM an alert is assigned to sees the buttons on their own alerts only.
    rm = sorted(set(re.findall(r"· RM (\w+) ·", board)))[0]
    create_user(rm, ["author"], PASSWORD)
    html = console.client(rm).get("/console/alerts").get_data(as_text=True)
    mine = re.findall(r'<article class="alert[^"]*">(.*?)</article>', html, re.S)
    assert not [a for a in mine if f"RM {rm} ·" not in a and ("/acknowledge" in a or "/resolve" in a)]
    assert any(f"RM {rm} ·" in a and "/acknowledge" in a for a in mine)


def test_a_page_past_the_end_is_the_last_page(console: Console) -> None:
    page = console.client("underwriter1").get("/console/customers?page=99999").get_data(as_text=True)
    assert "/console/customers/C" in page and "99999" not in page  # the last page, with its rows


def test_a_simulation_asked_for_twice_while_it_waits_is_one_run(console: Console, tmp_path: object) -> None:
    from pathlib import Path

    from engine.library import REPO
    from web.services import simulations

    book = Path(str(tmp_path)) / "twice.csv"
    book.write_text("\n".join((REPO / "examples" / "portfolio.csv").read_text().splitlines()[:6]) + "\n")
    ask = {"policy": "project-finance", "as_of": simulations.dt.date(2026, 6, 30), "candidate": ["limits-pricing@1"],
           "portfolio": book, "portfolio_name": "twice"}
    first = simulations.enqueue("author1", **ask)
    assert simulations.enqueue("author1", **ask) == first  # a double click
    assert simulations.enqueue("approver1", **ask) != first  # someone else's request is their own
    assert simulations.work(idle_exit=0, once=True) >= 1
    while simulations.work(idle_exit=0, once=True):  # the other person's run too
        pass
    assert simulations.get_run(first).status == "done"
    assert simulations.enqueue("author1", **ask) != first  # once it has run, asking again runs again

