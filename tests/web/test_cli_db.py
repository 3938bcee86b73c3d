"""`credo db`, `credo rules` and `credo customers` as a user runs them: subprocesses, exit codes and reasons."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.library import REPO
from tests.web.conftest import Store
from web.cli import main
from web.services.users import create_user

LIMITS = (REPO / "rulesets" / "limits-pricing.yaml").read_text(encoding="utf-8")


def credo(database: Store, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATABASE_URL": database.url, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "web.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environment,
        timeout=120,
    )


def run(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """The same entry point in this process (a subprocess costs a second): the test's database is already bound."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


def test_db_init_and_the_rules_lifecycle_from_the_command_line(
    database: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real processes for the steps that matter most; the rest through main() in this process.
    monkeypatch.setenv("DATABASE_URL", database.url)
    init = credo(database, "db", "init", "--customers", "5", env={"CREDO_DEMO_PASSWORD": ""})
    assert init.returncode == 0, init.stderr
    assert "imported 9 documents" in init.stdout and "limits-pricing@1" in init.stdout
    assert "approver1" in init.stdout and "seeded 5 synthetic customers" in init.stdout
    again = run(capsys, "db", "init")
    assert again.returncode == 3 and "already-initialised" in again.stderr

    listing = run(capsys, "rules", "list", "--status", "active")
    assert listing.returncode == 0 and "credo-facts@1" in listing.stdout and "project-finance@1" in listing.stdout

    create_user("dave", ["author", "approver"])  # one person with both roles, to show four eyes
    benign = tmp_path / "limits-pricing.yaml"
    benign.write_text(LIMITS.replace("Dynamic credit limits,", "Dynamic credit limits (cli),"), encoding="utf-8")
    draft = credo(database, "rules", "draft", str(benign), "--as", "dave")
    assert (draft.returncode, draft.stdout.strip()) == (0, "limits-pricing@2"), draft.stderr
    assert run(capsys, "rules", "submit", "limits-pricing@2", "--as", "dave").returncode == 0

    self_approval = credo(database, "rules", "approve", "limits-pricing@2", "--as", "dave")
    assert self_approval.returncode == 3
    assert "refused (four-eyes)" in self_approval.stderr and "Traceback" not in self_approval.stderr
    no_role = run(capsys, "rules", "approve", "limits-pricing@2", "--as", "author1")
    assert no_role.returncode == 3 and "missing-role" in no_role.stderr
    assert run(capsys, "rules", "approve", "limits-pricing@2", "--as", "approver1").returncode == 0
    published = credo(database, "rules", "publish", "limits-pricing@2", "--as", "approver1")
    assert (published.returncode, published.stdout.strip()) == (0, "limits-pricing@2: active")

    show = run(capsys, "rules", "show", "limits-pricing")
    assert "# limits-pricing@2 (ruleset) active" in show.stdout and "(cli)" in show.stdout
    diff = run(capsys, "rules", "diff", "limits-pricing@1", "limits-pricing@2")
    assert "+  Dynamic credit limits (cli)," in diff.stdout

    failing = tmp_path / "failing.yaml"
    failing.write_text(LIMITS.replace("""- ["'A'", 60]""", """- ["'A'", 70]"""), encoding="utf-8")
    assert run(capsys, "rules", "draft", str(failing), "--as", "author1").stdout.strip() == "limits-pricing@3"
    refused = credo(database, "rules", "submit", "limits-pricing@3", "--as", "author1")
    assert refused.returncode == 3 and "tests-failed" in refused.stderr and "rate_add_bps" in refused.stderr

    exported = run(capsys, "rules", "export", str(tmp_path / "out"))
    assert exported.returncode == 0
    assert (tmp_path / "out" / "rulesets" / "limits-pricing.yaml").read_text(encoding="utf-8") == benign.read_text(
        encoding="utf-8"
    )

    case = run(capsys, "customers", "case", "C00001", "--as-of", "2026-03-31")
    assert case.returncode == 0 and '"financials"' in case.stdout
    unknown = run(capsys, "customers", "case", "NOPE")
    assert unknown.returncode == 3 and "unknown-customer" in unknown.stderr


def test_db_upgrade_creates_a_fresh_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'credo.db'}"
    first = subprocess.run(
        [sys.executable, "-m", "web.cli", "db", "upgrade", "--database", url], capture_output=True, text=True, cwd=REPO
    )
    assert first.returncode == 0 and "0001_initial" in first.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "web.cli", "rules", "list", "--database", "mysql://x/y"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert bad.returncode == 2 and "bad-database-url" in bad.stderr
