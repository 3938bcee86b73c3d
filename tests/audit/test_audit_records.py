"""Deciding through the service with a durable record: what is stored, who sees what, and nothing twice or forked."""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
import threading
from typing import Any

import pytest
from pony import orm

from audit import records, store
from audit.chain import is_decision_id
from audit.db import db, write_session
from audit.governance import GovernanceEvent, record
from audit.masking import MASK
from audit.verify import verify
from engine.errors import CredoError
from engine.library import REPO
from tests.audit.audit_helpers import AS_OF, BOOK, WATCHED, count_rows, draft, publish, varied_case, watchlist_text
from web.services.decisions import Caller, decide_and_record, get_decision, replay
from web.services.errors import Refused

API = Caller("api_key", "key-1")
AUDITOR = Caller("user", "auditor1", can_unmask=False)
KEY_HOLDER = Caller("user", "admin", can_unmask=True)


def test_a_decision_is_answered_with_its_id_and_stored_once(baseline: list) -> None:
    answer = decide_and_record(
        "project-finance",
        BOOK[0],
        caller=API,
        as_of=AS_OF,
        idempotency_key="req-1",
        request_sha256="sha256:" + "1" * 64,
        application_id="APP-1",
    )
    assert is_decision_id(answer["decision_id"])
    assert answer["outcome"] == "approve" and answer["as_of"] == AS_OF.isoformat()
    stored = get_decision(answer["decision_id"], KEY_HOLDER)
    assert stored["seq"] == 1 and stored["caller"] == {"kind": "api_key", "id": "key-1"}
    assert (stored["idempotency_key"], stored["application_id"]) == ("req-1", "APP-1")
    assert stored["request_sha256"] == "sha256:" + "1" * 64
    assert stored["policy"]["name"] == "project-finance" and stored["policy"]["version"] == 1
    assert stored["engine"] == "credo-engine/1 rete"
    assert {tuple(d[:2]) for d in stored["library"]} >= {("credo-facts", 1), ("limits-pricing", 1)}
    assert stored["input"] == BOOK[0]
    assert {k: v for k, v in stored["decision"].items()} == {k: v for k, v in answer.items() if k != "decision_id"}
    assert stored["latency_ms"] > 0
    assert verify().ok


def test_the_same_idempotency_key_answers_the_first_decision_again(baseline: list) -> None:
    first = decide_and_record("project-finance", BOOK[1], caller=API, as_of=AS_OF, idempotency_key="k")
    again = decide_and_record("project-finance", BOOK[1], caller=API, as_of=AS_OF, idempotency_key="k")
    assert again == first and count_rows() == 1
    other_caller = decide_and_record(
        "project-finance", BOOK[1], caller=Caller("api_key", "key-2"), as_of=AS_OF, idempotency_key="k"
    )
    assert other_caller["decision_id"] != first["decision_id"] and count_rows() == 2
    decide_and_record("project-finance", BOOK[2], caller=API, idempotency_key="h", request_sha256="sha256:a")
    with pytest.raises(Refused) as reused:
        decide_and_record("project-finance", BOOK[2], caller=API, idempotency_key="h", request_sha256="sha256:b")
    assert reused.value.code == "idempotency-key-reused" and reused.value.http_status == 409


def test_invalid_cases_and_unknown_policies_leave_no_record(baseline: list) -> None:
    bad = {**BOOK[0], "application": {"amount": "lots", "tenor_months": 84, "product": "project_loan"}}
    with pytest.raises(CredoError) as invalid:
        decide_and_record("project-finance", bad, caller=API)
    assert invalid.value.problems[0].path == "$.application.amount"
    with pytest.raises(Refused) as unknown:
        decide_and_record("no-such-policy", BOOK[0], caller=API)
    assert (unknown.value.code, unknown.value.http_status) == ("unknown-policy", 404)
    with pytest.raises(Refused) as missing:
        get_decision("01ARZ3NDEKTSV4RRFFQ69G5FAV", API)
    assert missing.value.http_status == 404
    assert count_rows() == 0


def test_an_evaluation_failure_follows_on_error_and_is_recorded(
    baseline: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import evaluate

    def fail(self: Any, matcher: Any) -> None:
        raise evaluate.EvaluationError("unique-conflict", "two rows of a unique table matched")

    monkeypatch.setattr(evaluate._State, "run", fail)
    answer = decide_and_record("project-finance", BOOK[0], caller=API, as_of=AS_OF)
    assert answer["outcome"] == "refer" and answer["error"]["code"] == "unique-conflict"
    stored = get_decision(answer["decision_id"], KEY_HOLDER)
    assert stored["decision"]["error"] == answer["error"]
    assert [r["code"] for r in stored["decision"]["reasons"]] == ["R-ERROR"]


def test_readers_without_the_key_see_sensitive_values_masked_everywhere(
    baseline: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(watchlist_text())
    case = varied_case(random.Random(3), 0)
    case["borrower"]["legal_representative"] = WATCHED
    answer = decide_and_record("project-finance", case, caller=API, as_of=AS_OF)
    assert any(WATCHED in a["message"] for a in answer["alerts"])  # the caller gets its own answer in full

    masked = get_decision(answer["decision_id"], AUDITOR)
    text = str(masked["input"]) + str(masked["decision"])
    assert WATCHED not in text and case["borrower"]["name"] not in text
    assert masked["input"]["borrower"]["legal_representative"] == MASK
    assert "$.input.borrower.legal_representative" in masked["masked"]
    assert any(MASK in a["message"] for a in masked["decision"]["alerts"])
    with orm.db_session:  # nor is it anywhere in the stored row
        stored = store.query_one("SELECT input, decision, sealed FROM decision_record")
    assert stored is not None and WATCHED not in "".join(str(v) for v in stored)

    unmasked = get_decision(answer["decision_id"], KEY_HOLDER)
    assert unmasked["input"] == case and unmasked["decision"]["alerts"] == answer["alerts"]
    assert replay(answer["decision_id"])["identical"] is True

    monkeypatch.delenv("CREDO_AUDIT_KEY")  # a reader on a host without the key still reads, masked
    assert get_decision(answer["decision_id"], AUDITOR)["input"]["borrower"]["legal_representative"] == MASK


def test_triggers_reject_update_and_delete_on_both_audit_tables(baseline: list) -> None:
    decide_and_record("project-finance", BOOK[0], caller=API, as_of=AS_OF)
    statements = [
        "UPDATE decision_record SET outcome = 'decline'",
        "DELETE FROM decision_record",
        "UPDATE governance_event SET actor = 'mallory'",
        "DELETE FROM governance_event",
    ]
    if db.provider_name != "sqlite":
        statements += ["TRUNCATE decision_record", "TRUNCATE governance_event"]
    for sql in statements:
        with pytest.raises(Exception) as refused, orm.db_session:
            db.execute(sql)
        assert "insert-only" in str(refused.value), sql
    assert count_rows() == 1 and verify().ok


def test_concurrent_threads_and_processes_never_fork_the_chain(database: Any) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        rng = random.Random(worker)
        try:
            for i in range(25):
                records.append(dataclasses.replace(draft(rng, i), caller_id=f"thread{worker}-{i}"))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)
        finally:
            db.disconnect()

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.audit.append_worker", database.url, "50", f"process{n}"], cwd=REPO, env=env
        )
        for n in range(2)
    ]
    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(timeout=120) for p in processes] == [0, 0]
    assert errors == []
    with orm.db_session:
        rows = store.query("SELECT seq, caller_id FROM decision_record ORDER BY seq")
    assert [r[0] for r in rows] == list(range(1, 4 * 25 + 2 * 50 + 1))
    assert len({r[1] for r in rows}) == len(rows)  # every append is there, once
    report = verify()
    assert report.ok, report.to_dict()


def test_governance_events_for_export_and_purge_join_the_verified_sibling_chain(baseline: list) -> None:
    with write_session():
        record("auditor1", "audit-exported", "decision_record", {"format": "csv"})
    report = verify()
    assert report.governance.ok and report.governance.records >= 2
    with orm.db_session:
        assert GovernanceEvent.get(action="audit-exported") is not None
