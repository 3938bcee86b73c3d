"""Monitoring, alerts and customer data over HTTP; the rules and policies endpoints."""

from __future__ import annotations

from typing import Any

from pony import orm

from tests.api.conftest import AS_OF, Api, read_case
from web.models import Alert, Customer


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
