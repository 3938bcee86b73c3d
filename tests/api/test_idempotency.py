"""`Idempotency-Key` on every POST: stored answers byte for byte, 422 on reuse, 409 while in flight, 7 days."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
import requests
from pony import orm

from audit.db import db
from tests.api.conftest import Api, decision_request
from web.api import idempotency


def key() -> str:
    return f"test-{uuid.uuid4().hex}"


def records_with(idempotency_key: str) -> int:
    with orm.db_session:
        return int(
            db.select("SELECT COUNT(*) FROM decision_record WHERE idempotency_key = $k", {"k": idempotency_key})[0]
        )


def test_same_key_same_body_gets_the_stored_answer_byte_for_byte(api: Api) -> None:
    k = key()
    body = decision_request("approve-energy.json", application_id="IDEM-1")
    first = api.post("/decisions", "decide", json=body, headers={"Idempotency-Key": k})
    assert first.status_code == 200, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = api.post("/decisions", "decide", json=body, headers={"Idempotency-Key": k})
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    # The same JSON with other spacing and key order is the same request.
    import json

    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)
    third = api.post(
        "/decisions", "decide", data=reordered, headers={"Idempotency-Key": k, "Content-Type": "application/json"}
    )
    assert third.content == first.content
    assert records_with(k) == 1


def test_same_key_different_body_is_422(api: Api) -> None:
    k = key()
    assert api.post("/decisions", "decide", json=decision_request(), headers={"Idempotency-Key": k}).ok
    other = api.post(
        "/decisions", "decide", json=decision_request("approve-energy.json"), headers={"Idempotency-Key": k}
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency-key-reused"
    # Another endpoint is another request, too.
    elsewhere = api.post(
        "/monitoring/evaluate", "admin", json={"customer_id": "C00002"}, headers={"Idempotency-Key": k}
    )
    assert elsewhere.status_code in (200, 422)
    assert records_with(k) == 1


def test_keys_belong_to_their_caller(api: Api) -> None:
    k = key()
    body = decision_request()
    mine = api.post("/decisions", "decide", json=body, headers={"Idempotency-Key": k})
    theirs = api.post("/decisions", "admin", json=body, headers={"Idempotency-Key": k})
    assert mine.status_code == theirs.status_code == 200
    assert mine.json()["decision_id"] != theirs.json()["decision_id"]


def test_client_errors_are_stored_too_and_replayed(api: Api) -> None:
    k = key()
    bad = {"policy": "project-finance", "case": {"credit": {"max_dpd_12m": "x"}}, "as_of": "2026-06-30"}
    first = api.post("/decisions", "decide", json=bad, headers={"Idempotency-Key": k})
    second = api.post("/decisions", "decide", json=bad, headers={"Idempotency-Key": k})
    assert first.status_code == second.status_code == 422
    assert first.content == second.content and second.headers["Idempotent-Replayed"] == "true"


def test_a_malformed_key_is_422(api: Api) -> None:
    response = api.post("/decisions", "decide", json=decision_request(), headers={"Idempotency-Key": "a b/c"})
    assert response.status_code == 422
    assert response.json()["error"]["problems"][0]["path"] == "header:Idempotency-Key"


def test_every_post_honours_the_key(api: Api) -> None:
    k = key()
    body = {"case": decision_request("decline-arrears.json")["case"], "as_of": "2026-06-30"}
    first = api.post("/monitoring/evaluate", "monitor", json=body, headers={"Idempotency-Key": k})
    again = api.post("/monitoring/evaluate", "monitor", json=body, headers={"Idempotency-Key": k})
    assert first.status_code == 200 and again.content == first.content
    k = key()
    event = {"kind": "past_due", "event_date": "2026-06-01", "days_past_due": 12, "as_of": "2026-06-30"}
    first = api.post("/customers/C00003/credit-events", "monitor", json=event, headers={"Idempotency-Key": k})
    again = api.post("/customers/C00003/credit-events", "monitor", json=event, headers={"Idempotency-Key": k})
    assert first.status_code == 200, first.text
    assert again.content == first.content
    with orm.db_session:
        from web.models import CreditEvent

        stored = orm.count(e for e in CreditEvent if e.customer.code == "C00003" and e.days_past_due == 12)
    assert stored == 1  # the event was recorded once


def test_concurrent_requests_with_one_key_run_once(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    import web.api.decisions

    real = web.api.decisions.decisions.decide_and_record
    runs: list[int] = []
    gate = threading.Event()

    def slow(*args: Any, **kwargs: Any) -> Any:
        runs.append(1)
        gate.wait(10)  # hold the first request in flight while the others arrive
        return real(*args, **kwargs)

    monkeypatch.setattr(web.api.decisions.decisions, "decide_and_record", slow)
    k = key()
    body = decision_request("approve-energy.json")
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def fire() -> None:
        response = requests.post(
            api.base + "/decisions",
            json=body,
            headers={"Idempotency-Key": k, "Authorization": f"Bearer {api.keys['decide']}"},
            timeout=30,
        )
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=fire) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with lock:
            if len(answers) >= 7:
                break
        time.sleep(0.02)
    gate.set()
    for t in threads:
        t.join(30)
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {200: 1, 409: 7}, statuses
    assert len(runs) == 1
    conflict = next(r for r in answers if r.status_code == 409)
    assert conflict.json()["error"]["code"] == "idempotency-key-in-use" and conflict.headers["Retry-After"]
    done = next(r for r in answers if r.status_code == 200)
    retry = api.post("/decisions", "decide", json=body, headers={"Idempotency-Key": k})
    assert retry.status_code == 200 and retry.content == done.content
    assert records_with(k) == 1


def test_a_failed_request_gives_its_key_back(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    import web.api.decisions
    from audit.errors import AuditUnavailable

    def down(*args: Any, **kwargs: Any) -> Any:
        raise AuditUnavailable("the decision record could not be written (OperationalError)")

    monkeypatch.setattr(web.api.decisions.decisions, "decide_and_record", down)
    k = key()
    body = decision_request()
    failed = api.post("/decisions", "decide", json=body, headers={"Idempotency-Key": k})
    assert failed.status_code == 503 and failed.json()["error"]["code"] == "audit-unavailable"
    monkeypatch.undo()
    retried = api.post("/decisions", "decide", json=body, headers={"Idempotency-Key": k})
    assert retried.status_code == 200 and "decision_id" in retried.json()


def test_a_dead_claim_is_taken_over_after_its_lease(api: Api) -> None:
    k = key()
    digest = idempotency.request_hash("POST", "/api/v1/x", {"a": 1})
    held = idempotency.claim("tester", k, digest, lease_seconds=60, ttl_days=7)
    assert isinstance(held, idempotency.Claim)
    with pytest.raises(Exception) as busy:
        idempotency.claim("tester", k, digest, lease_seconds=60, ttl_days=7)
    assert getattr(busy.value, "status", None) == 409
    taken = idempotency.claim("tester", k, digest, lease_seconds=0, ttl_days=7)
    assert isinstance(taken, idempotency.Claim) and taken.token != held.token
    idempotency.finish(held, 200, b"{}")  # the dead request's late answer does not overwrite the new claim
    with pytest.raises(Exception) as still_busy:
        idempotency.claim("tester", k, digest, lease_seconds=60, ttl_days=7)
    assert getattr(still_busy.value, "status", None) == 409


def test_keys_are_kept_seven_days_then_purged(api: Api) -> None:
    k_old, k_young = key(), key()
    for k in (k_old, k_young):
        held = idempotency.claim("purger", k, "h", lease_seconds=60, ttl_days=7)
        assert isinstance(held, idempotency.Claim)
        idempotency.finish(held, 200, b"{}")
    stamp = idempotency.now()
    with orm.db_session:
        db.execute(
            "UPDATE idempotency_key SET created_at = $old WHERE idem_key = $k",
            {"old": stamp - dt.timedelta(days=7, hours=1), "k": k_old},
        )
        db.execute(
            "UPDATE idempotency_key SET created_at = $young WHERE idem_key = $k",
            {"young": stamp - dt.timedelta(days=6, hours=23), "k": k_young},
        )
    assert idempotency.purge(1) >= 1  # a shorter setting is raised to the 7-day floor
    with orm.db_session:
        left = set(db.select("SELECT idem_key FROM idempotency_key WHERE caller = 'purger'"))
    assert left == {k_young}
