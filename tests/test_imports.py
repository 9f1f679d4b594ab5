"""The arrows of ARCHITECTURE.md: dizest_core imports no Flask, Celery, Redis, worker or API;
the worker imports no Flask and no API; the API imports of the worker its client and key names
only."""

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


# The service reaches the cluster through one door: `dizest_worker.client` (plus key names).
# What it needs besides Client (the settings it is built from, the Redis factory, liveness, a
# Celery app with the kombu fix) the client re-exports or wraps; no module of the API, not even
# one that starts processes, has an exception.
API_DOOR = {"dizest_worker.client", "dizest_worker.keys"}


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


def past_the_door(path: Path) -> list[str]:
    """The worker modules `path` imports that are neither the client nor the key names."""
    return sorted(worker_modules(path) - API_DOOR)


def test_the_service_reaches_the_cluster_only_through_the_client() -> None:
    files = sorted((ROOT / "dizest_api").rglob("*.py"))
    outside = {str(f.relative_to(ROOT)): past_the_door(f) for f in files}
    assert {f: m for f, m in outside.items() if m} == {}


# The exceptions the door used to grant, as the API wrote them: each is refused now.
FORMER_EXCEPTIONS = [
    "from dizest_worker.settings import WorkerSettings",
    "from dizest_worker.connection import redis_client",
    "from dizest_worker.connection import redact_url",
    "def f():\n    from dizest_worker import liveness",
    "from dizest_worker.lifeline import preexec",
    "from dizest_worker.lifeline import die_with_parent",
    "from dizest_worker import broker_fix",
]


@pytest.mark.parametrize("line", FORMER_EXCEPTIONS)
def test_a_former_exception_is_past_the_door(tmp_path: Path, line: str) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(f"from dizest_worker.client import Client\n{line}\n")
    assert len(past_the_door(sample)) == 1


def test_the_client_and_key_names_are_the_door(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("from dizest_worker.client import Client\nimport dizest_worker.keys\n")
    assert past_the_door(sample) == []


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
