"""The arrows of ARCHITECTURE.md: dizest_core imports no Flask, Celery, Redis, worker or API;
the worker imports no Flask and no API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "dizest_core": {
        "flask",
        "flask_sock",
        "celery",
        "kombu",
        "redis",
        "dizest_worker",
        "dizest_api",
        "dizest_cli",
    },
    "dizest_worker": {"flask", "flask_sock", "dizest_api", "dizest_cli"},
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_import_direction(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package} has no modules"
    broken = {
        str(f.relative_to(ROOT)): sorted(imported_modules(f) & FORBIDDEN[package]) for f in files
    }
    assert {f: m for f, m in broken.items() if m} == {}


def test_walker_sees_nested_and_from_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    import redis.client\n    from flask import Flask\n")
    assert imported_modules(sample) == {"redis", "flask"}
