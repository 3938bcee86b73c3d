"""Borrower names (declared sensitive) appear only to the roles that may unmask the audit trail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.library import REPO
from tests.console.conftest import AS_OF, Console


def a_customer_name() -> tuple[str, str]:
    from pony import orm

    from web.models import Alert

    with orm.db_session:
        alert = orm.select(a for a in Alert).first()
        assert alert is not None, "the demo data has alerts"
        return alert.customer.code, alert.customer.name


def test_customer_names_are_masked_for_authors_and_shown_to_underwriters(console: Console) -> None:
    code, name = a_customer_name()
    author, underwriter = console.client("author1"), console.client("underwriter1")
    for path in ("/console/customers", f"/console/customers/{code}", "/console/alerts"):
        assert name not in author.get(path).get_data(as_text=True), path
        assert name in underwriter.get(path).get_data(as_text=True), path
    # Nor can a name be probed through the search: it matches codes only for those who do not see names.
    word = name.split()[1]
    assert code not in author.get(f"/console/customers?q={word}").get_data(as_text=True)
    assert code in underwriter.get(f"/console/customers?q={word}").get_data(as_text=True)
    assert code in author.get(f"/console/customers?q={code}").get_data(as_text=True)


def test_an_uploaded_books_names_are_masked_on_its_case_page(console: Console, tmp_path: Path) -> None:
    from web.services import simulations

    case = json.loads((REPO / "examples" / "approve-energy.json").read_text(encoding="utf-8"))
    name, representative = case["borrower"]["name"], case["borrower"]["legal_representative"]
    book = tmp_path / "named.jsonl"
    book.write_text(json.dumps(case) + "\n", encoding="utf-8")
    run_id = simulations.enqueue("author1", policy="project-finance", as_of=AS_OF, candidate=["limits-pricing@1"],
                                 portfolio=book, portfolio_name="named")
    assert simulations.claim("privacy-test") == run_id
    simulations.run_simulation(run_id, "privacy-test")
    page = f"/console/simulations/{run_id}/cases/1"
    shown_to_author = console.client("author1").get(page).get_data(as_text=True)
    assert name not in shown_to_author and representative not in shown_to_author
    assert "***" in shown_to_author and "Sunfield" not in shown_to_author
    shown_to_auditor = console.client("auditor1").get(page).get_data(as_text=True)
    assert name in shown_to_auditor


@pytest.mark.parametrize("row", [{"borrower": {"name": "A", "industry": "energy"}}, {"borrower.name": "A", "x": 1}])
def test_masked_input_handles_nested_and_flat_rows(row: dict) -> None:
    from web.console.privacy import MASK, _mask

    masked = _mask(row, frozenset({"borrower.name"}), "")
    flat = masked.get("borrower.name") or masked["borrower"]["name"]
    assert flat == MASK

