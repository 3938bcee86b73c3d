"""The console's own SQL on PostgreSQL: sessions, the simulation queue and cases, searches, every page.

The other console tests run on SQLite; this one walks the same tables on the throw-away PostgreSQL server of
tests/web (skipped where its binaries are missing, required under CI=true, as there).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import web.models  # noqa: F401 - the entities must be declared before any bind
from audit.db import bind_database, unbind
from engine.library import DEFAULT_RULES, REPO
from tests.console.conftest import AS_OF, PASSWORD, Console, token
from tests.web.conftest import PostgresDatabase, pg_database, pg_server  # noqa: F401 - shared fixtures
from web.services import audit_search, decisions, simulations
from web.services.rules import import_documents
from web.services.users import create_user


@pytest.fixture(scope="module")
def pg_console(pg_database: PostgresDatabase) -> Iterator[Console]:  # noqa: F811 - the shared fixture
    from web.app import create_app

    pg_database.reset()
    bind_database(pg_database.url)
    try:
        import_documents(list(DEFAULT_RULES))
        for name, roles in (("author1", ["author"]), ("approver1", ["approver"]), ("auditor1", ["auditor"])):
            create_user(name, roles, PASSWORD)
        app = create_app({"DATABASE_URL": pg_database.url, "TESTING": True, "CONSOLE_COOKIE_SECURE": False,
                          "CONSOLE_WORKER": "off"})
        yield Console(app, pg_database.url)
    finally:
        unbind()


def test_the_console_tables_work_on_postgresql(pg_console: Console, tmp_path: Path) -> None:
    case = json.loads((REPO / "examples" / "refer-thin-coverage.json").read_text())
    made = decisions.decide_and_record(
        "project-finance", case, caller=decisions.Caller("api_key", "pg/credo_x"), as_of=AS_OF, application_id="a1"
    )
    rows, total = audit_search.search(audit_search.DecisionFilter(outcome="refer", rule="PF-DSCR-THIN", caller="pg"))
    assert total == 1 and rows[0]["decision_id"] == made["decision_id"]

    book = tmp_path / "book.csv"
    book.write_text("\n".join((REPO / "examples" / "portfolio.csv").read_text().splitlines()[:41]) + "\n")
    run_id = simulations.enqueue("author1", policy="project-finance", as_of=AS_OF, candidate=["limits-pricing@1"],
                                 portfolio=book, portfolio_name="forty", subject="limits-pricing@1")
    assert simulations.claim("pg-worker") == run_id
    assert simulations.claim("another") is None
    simulations.run_simulation(run_id, "pg-worker")
    assert simulations.get_run(run_id).status == "done"
    assert simulations.count_cases(run_id, simulations.CaseFilter(b_tier="none")) >= 0
    assert simulations.count_cases(run_id, simulations.CaseFilter()) == 40
    assert len(simulations.score_pairs(run_id)) <= 40

    author = pg_console.client("author1")
    auditor = pg_console.client("auditor1")
    for client, pages in (
        (author, ["/console/", "/console/rules", "/console/rules/limits-pricing/1", f"/console/simulations/{run_id}",
                  f"/console/simulations/{run_id}/cases?rule=TIER-GRID/1", f"/console/simulations/{run_id}/cases/1",
                  "/console/alerts", "/console/customers"]),
        (auditor, ["/console/audit?outcome=refer", f"/console/audit/decisions/{made['decision_id']}",
                   "/console/audit/governance", "/console/audit/chain", "/console/reviews"]),
    ):
        for page in pages:
            answer = client.get(page)
            assert answer.status_code == 200, (page, answer.get_data(as_text=True)[:2000])
    checked = author.post("/console/rules/validate", json={"text": "ruleset: x\n", "ref": None},
                          headers={"X-CSRF-Token": token(author)})
    assert checked.status_code == 200 and checked.get_json()["problems"]
