"""tests/audit runs on both databases through tests/web's fixtures; every test gets its own key and checkpoint file."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.web.conftest import (  # noqa: F401 - fixtures, registered here by being imported
    Store,
    baseline,
    database,
    people,
    pg_database,
    pg_server,
    sqlite_template,
)

TEST_KEY = Fernet.generate_key().decode("ascii")


@pytest.fixture(autouse=True)
def audit_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkpoint file and an audit key of this test's own; never the developer's instance/ files."""
    checkpoints = tmp_path / "audit-checkpoints.jsonl"
    monkeypatch.setenv("CREDO_AUDIT_CHECKPOINT", str(checkpoints))
    monkeypatch.setenv("CREDO_AUDIT_KEY", TEST_KEY)
    monkeypatch.setenv("CREDO_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    for name in ("CREDO_AUDIT_CHECKPOINT_CMD", "CREDO_AUDIT_CHECKPOINT_EVERY", "CREDO_AUDIT_RETENTION_MONTHS"):
        monkeypatch.delenv(name, raising=False)
    return checkpoints
