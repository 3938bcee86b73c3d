"""Fail closed: when the record cannot be written, the caller gets AuditUnavailable and no decision, and nothing
partial is left: no record, no moved head, a chain that still verifies, and the next decision goes on from it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pony import orm

from audit import store
from audit.db import db, write_session
from audit.errors import AuditUnavailable
from audit.verify import verify
from tests.audit.audit_helpers import AS_OF, BOOK, count_rows, head_row
from web.services.decisions import Caller, decide_and_record

CALLER = Caller("api_key", "key-1")


def _on_this_connection(sql: str) -> None:
    """Run a statement on the connection Pony keeps for this thread (the one the next decision will use)."""
    with orm.db_session:
        db.execute(sql)


def _alter_database(url: str, setting: str) -> None:
    import psycopg2

    connection = psycopg2.connect(url)
    try:
        connection.autocommit = True
        name = url.rsplit("/", 1)[1]
        cursor = connection.cursor()
        cursor.execute("SET default_transaction_read_only = off")  # this session may change it back
        cursor.execute(f"ALTER DATABASE {name} {setting}")
    finally:
        connection.close()


@contextmanager
def read_only(store: Any) -> Iterator[None]:
    if store.dialect == "sqlite":
        _on_this_connection("PRAGMA query_only = ON")  # as root, a chmod would not stop the writes
    else:
        _alter_database(store.url, "SET default_transaction_read_only = on")
        db.disconnect()  # the next connection sees the database read-only
    try:
        yield
    finally:
        if store.dialect != "sqlite":
            _alter_database(store.url, "RESET default_transaction_read_only")
        db.disconnect()  # the next connection is a fresh, writable one


@contextmanager
def lock_held(store: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Another writer holds the lock an append needs; the append's wait is cut to a fraction of a second."""
    if store.dialect == "sqlite":
        _on_this_connection("PRAGMA busy_timeout = 200")  # first: setting it is a write transaction too
        other = sqlite3.connect(store.url.split("sqlite:///", 1)[1], isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
    else:
        import psycopg2

        other = psycopg2.connect(store.url)
        other.cursor().execute("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        monkeypatch.setenv("CREDO_AUDIT_LOCK_TIMEOUT_MS", "200")
    try:
        yield
    finally:
        other.rollback()
        other.close()
        db.disconnect()


@contextmanager
def disk_full(dialect: str) -> Iterator[None]:
    if dialect == "sqlite":
        # The file may not grow by a single page: SQLite answers SQLITE_FULL, exactly as on a full disk.
        with orm.db_session:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
        _on_this_connection(f"PRAGMA max_page_count = {pages}")
        try:
            yield
        finally:
            db.disconnect()
        return
    # PostgreSQL: the server's own disk-full error (SQLSTATE 53100) raised by the insert of the record.
    with write_session():
        cursor = store.write_cursor()  # a plain cursor: Pony's db.execute would read $$ as an escaped $
        cursor.execute(
            "CREATE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER test_disk_full BEFORE INSERT ON decision_record "
            "FOR EACH ROW EXECUTE FUNCTION test_disk_full()"
        )
    try:
        yield
    finally:
        with write_session():
            cursor = store.write_cursor()
            cursor.execute("DROP TRIGGER test_disk_full ON decision_record")
            cursor.execute("DROP FUNCTION test_disk_full()")


def _big_case() -> dict[str, Any]:
    # A record larger than a page, so that it cannot fit in free space left on existing pages.
    case = {**BOOK[0], "application": {**BOOK[0]["application"], "purpose": "solar plant " * 800}}
    return case


@pytest.mark.parametrize("fault", ["read-only", "lock-held", "disk-full"])
def test_no_decision_without_its_record(baseline: list, database: Any, fault: str, monkeypatch: Any) -> None:
    decide_and_record("project-finance", BOOK[0], caller=CALLER, as_of=AS_OF)
    before = (count_rows(), head_row())
    faults = {
        "read-only": lambda: read_only(database),
        "lock-held": lambda: lock_held(database, monkeypatch),
        "disk-full": lambda: disk_full(database.dialect),
    }
    answer = None
    with faults[fault](), pytest.raises(AuditUnavailable) as unavailable:
        answer = decide_and_record("project-finance", _big_case(), caller=CALLER, as_of=AS_OF)
    assert answer is None
    assert unavailable.value.http_status == 503 and unavailable.value.code == "audit-unavailable"
    assert (count_rows(), head_row()) == before  # nothing partial: no record, the head where it was
    assert verify().ok
    after = decide_and_record("project-finance", _big_case(), caller=CALLER, as_of=AS_OF)
    assert count_rows() == before[0] + 1 and after["decision_id"]
    assert verify().ok
