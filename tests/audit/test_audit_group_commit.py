"""Group commit: appends from many threads share transactions, yet each thread returns only with its own record
committed, a failed group fails every request in it, and idempotency holds inside a group."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from typing import Any

import pytest
from pony import orm

from audit import records, store
from audit.db import db
from audit.errors import AuditUnavailable
from audit.verify import verify
from tests.audit.audit_helpers import count_rows, draft

THREADS = 8
EACH = 15


def _drafts(worker: int, n: int) -> list[records.Draft]:
    rng = random.Random(worker)
    return [dataclasses.replace(draft(rng, i), caller_id=f"w{worker}-{i}") for i in range(n)]


def _committed(caller_id: str) -> bool:
    """Read on a connection of its own: sees only what is committed."""
    with orm.db_session:
        return store.query_one("SELECT 1 FROM decision_record WHERE caller_id = ?", (caller_id,)) is not None


def test_threads_share_transactions_and_return_only_once_their_record_is_committed(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[int] = []
    real = records.append_many

    def slow_group(drafts: list[records.Draft], **kwargs: Any) -> list[records.Appended]:
        groups.append(len(drafts))
        time.sleep(0.02)  # a slow disk: the threads arriving meanwhile queue for the next group
        return real(drafts, **kwargs)

    monkeypatch.setattr(records, "append_many", slow_group)
    not_yet_durable: list[str] = []
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for item in _drafts(worker, EACH):
                appended = records.append(item)
                if appended.existing or not _committed(item.caller_id):
                    not_yet_durable.append(item.caller_id)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)
        finally:
            db.disconnect()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and not_yet_durable == []
    assert sum(groups) == THREADS * EACH == count_rows()
    assert len(groups) < THREADS * EACH and max(groups) > 1  # records did share transactions
    with orm.db_session:
        seqs = [r[0] for r in store.query("SELECT seq FROM decision_record ORDER BY seq")]
    assert seqs == list(range(1, THREADS * EACH + 1))
    report = verify()
    assert report.ok, report.to_dict()


def test_a_failed_group_fails_every_request_in_it_and_leaves_nothing(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered = threading.Event()
    release = threading.Event()
    real = records.append_many
    calls = 0

    def failing_group(drafts: list[records.Draft], **kwargs: Any) -> list[records.Appended]:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first group holds the writer's turn until the others have queued
            entered.set()
            release.wait(5)
            return real(drafts, **kwargs)
        raise AuditUnavailable("the decision record could not be written (OperationalError)")

    monkeypatch.setattr(records, "append_many", failing_group)
    outcomes: dict[str, Any] = {}

    def work(name: str, item: records.Draft) -> None:
        try:
            outcomes[name] = records.append(item)
        except AuditUnavailable as exc:
            outcomes[name] = exc
        finally:
            db.disconnect()

    first = threading.Thread(target=work, args=("first", _drafts(0, 1)[0]))
    first.start()
    assert entered.wait(5)
    queued = [threading.Thread(target=work, args=(f"q{n}", _drafts(n + 1, 1)[0])) for n in range(3)]
    for t in queued:
        t.start()
    time.sleep(0.2)  # let them queue behind the first group
    release.set()
    for t in [first, *queued]:
        t.join()
    assert isinstance(outcomes["first"], records.Appended)
    failures = [outcomes[f"q{n}"] for n in range(3)]
    assert all(isinstance(f, AuditUnavailable) and f.code == "audit-unavailable" for f in failures)
    assert len({id(f) for f in failures}) == 3  # each thread raises an exception of its own
    assert calls == 2  # the three queued requests were one group
    assert count_rows() == 1 and verify().ok


def test_one_idempotency_key_twice_in_a_group_is_recorded_once(database: Any) -> None:
    item = dataclasses.replace(_drafts(1, 1)[0], idempotency_key="key-1")
    other = dataclasses.replace(_drafts(2, 1)[0], idempotency_key="key-2")
    first, again, second = records.append_many([item, dataclasses.replace(item, application_id="B"), other])
    assert not first.existing and again.existing and again.decision_id == first.decision_id
    assert not second.existing and second.seq == first.seq + 1
    later = records.append(dataclasses.replace(item, application_id="C"))
    assert later.existing and later.decision_id == first.decision_id
    assert count_rows() == 2 and verify().ok
