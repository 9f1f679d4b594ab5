"""Raw packages for the dwp tests (tests/core/test_dwp*.py): apps, flows wired to sources,
the package around them, and the problems of one code.
"""

from __future__ import annotations

from typing import Any

from dizest_core.errors import Problem


def app(app_id: str, inputs=("x",), outputs=("v",), **extra: Any) -> dict[str, Any]:
    return {
        "id": app_id,
        "title": app_id,
        "code": "pass\n",
        "inputs": [{"type": "output", "name": n} for n in inputs],
        "outputs": [{"name": n} for n in outputs],
        **extra,
    }


def flow(flow_id: str, app_id: str = "node", sources=(), **extra: Any) -> dict[str, Any]:
    """A flow whose input `x` reads output `v` of each source (or (source, output) pairs)."""
    conns = [
        {"node": s, "input": "v"} if isinstance(s, str) else {"node": s[0], "input": s[1]}
        for s in sources
    ]
    raw = {"id": flow_id, "app_id": app_id, "active": True, "data": {}}
    raw["inputs"] = {"x": {"connections": conns}} if conns else {}
    raw.update(extra)
    return raw


def pkg(*flows: dict[str, Any], apps: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apps": apps if apps is not None else {"node": app("node")},
        "flow": {f["id"]: f for f in flows},
    }


def by_code(problems: list[Problem], code: str) -> list[Problem]:
    return [p for p in problems if p.code == code]


def only(problems: list[Problem], code: str) -> Problem:
    found = by_code(problems, code)
    assert len(found) == 1, f"expected one {code!r} problem in {problems}"
    return found[0]
