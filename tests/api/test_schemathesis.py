"""schemathesis against the served OpenAPI document, with and without a key: no 5xx, no answer off its schema.

The schemathesis CLI runs in a subprocess against the real server (examples, coverage, fuzzing and stateful
phases; the stateful phase follows the document's links from POST /decisions to the decision's other
operations). Every check runs except `positive_data_acceptance`: a schema-valid request may still be refused
for what no schema can say (a case that does not match the policy's facts, an Idempotency-Key reused with
another body, an id that names nothing), and those refusals are 4xx by design. A fixed seed and a bounded count
of examples per operation keep the run reproducible and near a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import Api

EXAMPLES = int(os.environ.get("CREDO_SCHEMATHESIS_EXAMPLES", "20"))


def run_schemathesis(api: Api, tmp_path: Path, *headers: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        api.base + "/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        "20260630",
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
    ]
    for header in headers:
        command += ["--header", header]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
        timeout=600,
    )


def summary(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.parametrize("authenticated", [True, False], ids=["with-key", "without-key"])
def test_no_server_errors_and_no_schema_violations(sqlite_api: Api, tmp_path: Path, authenticated: bool) -> None:
    headers = [f"Authorization: Bearer {sqlite_api.keys['admin']}"] if authenticated else []
    result = run_schemathesis(sqlite_api, tmp_path, *headers)
    text = summary(result)
    assert "Server error" not in text and "violates schema" not in text, text
    assert result.returncode == 0, text
    assert "15 selected / 15 total" in result.stdout, text
