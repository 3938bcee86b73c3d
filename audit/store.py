"""Plain SQL over the bound Pony database, for the decision log.

The log does not map Pony entities: its tables are read in pages and written in bulk, and an entity declared after
`bind_database()` (the web layer binds before audit modules load) could not be mapped anyway. Statements are
written with `?` marks and adapted to psycopg2's `%s`.

- Writes run inside `audit.db.write_session()` on `db.get_connection()`: SQLite's BEGIN IMMEDIATE, or a PostgreSQL
  transaction in which the head row is locked FOR UPDATE; Pony commits it when the session ends.
- Reads use the session's connection without starting a write transaction (SQLite autocommit; PostgreSQL
  autocommit unless the session already writes), so a long verify or export never holds the write lock. Inside
  a caller's transaction they read through it, and so see its uncommitted rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from pony import orm

from audit.db import db


def dialect() -> str:
    return "sqlite" if db.provider_name == "sqlite" else "postgresql"


def adapt(sql: str) -> str:
    return sql if dialect() == "sqlite" else sql.replace("?", "%s")


def for_update() -> str:
    return " FOR UPDATE" if dialect() == "postgresql" else ""


def write_cursor() -> Any:
    """A cursor in the current write transaction (call inside write_session)."""
    return db.get_connection().cursor()


def read_cursor() -> Any:
    """A cursor on the session's connection that does not start a write transaction.

    Pony has no public call for this; `prepare_connection_for_query_execution` is what its own `db.select` uses.
    """
    if orm.core.local.db_session is None:
        raise RuntimeError("read_cursor() needs a db_session")
    return db._get_cache().prepare_connection_for_query_execution().cursor()


def query(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    cursor = read_cursor()
    if dialect() == "sqlite":
        return _sqlite_query(cursor, adapt(sql), tuple(params))
    cursor.execute(adapt(sql), tuple(params))
    return [tuple(row) for row in cursor.fetchall()]


def _sqlite_query(cursor: Any, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    # Pony decodes every text value with a Python function (undecodable bytes become U+FFFD); verify and export
    # read millions of them, so the page is first read with sqlite3's own decoder, and with Pony's if that fails.
    connection = cursor.connection
    pony_factory = connection.text_factory
    connection.text_factory = str
    try:
        cursor.execute(sql, params)
        return cursor.fetchall()
    except sqlite3.OperationalError as exc:
        if "decode" not in str(exc):
            raise
    finally:
        connection.text_factory = pony_factory
    cursor = connection.cursor()
    cursor.execute(sql, params)
    return cursor.fetchall()


def query_one(sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
    rows = query(sql, params)
    return rows[0] if rows else None


__all__ = ["adapt", "dialect", "for_update", "query", "query_one", "read_cursor", "write_cursor"]
