"""`credo keys` and `credo serve` as an operator runs them; `flask --app web` and the docs page."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from audit.db import upgrade
from engine.library import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A demo database made the README's way: `credo db init`."""
    path = tmp_path_factory.mktemp("cli") / "credo.db"
    url = f"sqlite:///{path}"
    init = credo(url, "db", "init", "--customers", "5", env={"CREDO_DEMO_PASSWORD": "credo-demo-2026"})
    assert init.returncode == 0, init.stderr
    upgrade(url)
    return url


def credo(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "web.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": url, **(env or {})},
        timeout=120,
    )


def test_keys_create_list_revoke(database: str) -> None:
    created = credo(database, "keys", "create", "los-prod", "--scopes", "decide,read")
    assert created.returncode == 0, created.stderr
    token = created.stdout.splitlines()[-1]
    assert re.fullmatch(r"credo_[A-Za-z0-9_-]{40,}", token)  # the token alone on the last line
    assert "shown this once" in created.stderr
    listing = credo(database, "keys", "list")
    assert listing.returncode == 0 and token not in listing.stdout  # never shown again
    row = next(line for line in listing.stdout.splitlines() if "los-prod" in line)
    prefix = row.split()[0]
    assert token.startswith(prefix) and "decide,read" in row and "active" in row
    as_json = credo(database, "keys", "list", "--json")
    assert '"scopes": ["decide", "read"]' in as_json.stdout
    underwriter = credo(database, "keys", "create", "desk", "--scopes", "decide", "--owner", "underwriter1")
    assert underwriter.returncode == 0
    assert "underwriter1" in credo(database, "keys", "list").stdout
    bad = credo(database, "keys", "create", "x", "--scopes", "decide,everything")
    assert bad.returncode == 3 and "everything" in bad.stderr
    nobody = credo(database, "keys", "create", "x", "--scopes", "read", "--owner", "nobody")
    assert nobody.returncode == 3
    dead = credo(database, "keys", "create", "never-alive", "--scopes", "read", "--expires-days", "0")
    assert dead.returncode == 2 and "--expires-days" in dead.stderr
    assert "never-alive" not in credo(database, "keys", "list", "--all").stdout
    revoked = credo(database, "keys", "revoke", prefix, "--as", "admin")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert prefix not in credo(database, "keys", "list").stdout
    assert prefix in credo(database, "keys", "list", "--all").stdout


def wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 30) -> requests.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"nothing answered at {url}")


def serve(command: list[str], url: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@pytest.mark.parametrize("how", ["credo serve", "flask --app web run"])
def test_the_development_servers_answer_on_the_database_url(database: str, how: str) -> None:
    port = free_port()
    if how == "credo serve":
        command = [sys.executable, "-m", "web.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    else:
        command = [sys.executable, "-m", "flask", "--app", "web", "run", "--host", "127.0.0.1", "--port", str(port)]
    process = serve(command, database, port)
    try:
        health = wait_for(f"http://127.0.0.1:{port}/api/v1/health", process)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        token = credo(database, "keys", "create", f"serve-{port}", "--scopes", "decide").stdout.splitlines()[-1]
        case = (REPO / "examples" / "approve-energy.json").read_bytes()
        body = b'{"policy": "project-finance", "as_of": "2026-06-30", "case": ' + case + b"}"
        decided = requests.post(
            f"http://127.0.0.1:{port}/api/v1/decisions",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=30,
        )
        assert decided.status_code == 200 and decided.json()["outcome"] == "approve"
    finally:
        stop(process)


def test_the_docs_page_works_offline(database: str) -> None:
    port = free_port()
    process = serve([sys.executable, "-m", "web.cli", "serve", "--port", str(port)], database, port)
    try:
        base = f"http://127.0.0.1:{port}"
        page = wait_for(f"{base}/api/v1/docs", process)
        assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets and all(a.startswith("/api/v1/") for a in assets), assets  # nothing from elsewhere
        for asset in assets:
            assert requests.get(base + asset, timeout=10).status_code == 200, asset
        script = requests.get(base + "/api/v1/static/docs.js", timeout=10).text
        assert "http://" not in script and "https://" not in script
        spec = requests.get(f"{base}/api/v1/openapi.json", timeout=10).json()
        assert spec["openapi"].startswith("3.1") and "/api/v1/decisions" in spec["paths"]
        assert requests.get(base + "/", timeout=10, allow_redirects=False).status_code in (301, 302)
    finally:
        stop(process)


def test_config_layers(tmp_path: Path) -> None:
    from web.config import load_config

    instance = tmp_path / "credo.toml"
    instance.write_text('MAX_CONTENT_LENGTH = 2000\nLOG_LEVEL = "DEBUG"\nDEBUG = true\n', encoding="utf-8")
    env = {"CREDO_CONFIG": str(instance), "CREDO_LOG_LEVEL": "WARNING", "DATABASE_URL": "sqlite:///x.db"}
    config = load_config(env=env)
    assert config["MAX_CONTENT_LENGTH"] == 2000  # the instance file over the default
    assert config["LOG_LEVEL"] == "WARNING"  # the environment over the instance file
    assert config["DATABASE_URL"] == "sqlite:///x.db"
    assert config["DEBUG"] is False  # no layer turns the debugger on
    assert load_config({"IDEMPOTENCY_TTL_DAYS": 1}, env={})["IDEMPOTENCY_TTL_DAYS"] == 7
    assert "DEMO_PASSWORD" not in load_config(env={"CREDO_DEMO_PASSWORD": "secret"})
