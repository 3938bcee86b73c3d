"""Monitoring, alerts and customer data over HTTP; the rules and policies endpoints."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import requests
from pony import orm

from tests.api.conftest import AS_OF, Api, read_case
from web.models import Alert, CreditEvent, Customer, FinancialStatement, Notification, Rating


def live_alerts(code: str) -> list[tuple[str, str]]:
    with orm.db_session:
        alerts = orm.select(a for a in Alert if a.customer.code == code and a.status in ("open", "acknowledged"))
        return sorted((a.code, a.status) for a in alerts)


def a_customer_with_alerts(api: Api) -> str:
    with orm.db_session:
        codes = sorted(orm.select(c.code for c in Customer))
    for code in codes:
        response = api.post("/monitoring/evaluate", "monitor", json={"customer_id": code, "as_of": AS_OF})
        assert response.status_code == 200, response.text
        if response.json()["alerts"]:
            return code
    raise AssertionError("no demo customer raises an early warning")


def test_monitoring_a_stored_customer_persists_its_alerts_once(api: Api) -> None:
    code = a_customer_with_alerts(api)
    before = live_alerts(code)
    again = api.post("/monitoring/evaluate", "monitor", json={"customer_id": code, "as_of": AS_OF}).json()
    assert again["persisted"] is True
    adjustment = again["adjustment"]
    assert adjustment["customer_id"] == code and adjustment["alerts_opened"] == []
    assert sorted(adjustment["alerts_refreshed"]) == sorted(c for c, _ in before)
    assert live_alerts(code) == before  # refreshed, not duplicated
    assert {a["code"] for a in again["alerts"]} == {c for c, _ in before}
    assert all(a["seen_count"] >= 2 for a in again["alerts"])


def test_monitoring_a_case_runs_the_early_warnings_without_storing(api: Api) -> None:
    case = read_case("decline-arrears.json")
    response = api.post("/monitoring/evaluate", "monitor", json={"case": case, "as_of": AS_OF})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["persisted"] is False and [r["name"] for r in body["rulesets"]] == ["early-warning"]
    assert {"code": "EW-DPD-30", "severity": "high", "message": "45 days past due in the last 12 months"} in body[
        "alerts"
    ]
    under_policy = api.post(
        "/monitoring/evaluate", "monitor", json={"case": case, "policy": "project-finance", "as_of": AS_OF}
    ).json()
    assert {a["code"] for a in under_policy["alerts"]} >= {"EW-DPD-30"}


def test_monitoring_requests_are_validated(api: Api) -> None:
    for body, path in (
        ({}, "$"),
        ({"customer_id": "C00001", "case": {}}, "$"),
        ({"customer_id": "C00001", "policy": "project-finance"}, "$"),
    ):
        response = api.post("/monitoring/evaluate", "monitor", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["problems"][0]["path"] == path
    unknown = api.post("/monitoring/evaluate", "monitor", json={"customer_id": "NOBODY"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown-customer"
    bad_case = api.post("/monitoring/evaluate", "monitor", json={"case": {"credit": {"max_dpd_12m": "x"}}})
    assert bad_case.status_code == 422 and bad_case.json()["error"]["problems"][0]["path"].startswith("$.case.")


def test_alerts_are_filtered_paged_acknowledged_and_resolved(api: Api) -> None:
    code = a_customer_with_alerts(api)
    listed = api.get("/alerts", "read", params={"customer_id": code, "status": "open"}).json()["alerts"]
    assert listed and all(a["customer_id"] == code and a["status"] == "open" for a in listed)
    page = api.get("/alerts", "monitor", params={"limit": 1}).json()
    assert len(page["alerts"]) == 1
    if page["next_after_id"] is not None:
        following = api.get("/alerts", "monitor", params={"limit": 1, "after_id": page["next_after_id"]}).json()
        assert following["alerts"][0]["id"] > page["alerts"][0]["id"]
    alert = listed[0]
    # Only the assignee (the RM), an underwriter or an admin moves an alert.
    stranger = api.post(f"/alerts/{alert['id']}/acknowledge", "monitor")
    assert stranger.status_code == 403 and stranger.json()["error"]["code"] == "not-assignee"
    rm_key = "rm" if alert["assignee"] == "rm01" else "admin1"
    acknowledged = api.post(f"/alerts/{alert['id']}/acknowledge", rm_key, json={"note": "called the CFO"})
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["status"] == "acknowledged" and acknowledged.json()["acknowledged_by"]
    twice = api.post(f"/alerts/{alert['id']}/acknowledge", rm_key)
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "alert-status"
    resolved = api.post(f"/alerts/{alert['id']}/resolve", "admin1")  # a user with the admin role
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    # Who moved it, and why, is in the governance log.
    from audit.governance import GovernanceEvent

    with orm.db_session:
        moves = orm.select(e for e in GovernanceEvent if e.subject == f"alert:{alert['id']}").order_by(
            GovernanceEvent.seq
        )[:]
        logged = [(e.action, json.loads(e.detail)["note"]) for e in moves]
    assert logged == [("alert-acknowledged", "called the CFO"), ("alert-resolved", None)]
    assert api.post("/alerts/999999999/resolve", "admin1").status_code == 404


def changes(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(path, "monitor", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_new_financials_and_credit_events_return_tier_limit_and_alert_changes(api: Api) -> None:
    code = "C00005"
    base = changes(api, "/monitoring/evaluate", {"customer_id": code, "as_of": AS_OF})["adjustment"]
    # A disastrous year: losses, negative operating cash flow, leverage through the roof.
    worse = changes(
        api,
        f"/customers/{code}/financials",
        {
            "period_end": "2026-03-31",
            "as_of": AS_OF,
            "total_assets": 100_000_000,
            "total_liabilities": 98_000_000,
            "current_assets": 10_000_000,
            "current_liabilities": 40_000_000,
            "revenue": 20_000_000,
            "ebitda": -5_000_000,
            "net_income": -20_000_000,
            "operating_cash_flow": -8_000_000,
            "debt_service": 15_000_000,
        },
    )
    assert worse["customer_id"] == code and worse["previous_tier"] == base["tier"]
    assert worse["tier_changed"] == (worse["tier"] != base["tier"])
    assert {"EW-NET-LOSS", "EW-NEGATIVE-OCF"} <= {a["code"] for a in worse["alerts"]}
    assert set(worse["alerts_opened"]) | set(worse["alerts_refreshed"]) >= {"EW-NET-LOSS", "EW-NEGATIVE-OCF"}
    event = changes(
        api,
        f"/customers/{code}/credit-events",
        {"kind": "default", "event_date": "2026-06-15", "amount": 1_000_000, "as_of": AS_OF},
    )
    assert event["rating_id"] > worse["rating_id"]
    assert all(p["kind"] in ("limit", "rate") for p in event["proposals"])
    unknown = api.post("/customers/NOBODY/credit-events", "monitor", json={"kind": "default", "event_date": AS_OF})
    assert unknown.status_code == 404
    wrong = api.post(f"/customers/{code}/credit-events", "monitor", json={"kind": "lottery", "event_date": AS_OF})
    assert wrong.status_code == 422 and wrong.json()["error"]["problems"][0]["path"] == "$.kind"


def test_policies_and_rule_versions(api: Api) -> None:
    policies = api.get("/policies", "decide").json()
    assert [p["name"] for p in policies["policies"]] == ["corporate-term-loan", "project-finance"]
    assert policies["generation"] >= 1 and "early-warning" in policies["policies"][0]["rulesets"]
    versions = api.get("/rulesets/limits-pricing/versions", "read").json()
    assert versions["name"] == "limits-pricing" and versions["versions"][0]["status"] == "active"
    assert "text" not in versions["versions"][0]
    one = api.get("/rulesets/limits-pricing/versions/1", "read").json()
    assert one["ref"] == "limits-pricing@1" and one["text"].startswith(("ruleset:", "#"))
    assert api.get("/rulesets/limits-pricing/versions/7", "read").status_code == 404
    assert api.get("/rulesets/no-such-ruleset/versions", "read").status_code == 404


# --- bad customer data is refused whole: 422 in the one error shape, nothing stored, nobody re-rated --------------

STATEMENT: dict[str, Any] = {
    "period_end": "2026-09-30",
    "as_of": "2026-10-31",
    "total_assets": 400_000_000,
    "total_liabilities": 220_000_000,
    "current_assets": 120_000_000,
    "current_liabilities": 80_000_000,
    "revenue": 300_000_000,
    "ebitda": 45_000_000,
    "net_income": 12_000_000,
    "operating_cash_flow": 30_000_000,
    "debt_service": 20_000_000,
    "audited": True,
    "audit_opinion": "unqualified",
}
REQUIRED = ("total_assets", "total_liabilities", "revenue", "ebitda", "debt_service")


def footprint(code: str) -> tuple[int, ...]:
    """How much the store holds for the customer: statements, events, ratings, alerts, notifications."""
    with orm.db_session:
        customer = Customer.get(code=code)
        return (
            orm.count(s for s in FinancialStatement if s.customer == customer),
            orm.count(e for e in CreditEvent if e.customer == customer),
            orm.count(r for r in Rating if r.customer == customer),
            orm.count(a for a in Alert if a.customer == customer),
            orm.count(n for n in Notification if n.customer == customer),
        )


def refused(response: requests.Response) -> dict[str, str]:
    """The 422's problems as {path: code}, after checking the one error shape."""
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "problems"} and error["code"] and error["message"]
    assert all(set(p) == {"path", "code", "message"} for p in error["problems"])
    return {p["path"]: p["code"] for p in error["problems"]}


def post_raw(api: Api, path: str, text: str) -> requests.Response:
    # requests cannot encode 1e400 (json.dumps writes `Infinity`, which is not JSON): send the text itself.
    return api.post(path, "monitor", data=text.encode(), headers={"Content-Type": "application/json"})


def test_an_invalid_statement_is_refused_with_every_problem_and_nothing_is_stored(api: Api) -> None:
    code = "C00008"
    url = f"/customers/{code}/financials"
    before = footprint(code)
    negative = refused(api.post(url, "monitor", json={**STATEMENT, "total_assets": -5}))
    assert negative == {"$.total_assets": "out-of-range"}
    assert refused(api.post(url, "monitor", json={**STATEMENT, "audit_opinion": "great"})) == {
        "$.audit_opinion": "enum-value"
    }
    text = json.dumps(STATEMENT).replace('"total_assets": 400000000', '"total_assets": 1e400')
    assert "1e400" in text
    assert list(refused(post_raw(api, url, text))) == ["$.total_assets"]
    empty = refused(api.post(url, "monitor", json={"period_end": "2026-09-30"}))
    assert empty == {f"$.{name}": "missing-field" for name in REQUIRED}
    # Several problems at once: every one of them, by path.
    several = {**STATEMENT, "total_assets": -5, "audit_opinion": "great", "ebitda": None}
    del several["revenue"]
    assert refused(api.post(url, "monitor", json=several)) == {
        "$.total_assets": "out-of-range",
        "$.audit_opinion": "enum-value",
        "$.revenue": "missing-field",
        "$.ebitda": "missing-field",
    }
    assert footprint(code) == before  # no statement, no rating, no alert, no notification


def test_a_restatement_replaces_the_period_whole_and_must_be_complete(api: Api) -> None:
    code = "C00009"
    url = f"/customers/{code}/financials"
    assert api.post(url, "monitor", json=STATEMENT).status_code == 200
    # The restated accounts drop the optional items they no longer report: they are gone, not kept from before.
    restated = {k: v for k, v in STATEMENT.items() if k not in ("net_income", "audit_opinion")} | {"revenue": 1.0}
    assert api.post(url, "monitor", json=restated).status_code == 200
    with orm.db_session:
        row = FinancialStatement.get(customer=Customer.get(code=code), period_end=dt.date(2026, 9, 30))
        assert (row.revenue, row.net_income, row.audit_opinion, row.ebitda) == (1.0, None, None, 45_000_000)
    # A restatement that leaves out a required item is refused, and the stored statement stays as it was.
    before = footprint(code)
    partial = {k: v for k, v in STATEMENT.items() if k != "ebitda"}
    assert refused(api.post(url, "monitor", json=partial)) == {"$.ebitda": "missing-field"}
    assert footprint(code) == before
    with orm.db_session:
        row = FinancialStatement.get(customer=Customer.get(code=code), period_end=dt.date(2026, 9, 30))
        assert (row.revenue, row.ebitda) == (1.0, 45_000_000)


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def test_impossible_or_future_dates_and_days_past_due_are_refused(api: Api) -> None:
    code = "C00010"
    events, financials = f"/customers/{code}/credit-events", f"/customers/{code}/financials"
    before = footprint(code)
    tomorrow = (today() + dt.timedelta(days=1)).isoformat()
    for day in ("2030-01-01", "2099-12-31", "1800-01-01", "1899-12-31", tomorrow):
        response = api.post(events, "monitor", json={"kind": "default", "event_date": day})
        assert refused(response) == {"$.event_date": "date-out-of-range"}, day
        response = api.post(financials, "monitor", json={**STATEMENT, "period_end": day})
        assert refused(response) == {"$.period_end": "date-out-of-range"}, day
    assert "$.period_end" in refused(api.post(financials, "monitor", json={**STATEMENT, "period_end": "9999-12-31"}))
    for dpd in (100_000, 36_501, -1):
        response = api.post(
            events, "monitor", json={"kind": "past_due", "event_date": "2026-06-01", "days_past_due": dpd}
        )
        assert refused(response) == {"$.days_past_due": "less-than-equal" if dpd > 0 else "greater-than-equal"}
    assert footprint(code) == before
    # Today itself is a possible date, and 100 years of arrears the most the API takes.
    accepted = {"kind": "past_due", "event_date": today().isoformat(), "days_past_due": 36_500}
    response = api.post(events, "monitor", json=accepted)
    assert response.status_code == 200, response.text
    assert footprint(code)[1] == before[1] + 1


def test_a_business_date_more_than_a_year_ahead_is_refused(api: Api) -> None:
    code = "C00011"
    before = footprint(code)
    far = (today() + dt.timedelta(days=367)).isoformat()
    for day in (far, "2099-01-01", "1800-01-01"):
        for path, body in (
            ("/monitoring/evaluate", {"customer_id": code, "as_of": day}),
            ("/monitoring/evaluate", {"case": read_case("decline-arrears.json"), "as_of": day}),
            (f"/customers/{code}/financials", {**STATEMENT, "as_of": day}),
            (f"/customers/{code}/credit-events", {"kind": "repayment", "event_date": "2026-06-01", "as_of": day}),
        ):
            assert refused(api.post(path, "monitor", json=body)) == {"$.as_of": "date-out-of-range"}, (path, day)
    assert footprint(code) == before
    # Within a year ahead stays possible: a projection of the early warnings for a case.
    near = (today() + dt.timedelta(days=365)).isoformat()
    body = {"case": read_case("decline-arrears.json"), "as_of": near}
    response = api.post("/monitoring/evaluate", "monitor", json=body)
    assert response.status_code == 200, response.text
