"""The arrows of ARCHITECTURE.md: dizest_core imports no Flask, Celery, Redis, worker or API;
the worker imports no Flask and no API; the API imports of the worker its client and key names
(and, to start, its settings and Redis factory)."""

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


# The service reaches the cluster through one door: `dizest_worker.client` (plus key names). At
# startup it also reads the worker settings (the client is built from them) and opens Redis
# through the one factory (its own data lives in the same Redis).
API_DOOR = {
    "dizest_worker.client",
    "dizest_worker.keys",
    "dizest_worker.settings",
    "dizest_worker.connection",
}
# Modules of dizest_api that start processes, and what each needs for that only.
API_STARTUP = {
    # launches and supervises the workers: clears a dead worker's beat before its restart
    "dizest_api/serve.py": {"dizest_worker.liveness"},
    # tie the API's processes to their parent (PDEATHSIG)
    "dizest_api/supervisor.py": {"dizest_worker.lifeline"},
    "dizest_api/gunicorn_app.py": {"dizest_worker.lifeline"},
    # dizest beat is a Celery process: the same kombu fix as every worker
    "dizest_api/automation/celery_app.py": {"dizest_worker.broker_fix"},
}


def worker_modules(path: Path) -> set[str]:
    """The dizest_worker modules `path` imports, by full name (`from dizest_worker import x`
    counts as `dizest_worker.x`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == "dizest_worker")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "dizest_worker":
                names.update(f"dizest_worker.{a.name}" for a in node.names)
            elif node.module.startswith("dizest_worker."):
                names.add(node.module)
    return names


def test_the_service_reaches_the_cluster_only_through_the_client() -> None:
    files = sorted((ROOT / "dizest_api").rglob("*.py"))
    outside = {}
    for f in files:
        name = str(f.relative_to(ROOT))
        extra = worker_modules(f) - API_DOOR - API_STARTUP.get(name, set())
        if extra:
            outside[name] = sorted(extra)
    assert outside == {}


def client_internals(path: Path) -> list[str]:
    """`<x>.client.<attr>` reaches past the client's methods into its state (RedisRuns, the
    store, its Redis, its Celery app)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in {"runs", "store", "redis", "app"}
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "client"
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} .client.{node.attr}")
    return found


def test_the_service_uses_the_clients_methods_not_its_internals() -> None:
    files = sorted((ROOT / "dizest_api").rglob("*.py"))
    assert [hit for f in files for hit in client_internals(f)] == []


def test_worker_walker_names_modules_in_full(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(
        "from dizest_worker import liveness\nimport dizest_worker.state\n"
        "def f():\n    from dizest_worker.client import Client\n"
    )
    want = {"dizest_worker.liveness", "dizest_worker.state", "dizest_worker.client"}
    assert worker_modules(sample) == want


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
