"""bench/engine.py --quick runs end to end and reports every figure; no timing is asserted (machines are noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTENDERS = ("credo", "credo_reference", "zen", "host")
POLICIES = ("project-finance", "synthetic-200", "synthetic-1000")


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("zen")
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "engine.py"), "--quick", "--json", str(out)],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Targets:" in run.stdout
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return data


def test_every_contender_has_positive_figures(figures: dict[str, Any]) -> None:
    assert set(figures["policies"]) == set(POLICIES)
    for label, bench in figures["policies"].items():
        assert bench["info"]["rules"] >= {"project-finance": 40, "synthetic-200": 200, "synthetic-1000": 1000}[label]
        for name in CONTENDERS:
            contender = bench["contenders"][name]
            for key in ("rate", "p50_us", "p99_us"):
                assert contender[key] > 0, (label, name, key)
            assert contender["rounds"], (label, name)
        for ratio, value in bench["ratios"].items():
            assert value is not None and value > 0, (label, ratio)


def test_zen_translation_agrees_with_credo(figures: dict[str, Any]) -> None:
    for label, bench in figures["policies"].items():
        assert bench["checks"]["zen_agreement"] >= 0.99, label


def test_compile_time_and_targets_are_reported(figures: dict[str, Any]) -> None:
    compile_figures = figures["compile"]
    assert compile_figures["rules"] >= 1000
    assert compile_figures["median_s"] > 0
    assert all(run["total_s"] > 0 for run in compile_figures["runs"])
    verdicts = {t["name"]: t["verdict"] for t in figures["targets"]}
    assert len(verdicts) == 4
    assert set(verdicts.values()) <= {"PASS", "MISS"}
