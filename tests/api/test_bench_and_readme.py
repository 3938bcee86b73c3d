"""bench/api.py runs end to end (no timing is asserted: machines are noisy), and the README's curl example decides."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.library import REPO
from tests.api.conftest import Api


def test_the_api_benchmark_runs_and_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "api.py"), "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Targets:" in run.stdout and "decisions/s" in run.stdout
    figures = json.loads(out.read_text(encoding="utf-8"))
    http, engine = figures["http"], figures["engine_only"]
    assert http["ok"] == http["answered"] > 0 and http["rate"] > 0
    assert 0 < http["p50_ms"] <= http["p99_ms"]
    assert engine["rate"] > 0 and figures["ratio_http_to_engine"] > 0
    floor = figures["server_floor"]
    assert floor["ok"] == floor["answered"] > 0 and floor["server_cpu_ms_per_request"] > 0
    assert floor["answer_bytes"] > 1000  # as large as a decision with its trace
    assert figures["ceiling_engine_only_app"]["rate"] > 0
    assert "server floor" in run.stdout
    assert figures["audit"]["every_answer_recorded"]
    assert set(figures["targets"]) == {"p99_ms", "ratio"}


def readme_curl() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## API", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the API section has a sh block"
    lines = block.group(1).splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.startswith("curl") and "/decisions" in "".join(lines[i : i + 4])
    )
    command = []
    for line in lines[start:]:
        command.append(line)
        if not line.rstrip().endswith("\\"):
            break
    return "\n".join(command)


def test_the_readme_curl_example_returns_a_decision(api: Api) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    command = readme_curl().replace("http://127.0.0.1:8000/api/v1", api.base)
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "CREDO_DEMO_API_KEY": api.keys["underwriter1"]},
    )
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["outcome"] in ("approve", "refer", "decline") and len(decision["decision_id"]) == 26
