"""Every test in tests/web that takes `database` runs twice: on a real SQLite file and on a real PostgreSQL server.

The PostgreSQL server is started once per test run (tests/web/pgserver.py), the migrations build one database,
and each test starts from that database as the migrations left it: every table emptied and the migrations' own
rows put back (CREATE DATABASE from a template costs up to a second; this costs milliseconds). Each SQLite test
gets a file of its own, copied from a migrated one. Without PostgreSQL binaries the postgresql half fails under
CI=true (CI must have installed them: .ci/run does) and is skipped elsewhere, saying why.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import web.models  # noqa: F401 - the entities must be declared before any bind
from audit.db import bind_database, unbind, upgrade
from engine.library import DEFAULT_RULES
from tests.web.pgserver import PostgresServer, find_bin_dir, start_server
from web.services.rules import import_documents
from web.services.users import create_user


@dataclass(frozen=True)
class Store:
    dialect: str
    url: str


@dataclass
class PostgresDatabase:
    url: str
    seed: dict[str, list[tuple]]  # the rows each table held right after the migrations

    def reset(self) -> None:
        import psycopg2

        connection = psycopg2.connect(self.url)
        try:
            with connection, connection.cursor() as cursor:
                # As the superuser, switch off FK triggers so the tables can be emptied in any order.
                cursor.execute("SET session_replication_role = replica")
                for table in self.seed:
                    cursor.execute(f'DELETE FROM "{table}"')
                for table, rows in self.seed.items():
                    for row in rows:
                        marks = ", ".join(["%s"] * len(row))
                        cursor.execute(f'INSERT INTO "{table}" VALUES ({marks})', row)
                cursor.execute("SET session_replication_role = DEFAULT")
        finally:
            connection.close()


@pytest.fixture(scope="session")
def pg_database(pg_server: PostgresServer) -> PostgresDatabase:
    import psycopg2

    url = pg_server.create_database("credo_test")
    upgrade(url)
    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE '%yoyo%'"
            )
            tables = [t for (t,) in cursor.fetchall()]
            seed = {}
            for table in tables:
                cursor.execute(f'SELECT * FROM "{table}"')
                seed[table] = cursor.fetchall()
    finally:
        connection.close()
    return PostgresDatabase(url, seed)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    if find_bin_dir() is None:
        reason = "PostgreSQL server binaries are not installed (apt-get install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the postgresql half", pytrace=False)
        pytest.skip(reason)
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "credo.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        path = tmp_path / "credo.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        pg: PostgresDatabase = request.getfixturevalue("pg_database")
        pg.reset()
        url = pg.url
    bind_database(url)
    try:
        yield Store(request.param, url)
    finally:
        unbind()


@pytest.fixture
def people(database: Store) -> dict[str, str]:
    """Accounts without passwords (no slow hashing): the roles the lifecycle needs, two of some."""
    roles = {
        "alice": ["author"],
        "bob": ["approver"],
        "carol": ["approver"],
        "dave": ["author", "approver"],
        "erin": ["underwriter"],
        "root": ["admin"],
    }
    for name, granted in roles.items():
        create_user(name, granted)
    return {name: name for name in roles}


@pytest.fixture
def baseline(database: Store, people: dict[str, str]) -> list:
    """The repo's rulesets/ and policies/ as active version 1 (a system import)."""
    return import_documents(list(DEFAULT_RULES))
