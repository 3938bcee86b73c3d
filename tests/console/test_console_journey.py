"""The main journey, in a real browser (Debian's Chromium, driven by Playwright) against a real server:

1. an author opens a ruleset, types a misspelt field and sees the inline error at the right line;
2. fixes it, runs a simulation (in the background worker process) and submits;
3. an approver sees the simulation on the approval screen, approves and publishes;
4. a decision through the API then uses the new version;
5. an auditor finds that decision, replays it (identical) and exports it.

The server runs with the production cookie settings (Secure, HttpOnly, SameSite=Strict; Chromium accepts Secure
cookies from http://127.0.0.1) and starts its own simulation worker, as `credo serve` does. Screenshots of each
step go to test-artifacts/console-journey/. Chromium comes from apt (.ci/run installs it); no browser is ever
downloaded. Without it the test is skipped here and fails under CI=true.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

import web.models  # noqa: F401 - the entities must be declared before any bind
from audit.db import bind_database, unbind, upgrade
from engine.library import DEFAULT_RULES, REPO
from tests.console.conftest import PASSWORD
from web.demo import DEMO_ACCOUNTS, seed_portfolio
from web.services.rules import import_documents
from web.services.users import create_user

CHROMIUM = Path(os.environ.get("CREDO_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "test-artifacts" / "console-journey"
AS_OF = "2026-06-30"
RULES_FILE = REPO / "rulesets" / "limits-pricing.yaml"
ORIGINAL = "application.tenor_months > 120"
MISSPELT = "application.tenor_month > 120"
FIXED = "application.tenor_months >= 120"


@dataclass
class Server:
    base: str
    url: str


def _playwright() -> object:
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the browser journey", pytrace=False)
        pytest.skip(reason)
    return pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from web.app import create_app
    from web.services import simulations

    path = tmp_path_factory.mktemp("journey") / "credo.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    bind_database(url)
    try:
        import_documents(list(DEFAULT_RULES))
        for username, role in DEMO_ACCOUNTS:
            create_user(username, [role], PASSWORD)
        seed_portfolio(10)
        app = create_app({"DATABASE_URL": url, "CONSOLE_WORKER": "auto"})
        http = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=http.serve_forever, name="console-server", daemon=True)
        thread.start()
        try:
            yield Server(f"http://127.0.0.1:{http.server_port}", url)
        finally:
            http.shutdown()
            thread.join(10)
            simulations.stop_spawned()
    finally:
        unbind()


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


BROWSER_ERRORS: list[str] = []


def test_the_main_journey(server: Server) -> None:
    sync_api = _playwright()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    BROWSER_ERRORS.clear()
    misspelt_line = _line_of(RULES_FILE.read_text(), ORIGINAL)
    with sync_api.sync_playwright() as play:  # type: ignore[attr-defined]
        browser = play.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            _journey(browser, server, misspelt_line)
        finally:
            browser.close()
    # Nothing the browser complained of on any page: a script error, a refused resource, a missing favicon.
    assert BROWSER_ERRORS == [], BROWSER_ERRORS


def _sign_in(browser: object, server: Server, username: str, path: str) -> object:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)  # type: ignore[attr-defined]
    # Generous: a busy CI machine can take seconds per page; a real failure still fails, only later.
    context.set_default_timeout(90_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "Publish? ..." asks first
    page.on("console", lambda m: m.type == "error" and BROWSER_ERRORS.append(f"{page.url}: {m.text}"))
    page.on("pageerror", lambda e: BROWSER_ERRORS.append(f"{page.url}: {e}"))
    page.goto(server.base + path)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/console/login'] button[type=submit]")
    page.wait_for_load_state()
    cookie = next(c for c in context.cookies() if "credo_console" in c["name"])
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    return page


def _journey(browser: object, server: Server, misspelt_line: int) -> None:
    # 1. The author opens the ruleset and types a misspelt field: the error shows at its line, as typed.
    page = _sign_in(browser, server, "author1", "/console/rules/limits-pricing/1")
    assert page.url.endswith("/console/rules/limits-pricing/1")
    editor = page.locator("textarea#text")
    editor.click()
    text = editor.input_value()
    start = text.index(ORIGINAL) + len("application.tenor_month")
    # Delete the "s" of tenor_months by keyboard, as a person would.
    page.evaluate(f"() => {{ const t = document.querySelector('textarea#text'); t.focus(); "
                  f"t.setSelectionRange({start + 1}, {start + 1}); }}")
    page.keyboard.press("Backspace")
    assert MISSPELT in editor.input_value()
    marker = page.locator(f".editor .gutter .ln.err[data-line='{misspelt_line}']")
    marker.wait_for(timeout=15_000)
    lens = page.locator(f".editor .hl .lens[data-line='{misspelt_line}']")
    assert "unknown field 'application.tenor_month'" in lens.text_content()
    assert "did you mean 'application.tenor_months'" in lens.text_content()
    live = page.locator("#live-problems li.error").first
    assert f"line {misspelt_line}, column" in live.text_content()
    live.click()  # jumps to the line
    page.screenshot(path=str(ARTIFACTS / "1-inline-error.png"))

    # 2. Fix it, save (a new draft), simulate it against the active rules on the demo book, submit.
    editor.fill(editor.input_value().replace(MISSPELT, FIXED))
    page.locator("#live-problems li.none").wait_for(timeout=15_000)
    page.click("#save")
    page.wait_for_url("**/console/rules/limits-pricing/2?done=drafted")
    assert page.locator(".badge.st-draft").first.is_visible()
    page.click("#simulate-link")
    page.select_option("select[name=policy]", "project-finance")
    page.click("#sim-start")
    page.wait_for_selector("#run-summary", timeout=180_000)  # the page refreshes itself while the worker runs
    simulation_url = page.url
    assert "2000 cases decided" in page.locator("#run-summary").text_content()
    assert page.locator("#swap a[data-cell='approve-approve']").is_visible()
    page.screenshot(path=str(ARTIFACTS / "2a-simulation.png"), full_page=True)
    page.click("#swap a[data-cell='refer-refer']")  # every cell drills down to its cases
    page.wait_for_selector("#cases")
    assert "b outcome = refer; c outcome = refer" in page.locator("h1").text_content()
    page.goto(server.base + "/console/rules/limits-pricing/2")
    page.click("#step-submit")
    page.wait_for_url("**/console/rules/limits-pricing/2?done=submit")
    assert page.locator(".badge.st-submitted").first.is_visible()
    page.screenshot(path=str(ARTIFACTS / "2b-submitted.png"))
    # The author cannot approve: the page says so instead of offering the button.
    assert page.locator("#step-approve").count() == 0
    page.context.close()

    # 3. A second user sees the simulation on the approval screen, approves and publishes.
    page = _sign_in(browser, server, "approver1", "/console/rules/limits-pricing/2")
    impact = page.locator("#impact")
    assert impact.locator("#impact-table").is_visible()
    assert simulation_url.rsplit("/", 1)[-1] in impact.locator("a").first.get_attribute("href")
    page.screenshot(path=str(ARTIFACTS / "3a-approval-screen.png"), full_page=True)
    page.click("#step-approve")
    page.wait_for_url("**/console/rules/limits-pricing/2?done=approve")
    page.click("#step-publish")
    page.wait_for_url("**/console/rules/limits-pricing/2?done=publish")
    assert page.locator(".badge.st-active").first.is_visible()
    page.screenshot(path=str(ARTIFACTS / "3b-published.png"))
    page.context.close()

    # 4. A decision through the API uses the new version.
    from web.api.auth import create_key

    key = create_key("journey-client", ["decide", "read"])
    case = json.loads((REPO / "examples" / "approve-energy.json").read_text())
    case["application"]["tenor_months"] = 120  # exactly the tenor the new version prices differently
    answer = requests.post(
        server.base + "/api/v1/decisions",
        json={"policy": "project-finance", "case": case, "as_of": AS_OF, "application_id": "journey-1"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    decision = answer.json()
    used = {r["name"]: r["version"] for r in decision["rulesets"]}
    assert used["limits-pricing"] == 2
    assert "PRC-LONG-TENOR" in [f["rule"] for f in decision["fired"]]
    decision_id = decision["decision_id"]

    # 5. An auditor finds it, replays it and exports it.
    page = _sign_in(browser, server, "auditor1", "/console/audit")
    page.fill("input[name=rule]", "PRC-LONG-TENOR")
    page.fill("input[name=customer]", "journey-1")
    page.fill("input[name=uses]", "limits-pricing@2")
    page.fill("input[name=from]", dt.date.today().isoformat())
    page.click("#search")
    page.wait_for_selector("#decisions")
    link = page.locator(f"#decisions a:has-text('{decision_id}')")
    assert link.count() == 1
    page.screenshot(path=str(ARTIFACTS / "5a-audit-search.png"))
    link.click()
    page.wait_for_url(f"**/console/audit/decisions/{decision_id}")
    assert "limits-pricing@2" in page.locator("ul.versions").first.text_content()
    page.click("#replay")
    page.wait_for_selector("#replay-result")
    assert "Identical" in page.locator("#replay-result").text_content()
    page.screenshot(path=str(ARTIFACTS / "5b-replay.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#export-jsonl")
    target = ARTIFACTS / "5c-export.jsonl"
    download.value.save_as(str(target))
    lines = [json.loads(line) for line in target.read_text().splitlines() if line.strip()]
    assert [d["decision_id"] for d in lines] == [decision_id]
    # Auditors change nothing: no lifecycle button for them.
    page.goto(server.base + "/console/rules/limits-pricing/2")
    assert page.locator("form[action*='/retire'] button, #step-approve, #step-publish, #save").count() == 0
    page.screenshot(path=str(ARTIFACTS / "5d-auditor-reads-only.png"))
    page.context.close()
