"""House rules that code review would otherwise have to remember."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "engine": {"flask", "pony", "web", "audit", "werkzeug"},
    "audit": {"flask", "web"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_dependencies_point_one_way() -> None:
    wrong = []
    for package, forbidden in FORBIDDEN.items():
        for path in python_files(package):
            bad = imported_modules(path) & forbidden
            if bad:
                wrong.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert wrong == []


def test_engine_package_exists_and_is_checked() -> None:
    # The rule above must not pass vacuously.
    assert len(python_files("engine")) >= 10


def test_only_the_runtime_touches_durable_rules() -> None:
    users = []
    for package in ("engine", "audit", "web"):
        for path in python_files(package):
            if {"durable", "durable_rules_engine"} & imported_modules(path):
                users.append(str(path.relative_to(ROOT)))
    assert users == ["engine/runtime.py"]


def test_no_unsafe_yaml_loading() -> None:
    for package in ("engine", "audit", "web"):
        for path in python_files(package):
            text = path.read_text(encoding="utf-8")
            assert "yaml.load(" not in text and "full_load" not in text and "unsafe_load" not in text, path
