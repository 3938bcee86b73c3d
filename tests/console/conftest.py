"""A console over a real database: the baseline rules, one account per role (with passwords), a few customers,
recorded decisions (one of them referred) and an alert, all made once per test module.

The Flask test client drives most tests (roles, CSRF, injection); the journey (test_console_journey.py) runs a
real server and Debian's Chromium. Cookies are not Secure here, because the test client speaks plain http to a
made-up host; the journey runs with the production setting (Secure cookies over http://127.0.0.1).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

import web.models  # noqa: F401 - the entities must be declared before any bind
from audit.db import bind_database, unbind, upgrade
from engine.library import DEFAULT_RULES, REPO
from web.demo import seed_portfolio
from web.services import decisions
from web.services.customers import reassess
from web.services.rules import import_documents
from web.services.users import create_user

PASSWORD = "correct horse battery staple"
PEOPLE = {
    "author1": ["author"],
    "author2": ["author"],
    "approver1": ["approver"],
    "approver2": ["approver"],
    "both1": ["author", "approver"],
    "underwriter1": ["underwriter"],
    "underwriter2": ["underwriter"],
    "auditor1": ["auditor"],
    "admin1": ["admin"],
}
AS_OF = dt.date(2026, 6, 30)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Console:
    app: Flask
    url: str
    decisions: dict[str, str] = field(default_factory=dict)
    run_id: int = 0

    def client(self, username: str | None = None) -> FlaskClient:
        client = self.app.test_client()
        if username is not None:
            login(client, username)
        return client


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no csrf token on the page"
    return found.group(1)


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    page = client.get("/console/login").get_data(as_text=True)
    token = CSRF.findall(page)[-1]  # the login form's own token (a signed-in page also has the sign-out form's)
    return client.post("/console/login", data={"username": username, "password": password, "csrf_token": token})


def token(client: FlaskClient) -> str:
    return csrf_of(client.get("/console/").get_data(as_text=True))


@pytest.fixture(scope="session")
def console_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database with the baseline, the accounts and a small portfolio: copied for each module."""
    path = tmp_path_factory.mktemp("console-template") / "credo.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    bind_database(url)
    try:
        import_documents(list(DEFAULT_RULES))
        for name, roles in PEOPLE.items():
            create_user(name, roles, PASSWORD)
        seed_portfolio(8)
        for number in range(1, 9):
            reassess(f"C{number:05d}", as_of=AS_OF, trigger="test")  # ratings, tier history and alerts
    finally:
        unbind()
    return path


def record_examples() -> dict[str, str]:
    caller = decisions.Caller("api_key", "client-demo/credo_abc")
    made = {}
    for name, policy in (
        ("approve", "project-finance"),
        ("refer", "project-finance"),
        ("decline", "project-finance"),
    ):
        file = {"approve": "approve-energy", "refer": "refer-thin-coverage", "decline": "decline-arrears"}[name]
        case = json.loads((REPO / "examples" / f"{file}.json").read_text())
        made[name] = decisions.decide_and_record(
            policy, case, caller=caller, as_of=AS_OF, application_id=f"app-{name}"
        )["decision_id"]
    return made


def small_simulation(folder: Path) -> int:
    """A finished run over the demo book's first 60 rows, worked in this process (no worker needed)."""
    from web.services import simulations

    lines = (REPO / "examples" / "portfolio.csv").read_text().splitlines()[:61]
    book = folder / "small.csv"
    book.write_text("\n".join(lines) + "\n")
    run_id = simulations.enqueue(
        "author1", policy="project-finance", as_of=AS_OF, candidate=["limits-pricing@1"], portfolio=book,
        portfolio_name="first 60 rows", subject="limits-pricing@1",
    )
    assert simulations.claim("test-worker") == run_id
    simulations.run_simulation(run_id, "test-worker")
    assert simulations.get_run(run_id).status == "done"
    return run_id


@pytest.fixture(scope="module")
def console(console_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    from web.app import create_app

    path = tmp_path_factory.mktemp("console") / "credo.db"
    shutil.copyfile(console_template, path)
    url = f"sqlite:///{path}"
    bind_database(url)
    patch = pytest.MonkeyPatch()
    # An admin's "write a checkpoint now" must not append to the repo's own instance/ file.
    patch.setenv("CREDO_AUDIT_CHECKPOINT", str(path.parent / "checkpoints.jsonl"))
    try:
        app = create_app({"DATABASE_URL": url, "TESTING": True, "CONSOLE_COOKIE_SECURE": False,
                          "CONSOLE_WORKER": "off", "CONSOLE_UPLOADS": str(path.parent / "uploads")})
        handle = Console(app, url)
        handle.decisions = record_examples()
        handle.run_id = small_simulation(tmp_path_factory.mktemp("book"))
        yield handle
    finally:
        patch.undo()
        unbind()
