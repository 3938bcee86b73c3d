"""bench/simulate.py runs end to end on a small book and prints its figures and ratios (the full run is 1M cases)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_runs_and_prints_its_ratios(tmp_path: Path) -> None:
    pytest.importorskip("zen")
    figures = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "simulate.py"), "--rows", "2000", "--sample", "50", "--workers", "2",
         "--data", str(tmp_path), "--json", str(figures)],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr
    for text in ("simulate / hand-written numpy, end to end:", "VectorPlan core / numpy core:",
                 "zen-engine per case / simulate per case:", "durable_rules per case / simulate per case:"):
        assert text in run.stdout
    assert "outcome counts agree with the numpy version: yes" in run.stdout
    result = json.loads(figures.read_text())
    assert result["rows"] == 2000
    assert result["zen_engine"]["outcomes_agree"] == 1.0
    assert set(result["ratios"]) == {
        "simulate_vs_numpy_end_to_end", "vector_core_vs_numpy_core", "zen_per_case_vs_simulate",
        "durable_per_case_vs_simulate", "zen_per_case_vs_vector_core", "durable_per_case_vs_vector_core",
    }
