"""The auth matrix: every endpoint × no key, a bad key, a revoked key and a key of each scope."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.api.conftest import Api, decision_request
from web.api.auth import API_SCOPES, api_scopes, bearer_token, fine_scopes
from web.api.framework import ENDPOINTS
from web.api.openapi import API_PREFIX

SAMPLE_PARAMS = {
    "decision_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "alert_id": "1",
    "customer_id": "C00001",
    "name": "project-finance",
    "number": "1",
    "application_id": "APP-1",
}
SAMPLE_BODIES: dict[str, Any] = {
    "create_decision": decision_request("approve-energy.json"),
    "review_decision": {"outcome": "approve", "reason": "matrix"},
    "replay_decision": {},
    "evaluate_monitoring": {"customer_id": "C00001", "as_of": "2026-06-30"},
    "acknowledge_alert": {},
    "resolve_alert": {},
    "record_financials": {
        "period_end": "2026-03-31",
        "total_assets": 5e8,
        "total_liabilities": 2.6e8,
        "revenue": 4.3e8,
        "ebitda": 7e7,
        "debt_service": 4e7,
    },
    "record_credit_event": {"kind": "repayment", "event_date": "2026-06-01"},
}


def cases() -> list[tuple[str, str, str, tuple[str, ...] | None]]:
    out = []
    for ep in ENDPOINTS:
        path = re.sub(r"\{([a-z_]+)\}", lambda m: SAMPLE_PARAMS[m.group(1)], ep.path)
        out.append((ep.operation_id, ep.method, path, ep.scopes))
    return out


CASES = cases()


def call(api: Api, method: str, path: str, operation: str, key: str | None) -> Any:
    body = SAMPLE_BODIES.get(operation) if method == "POST" else None
    return api.request(method, path, key, json=body)


@pytest.mark.parametrize(("operation", "method", "path", "scopes"), CASES, ids=[c[0] for c in CASES])
def test_endpoint_by_scope(api: Api, operation: str, method: str, path: str, scopes: tuple[str, ...] | None) -> None:
    if scopes is None:  # public: /health
        assert call(api, method, path, operation, None).status_code == 200
        return
    missing = call(api, method, path, operation, None)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    for bad in ("credo_not-a-real-key-at-all-0000000000000000000", "x" * 500):
        assert call(api, method, path, operation, bad).status_code == 401
    for scope in ("decide", "monitor", "read", "admin", "none"):
        response = call(api, method, path, operation, scope)
        allowed = scope == "admin" or scope in scopes
        if allowed:
            # Past the scope check: what follows may still refuse the key's user (a review needs the underwriter
            # role, an alert its assignee), but never for the scope.
            assert response.status_code != 401, (scope, response.text)
            assert response.status_code < 500, (scope, response.text)
            if response.status_code == 403:
                assert response.json()["error"]["code"] != "missing-scope", (scope, response.text)
        else:
            assert response.status_code == 403, (scope, response.text)
            assert response.json()["error"]["code"] == "missing-scope"


def test_the_matrix_covers_every_operation() -> None:
    documented = {ep.operation_id for ep in ENDPOINTS}
    assert documented == {c[0] for c in CASES}
    assert {ep.operation_id for ep in ENDPOINTS if ep.method == "POST"} <= set(SAMPLE_BODIES)


def test_basic_and_malformed_authorization_headers_are_401(api: Api) -> None:
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc", api.keys["read"]):
        response = api.session.get(api.base + "/policies", headers={"Authorization": header}, timeout=10)
        assert response.status_code == 401, header
    assert bearer_token("bearer  abc ") == "abc"


def test_a_revoked_key_is_refused_at_once(api: Api) -> None:
    from web.api.auth import create_key, list_keys, revoke_key

    key = create_key("short-lived", ["read"])
    assert api.get("/policies", key).status_code == 200
    prefix = next(k.prefix for k in list_keys() if k.label == "short-lived")
    revoke_key(prefix, "admin1")
    assert api.get("/policies", key).status_code == 401


def test_scope_bundles_round_trip() -> None:
    for scope in API_SCOPES:
        assert scope in api_scopes(fine_scopes([scope]))
    assert api_scopes(fine_scopes(["monitor"])) == {"monitor"}
    assert api_scopes(["customers:read"]) == frozenset()


def test_openapi_declares_security_per_operation(api: Api) -> None:
    spec = api.get("/openapi.json").json()
    for ep in ENDPOINTS:
        op = spec["paths"][API_PREFIX + ep.path][ep.method.lower()]
        if ep.scopes is None:
            assert op["security"] == []
        else:
            assert op["security"] == [{"bearerAuth": []}] and op["x-credo-scopes"] == list(ep.scopes)
            assert {"401", "403"} <= set(op["responses"])
