"""The done criterion, as a person would do it: a demo database, decisions through `credo decide --record`, then
`credo audit verify`, `replay`, `export`, `checkpoint` and `purge`, each a real process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from engine.library import REPO

CREDO = [sys.executable, "-m", "web.cli"]


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CREDO, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_the_audit_commands_on_a_demo_database(tmp_path: Path, audit_env: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'credo.db'}",
        "CREDO_DEMO_PASSWORD": "demo-password-for-tests",
        "PYTHONPATH": str(REPO),
    }
    init = _run(env, "db", "init", "--customers", "0")
    assert init.returncode == 0, init.stderr

    book = ("examples/book.jsonl", "--as-of", "2026-06-30")
    decided = _run(env, "decide", "--record", "--policy", "project-finance", *book)
    assert decided.returncode == 0, decided.stderr
    lines = [json.loads(line) for line in decided.stdout.splitlines()]
    plain = _run(env, "decide", "--policy", "project-finance", *book)

    # the same JSON lines as `credo decide`, plus each decision's id. The database's copies of the baseline carry
    # version numbers (1) where files carry none, with the very same text digests; a policy's digest covers its
    # parts' versions, so it differs with them.
    def unversioned(decision: dict) -> dict:
        out = {k: v for k, v in decision.items() if k != "decision_id"}
        out["policy"] = out["policy"]["name"]
        out["rulesets"] = [{**r, "version": None} for r in out["rulesets"]]
        out["scorecard"] = {**out["scorecard"], "version": None}
        return out

    from_files = [json.loads(line) for line in plain.stdout.splitlines()]
    assert [unversioned(line) for line in lines] == [unversioned(line) for line in from_files]
    ids = [line["decision_id"] for line in lines]
    assert len(set(ids)) == len(ids) == 6

    verified = _run(env, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "decisions: 6 records (seq 1..6): intact" in verified.stdout

    replayed = _run(env, "audit", "replay", ids[1])
    assert (replayed.returncode, replayed.stdout.strip()) == (0, f"{ids[1]}: identical")
    against = _run(env, "audit", "replay", ids[1], "--against", "limits-pricing@1", "--json")
    assert json.loads(against.stdout)["identical"] is True

    exported = _run(env, "audit", "export", "--as", "auditor1", "--format", "csv", "--outcome", "refer")
    assert exported.returncode == 0, exported.stderr
    rows = exported.stdout.splitlines()
    assert rows[0].startswith("seq,decision_id,at,") and len(rows) == 1 + sum(x["outcome"] == "refer" for x in lines)
    out = tmp_path / "all.jsonl"
    assert _run(env, "audit", "export", "--as", "auditor1", "--output", str(out)).returncode == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["decision_id"] for r in records] == ids
    assert records[0]["input"]["borrower"]["name"] == "***"  # masked for a reader of the export

    shown = json.loads(_run(env, "audit", "show", ids[0], "--unmask").stdout)
    assert shown["input"]["borrower"]["name"] != "***"

    checkpoint = _run(env, "audit", "checkpoint")
    assert checkpoint.returncode == 0 and "checkpoint: seq 6" in checkpoint.stdout
    refused = _run(env, "audit", "purge", "--before", "2999-01-01", "--as", "admin")
    assert refused.returncode == 3 and "retention-floor" in refused.stderr

    # Tamper behind the log's back: verify names the record and exits 1.
    connection = sqlite3.connect(tmp_path / "credo.db")
    connection.execute("DROP TRIGGER decision_record_no_update")
    connection.execute("UPDATE decision_record SET outcome = 'approve' WHERE seq = 4")
    connection.commit()
    connection.close()
    broken = _run(env, "audit", "verify")
    assert broken.returncode == 1 and "FIRST BAD seq 4" in broken.stdout

    # And the decision path fails closed when the record cannot be written (here: an unusable audit key, so the
    # sensitive fields cannot be sealed): no decision is printed, and nothing is recorded.
    blocked = _run(
        {**env, "CREDO_AUDIT_KEY": "not-a-fernet-key"}, "decide", "--record", "--policy", "project-finance", *book
    )
    assert blocked.returncode == 2 and blocked.stdout == "" and "audit-key-invalid" in blocked.stderr
    connection = sqlite3.connect(tmp_path / "credo.db")
    assert connection.execute("SELECT COUNT(*) FROM decision_record").fetchone()[0] == 6
    connection.close()
