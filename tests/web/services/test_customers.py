"""From the store to a case, the import, and dynamic adjustment with its alerts and notifications."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from pony import orm

from audit.db import write_session
from engine.library import REPO
from web.models import AdjustmentProposal, Alert, CreditEvent, Customer, Notification, TierChange
from web.services import customers, rules
from web.services.active import ACTIVE
from web.services.errors import Refused
from web.services.notify import Message, deliver_pending

AS_OF = dt.date(2026, 3, 31)
EXAMPLE = json.loads((REPO / "examples" / "approve-energy.json").read_text(encoding="utf-8"))


def healthy(code: str = "C1", policy: str = "project-finance") -> dict[str, Any]:
    """The approve-energy example as stored rows: FY2025 and FY2024 statements, a project loan application."""
    borrower, financials, prev = EXAMPLE["borrower"], EXAMPLE["financials"], EXAMPLE["financials_prev"]
    return {
        "customer": {
            "code": code,
            "name": borrower["name"],
            "legal_representative": borrower["legal_representative"],
            "registered_capital": float(borrower["registered_capital"]),
            "industry": borrower["industry"],
            "region": borrower["region"],
            "founded": dt.date(2020, 3, 18),
            "lifecycle_stage": borrower["lifecycle_stage"],
            "rm": "rm01",
            "rm_email": "rm01@example.com",
            "policy": policy,
            "existing_exposure": float(EXAMPLE["credit"]["existing_exposure"]),
        },
        "statements": [
            {"period_end": dt.date(2025, 12, 31), **{k: v for k, v in financials.items()}},
            {"period_end": dt.date(2024, 12, 31), **prev},
        ],
        "events": [],
        "project": {k: v for k, v in EXAMPLE["project"].items()} | {"name": "Sunfield phase 2"},
        "application": {
            "amount": float(EXAMPLE["application"]["amount"]),
            "tenor_months": EXAMPLE["application"]["tenor_months"],
            "product": EXAMPLE["application"]["product"],
            "purpose": EXAMPLE["application"]["purpose"],
            "requested_on": dt.date(2026, 2, 1),
        },
    }


def store(record: dict[str, Any]) -> None:
    with write_session():
        customers.store_record(record)


def event(kind: str, day: dt.date, dpd: int = 0) -> dict[str, Any]:
    return {"kind": kind, "event_date": day, "days_past_due": dpd, "amount": None, "note": None}


def test_a_stored_customer_becomes_the_case_it_was_made_from(baseline: list) -> None:
    store(healthy())
    case = customers.case_for("C1", as_of=AS_OF)
    expected = json.loads(json.dumps(EXAMPLE))
    expected["credit"] = {k: v for k, v in expected["credit"].items()}
    assert case["financials"] == {
        k: float(v) if not isinstance(v, bool | str) else v for k, v in expected["financials"].items()
    }
    assert case["borrower"]["years_in_business"] == 6 and case["borrower"]["founded"] == "2020-03-18"
    assert case["application"]["amount"] == 48_000_000 and case["project"]["construction_risk"] == "low"
    stored = ACTIVE.decide("project-finance", case, AS_OF)
    direct = ACTIVE.decide("project-finance", EXAMPLE, AS_OF)
    assert (stored["outcome"], stored["tier"], stored["limit"], stored["rate"], stored["score"]) == (
        direct["outcome"],
        direct["tier"],
        direct["limit"],
        direct["rate"],
        direct["score"],
    )


def test_case_assembly_takes_the_latest_statements_and_windows_the_credit_events(baseline: list) -> None:
    record = healthy()
    record["statements"].append({**record["statements"][1], "period_end": dt.date(2023, 12, 31), "revenue": 1.0})
    record["events"] = [
        event("past_due", dt.date(2025, 3, 31), 45),  # exactly 12 months before: outside the window
        event("past_due", dt.date(2025, 4, 1), 20),  # the window's first day
        event("past_due", dt.date(2026, 4, 1), 70),  # after the business date
        event("repayment", dt.date(2025, 12, 31), 5),
        event("default", dt.date(2021, 3, 31)),  # exactly 5 years before: outside
        event("default", dt.date(2021, 4, 1)),
        event("restructuring", dt.date(2023, 1, 1)),
    ]
    store(record)
    case = customers.case_for("C1", as_of=AS_OF)
    assert case["credit"] == {
        "max_dpd_12m": 20,
        "defaults_5y": 1,
        "restructurings_5y": 1,
        "existing_exposure": 20_000_000,
    }
    assert case["financials"]["revenue"] == 260_000_000 and case["financials_prev"]["revenue"] == 240_000_000
    # A year earlier the FY2025 accounts do not exist yet: FY2024 is the latest, FY2023 the one before.
    # (No policy is in force in 2025, so this reads the store's mapping itself.)
    with orm.db_session:
        earlier = customers.assemble(Customer.get(code="C1"), dt.date(2025, 6, 30))
    assert earlier["financials"]["revenue"] == 240_000_000 and earlier["financials_prev"]["revenue"] == 1.0
    assert earlier["credit"]["max_dpd_12m"] == 45 and earlier["borrower"]["years_in_business"] == 5
    assert earlier["credit"]["defaults_5y"] == 2  # both defaults are within five years of mid-2025
    # Only fields the policy's schema declares reach the case (financials_prev has no audit fields).
    assert "audited" not in case["financials_prev"]


ESG_RULESET = """\
ruleset: esg-screen
kind: eligibility
description: ESG screening from a score the store does not hold.
effective_from: 2026-01-01
facts:
  borrower:
    esg_score: {type: number, optional: true}
reasons:
  R-ESG-LOW: "ESG score {borrower.esg_score} is below 40"
rules:
  - id: ESG-LOW
    when: borrower.esg_score < 40
    then:
      decision: refer
      reasons: [R-ESG-LOW]
"""
ESG_POLICY = """\
policy: esg-term-loan
product: term_loan
description: Term loans with an ESG screen.
effective_from: 2026-01-01
rulesets: [credo-facts, corporate-tiering, esg-screen]
defaults:
  decision: refer
on_error: refer
"""


def test_a_policy_declaring_an_unmappable_field_is_refused_naming_it(baseline: list) -> None:
    for text in (ESG_RULESET, ESG_POLICY):
        ref = rules.save_draft(text, "alice").ref
        rules.submit(ref, "alice")
        rules.approve(ref, "bob")
        rules.publish(ref, "bob")
    store(healthy())
    with pytest.raises(Refused) as caught:
        customers.set_policy("C1", "esg-term-loan", "root", as_of=AS_OF)
    assert caught.value.code == "unmappable-field" and "borrower.esg_score" in caught.value.message
    with pytest.raises(Refused):
        customers.case_for("C1", as_of=AS_OF, policy="esg-term-loan")
    assert customers.case_for("C1", as_of=AS_OF)["application"]["product"] == "project_loan"  # its own still works
    # Had it been assigned anyway, new data is still kept, and the re-run records why it could not decide.
    with orm.db_session:
        Customer.get(code="C1").policy = "esg-term-loan"
    with pytest.raises(Refused):
        customers.reassess("C1", as_of=AS_OF)
    result = customers.record_credit_event("C1", "repayment", dt.date(2026, 3, 1), as_of=AS_OF)
    assert result.outcome is None and result.problems[0]["code"] == "unmappable-field"
    with orm.db_session:
        assert orm.count(e for e in CreditEvent) == 1


def test_impossible_new_data_is_refused_with_every_problem_and_nothing_stored(baseline: list) -> None:
    store(healthy())
    with pytest.raises(Refused) as event:
        customers.record_credit_event("C1", "lottery", dt.date(1800, 1, 1), days_past_due=100_000, as_of=AS_OF)
    assert event.value.kind == "invalid"
    assert {p.path: p.code for p in event.value.problems} == {
        "$.kind": "bad-event",
        "$.event_date": "date-out-of-range",
        "$.days_past_due": "out-of-range",
    }
    loss = {**EXAMPLE["financials"], "net_income": -5_000_000.0}
    with pytest.raises(Refused) as statement:
        customers.record_financials("C1", dt.date(2026, 3, 31), {**loss, "revenue": None, "colour": "red"})
    assert {p.path: p.code for p in statement.value.problems} == {
        "$.revenue": "missing-field",
        "$.colour": "unknown-field",
    }
    with orm.db_session:
        customer = Customer.get(code="C1")
        assert orm.count(e for e in CreditEvent if e.customer == customer) == 0
        assert orm.count(s for s in customer.statements) == 2 and orm.count(r for r in customer.ratings) == 0


class Recorder:
    name = "recorder"

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.sent: list[Message] = []

    def send(self, message: Message) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("down")
        self.sent.append(message)


def test_new_credit_events_raise_an_alert_and_queue_its_notification(baseline: list) -> None:
    store(healthy())
    first = customers.reassess("C1", as_of=AS_OF, trigger="test")
    assert (first.outcome, first.tier, first.opened, first.notifications) == ("approve", "A", [], [])

    late = customers.record_credit_event("C1", "past_due", dt.date(2026, 3, 15), days_past_due=45, as_of=AS_OF)
    assert late.outcome == "decline" and (late.previous_tier, late.tier, late.tier_changed) == ("A", "D", True)
    assert late.opened == ["EW-DPD-30"]
    assert ("limit", 48_000_000, None) in late.proposals
    assert len(late.notifications) == 2  # the alert, and the review of the tier change and proposals
    with orm.db_session:
        alert = Alert.get(code="EW-DPD-30")
        assert (alert.status, alert.assignee, alert.severity, alert.seen_count) == ("open", "rm01", "high", 1)
        assert orm.count(t for t in TierChange) == 1 and orm.count(p for p in AdjustmentProposal) >= 1
        note = orm.select(n for n in Notification if n.alert == alert).first()
        assert (note.status, note.recipient, note.address) == ("pending", "rm01", "rm01@example.com")
        assert json.loads(note.body)["code"] == "EW-DPD-30" and "C1" in note.subject

    # Still late a week on: the same alert is refreshed, not duplicated, and nobody is told twice.
    again = customers.record_credit_event("C1", "past_due", dt.date(2026, 3, 22), days_past_due=50, as_of=AS_OF)
    assert again.opened == [] and again.refreshed == ["EW-DPD-30"] and again.notifications == []
    with orm.db_session:
        assert orm.count(a for a in Alert if a.code == "EW-DPD-30") == 1
        assert Alert.get(code="EW-DPD-30").seen_count == 2

    # New accounts with a loss: financials trigger the re-run too.
    loss = {**EXAMPLE["financials"], "net_income": -5_000_000.0}
    after = customers.record_financials("C1", dt.date(2026, 3, 31), loss, as_of=AS_OF)
    assert "EW-NET-LOSS" in after.opened

    sender = Recorder(failures=1)  # the first attempt fails: delivered on the retry, at least once
    first_run = deliver_pending(sender)
    assert (
        len(first_run.retrying) == 1 and len(first_run.sent) == len(late.notifications) + len(after.notifications) - 1
    )
    assert deliver_pending(sender).sent == []  # the failed one waits for its backoff
    later = deliver_pending(sender, at=dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=5))
    assert later.sent == first_run.retrying
    assert {m.id for m in sender.sent} == {*late.notifications, *after.notifications}
    with orm.db_session:
        assert orm.count(n for n in Notification if n.status != "sent") == 0
        assert Notification[first_run.retrying[0]].attempts == 2


def test_an_alert_moves_open_acknowledged_resolved_and_then_can_open_again(baseline: list) -> None:
    store(healthy())
    customers.record_credit_event("C1", "past_due", dt.date(2026, 3, 15), days_past_due=45, as_of=AS_OF)
    with orm.db_session:
        alert_id = Alert.get(code="EW-DPD-30").id
    with pytest.raises(Refused) as stranger:
        customers.acknowledge_alert(alert_id, "alice")
    assert stranger.value.code == "not-assignee"
    customers.acknowledge_alert(alert_id, "rm01")
    with pytest.raises(Refused):
        customers.acknowledge_alert(alert_id, "rm01")
    customers.resolve_alert(alert_id, "erin")  # an underwriter may close it
    reopened = customers.reassess("C1", as_of=AS_OF)
    assert reopened.opened == ["EW-DPD-30"]
    with orm.db_session:
        assert sorted(orm.select(a.status for a in Alert if a.code == "EW-DPD-30").without_distinct()) == [
            "open",
            "resolved",
        ]
    # The database itself holds one live alert per customer and trigger.
    with pytest.raises(orm.TransactionIntegrityError), orm.db_session:
        Alert(
            customer=Customer.get(code="C1"),
            code="EW-DPD-30",
            severity="high",
            message="duplicate",
            status="acknowledged",
            assignee="rm01",
            opened_at=dt.datetime(2026, 3, 31),
            last_seen_at=dt.datetime(2026, 3, 31),
        )


def test_import_reads_csv_and_json_lines_in_the_portfolio_columns(baseline: list, tmp_path: Path) -> None:
    jsonl = tmp_path / "book.jsonl"
    lines = (REPO / "examples" / "book.jsonl").read_text(encoding="utf-8").splitlines()
    jsonl.write_text(
        "\n".join(json.dumps({"customer": {"id": f"B{n}"}, **json.loads(line)}) for n, line in enumerate(lines, 1)),
        encoding="utf-8",
    )
    report = customers.import_customers(jsonl, as_of=AS_OF, policy="project-finance", rm="rm02")
    assert report.created == [f"B{n}" for n in range(1, len(lines) + 1)]
    for n, line in enumerate(lines, 1):
        original = json.loads(line)
        stored = customers.case_for(f"B{n}", as_of=AS_OF)
        a = ACTIVE.decide("project-finance", stored, AS_OF)
        b = ACTIVE.decide("project-finance", original, AS_OF)
        assert (a["outcome"], a["tier"], a["limit"], a["rate"], a["score"]) == (
            b["outcome"],
            b["tier"],
            b["limit"],
            b["rate"],
            b["score"],
        ), f"B{n}"
    assert customers.import_customers(jsonl, as_of=AS_OF).updated == report.created  # idempotent re-import

    csv_file = tmp_path / "customers.csv"
    csv_file.write_text(
        "customer.id,customer.rm,customer.policy,borrower.name,borrower.registered_capital,borrower.industry,"
        "borrower.lifecycle_stage,borrower.founded,financials.period_end,financials.total_assets,"
        "financials.total_liabilities,financials.revenue,financials.ebitda,financials.debt_service,"
        "financials.audited,application.amount,application.tenor_months,application.product,segment\n"
        "K1,rm03,corporate-term-loan,Example Kite Co.,80000000,manufacturing,maturity,2011-06-20,2025-12-31,"
        "500000000,260000000,432000000,70000000,40000000,true,45000000,60,term_loan,north\n",
        encoding="utf-8",
    )
    assert customers.import_customers(csv_file, as_of=AS_OF).created == ["K1"]
    case = customers.case_for("K1", as_of=AS_OF)
    assert case["financials"]["audited"] is True and case["borrower"]["years_in_business"] == 14
    assert case["credit"] == {"max_dpd_12m": 0, "defaults_5y": 0, "restructurings_5y": 0, "existing_exposure": 0}

    bad = tmp_path / "bad.csv"
    bad.write_text("customer.id,borrower.registerd_capital,financials.revenue\nX1,1,abc\n", encoding="utf-8")
    with pytest.raises(Refused) as caught:
        customers.import_customers(bad, as_of=AS_OF)
    details = "\n".join(caught.value.details)
    assert "did you mean 'borrower.registered_capital'" in details and "row 2, column financials.revenue" in details
    with orm.db_session:
        assert Customer.get(code="X1") is None  # all rows or none
