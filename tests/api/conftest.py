"""The API served for real: create_app() behind werkzeug's threaded server on a free loopback port.

Each test module gets its own database and server, once on a SQLite file and once on the throw-away PostgreSQL
server of tests/web (its fixtures are reused from there), with the baseline rules active, a few demo customers,
underwriters and one API key per scope. Tests talk HTTP to it with `requests`; the server runs in this process,
so a test can also look at the database directly or patch a service to make a failure happen.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

import web.models  # noqa: F401 - the entities must be declared before any bind
from audit.db import bind_database, unbind, upgrade
from engine.library import DEFAULT_RULES
from tests.web.conftest import PostgresDatabase, pg_database, pg_server  # noqa: F401 - shared fixtures
from web.api.auth import create_key
from web.app import create_app
from web.demo import seed_portfolio
from web.services.rules import import_documents
from web.services.users import create_user

KEY_SCOPES = {
    "decide": ["decide"],
    "monitor": ["monitor"],
    "read": ["read"],
    "admin": ["admin"],
    "none": ["audit:read"],  # a valid key that holds no API scope
}
AS_OF = "2026-06-30"
AUDIT_ENV = ("CREDO_AUDIT_KEY_FILE", "CREDO_AUDIT_CHECKPOINT", "CREDO_AUDIT_KEY", "CREDO_AUDIT_CHECKPOINT_CMD")


@dataclass
class Api:
    base: str
    url: str
    dialect: str
    keys: dict[str, str] = field(default_factory=dict)
    session: requests.Session = field(default_factory=requests.Session)

    def request(self, method: str, path: str, key: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if key is not None:
            headers["Authorization"] = f"Bearer {self.keys.get(key, key)}"
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.base + path, headers=headers, **kwargs)

    def get(self, path: str, key: str | None = None, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, key, **kwargs)

    def post(self, path: str, key: str | None = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, key, **kwargs)


@pytest.fixture(scope="session", autouse=True)
def audit_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The audit trail's key and checkpoints in a folder of the run's own, never the repository's instance/.

    Session-wide (the servers are module-wide and read these at each decision), so set on os.environ and restored.
    """
    folder = tmp_path_factory.mktemp("audit")
    saved = {name: os.environ.get(name) for name in AUDIT_ENV}
    os.environ["CREDO_AUDIT_KEY_FILE"] = str(folder / "audit.key")
    os.environ["CREDO_AUDIT_CHECKPOINT"] = str(folder / "checkpoints.jsonl")
    for name in AUDIT_ENV[2:]:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def api_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api-template") / "credo.db"
    upgrade(f"sqlite:///{path}")
    return path


def _populate(api: Api) -> None:
    import_documents(list(DEFAULT_RULES))
    create_user("underwriter1", ["underwriter"])
    create_user("underwriter2", ["underwriter"])
    create_user("admin1", ["admin"])
    seed_portfolio(12)
    for name, scopes in KEY_SCOPES.items():
        api.keys[name] = create_key(f"client-{name}", scopes)
    api.keys["underwriter1"] = create_key("underwriter1", ["decide", "read"])
    api.keys["underwriter2"] = create_key("underwriter2", ["decide", "read"])
    api.keys["admin1"] = create_key("admin1", ["admin"])  # a key of a user who holds the admin role
    # The customers' relationship manager: alerts are assigned to them.
    api.keys["rm"] = create_key("rm01", ["monitor", "read"])


def serve(api: Api) -> Iterator[Api]:
    app = create_app({"DATABASE_URL": api.url, "TESTING": True, "VALIDATE_RESPONSES": True})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="api-server", daemon=True)
    thread.start()
    api.base = f"http://127.0.0.1:{server.server_port}/api/v1"
    try:
        yield api
    finally:
        server.shutdown()
        thread.join(10)
        api.session.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("api") / "credo.db"
        shutil.copyfile(request.getfixturevalue("api_template"), path)
        url = f"sqlite:///{path}"
    else:
        pg: PostgresDatabase = request.getfixturevalue("pg_database")
        pg.reset()
        url = pg.url
    bind_database(url)
    try:
        handle = Api("", url, request.param)
        _populate(handle)
        yield from serve(handle)
    finally:
        unbind()


@pytest.fixture(scope="module")
def sqlite_api(tmp_path_factory: pytest.TempPathFactory, api_template: Path) -> Iterator[Api]:
    """SQLite only: for the slow property tests, which need not run twice."""
    path = tmp_path_factory.mktemp("api-sqlite") / "credo.db"
    shutil.copyfile(api_template, path)
    url = f"sqlite:///{path}"
    bind_database(url)
    try:
        handle = Api("", url, "sqlite")
        _populate(handle)
        yield from serve(handle)
    finally:
        unbind()


def read_case(name: str) -> dict[str, Any]:
    import json

    from engine.library import REPO

    return dict(json.loads((REPO / "examples" / name).read_text(encoding="utf-8")))


def decision_request(name: str = "refer-thin-coverage.json", **extra: Any) -> dict[str, Any]:
    policy = "corporate-term-loan" if name.startswith("corporate") else "project-finance"
    return {"policy": policy, "case": read_case(name), "as_of": AS_OF, **extra}
