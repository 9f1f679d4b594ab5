"""Which imports of an app's code `dizest_api.import_check` warns of: those whose top-level
module is neither in the standard library nor among the live workers' modules, but not an
optional import (under a `try` that handles ImportError), a relative one, code that does not
parse, a workflow with its own executable, or anything when no worker is live."""

from __future__ import annotations

import tracemalloc
from typing import Any

from dizest_api.import_check import MAX_CHECKED_CHARS, MAX_CODE_CHARS, MAX_WARNINGS, missing_modules

ENVS = [{"python": "3.11.7", "workers": ["w1"], "packages": [], "modules": ["numpy", "yaml"]}]
CODE = """import os.path, numpy as np
import torch.nn
from sklearn.linear_model import LinearRegression
from yaml import safe_load
from . import sibling
try:
    import cupy
except ImportError:
    cupy = None
try:
    import jax
except (ValueError, ModuleNotFoundError):
    jax = None
try:
    import polars
except KeyError:
    pass
def later():
    import tensorflow
"""


def warned(raw: Any, envs: list[dict[str, Any]] = ENVS) -> list[tuple[str, str | None, str]]:
    return [(p.code, p.app, p.message) for p in missing_modules(raw, envs)]


def test_imports_no_worker_has_are_warned_at_their_line() -> None:
    problems = missing_modules({"apps": {"a": {"code": CODE}}, "flow": {}}, ENVS)
    assert {(p.severity, p.field) for p in problems} == {("warning", "code")}
    assert warned({"apps": {"a": {"code": CODE}}}) == [
        (
            "missing_module",
            "a",
            f"line {line}: imports {name!r}, which no live worker has installed",
        )
        for name, line in (("torch", 2), ("sklearn", 3), ("polars", 15), ("tensorflow", 19))
    ]


def test_no_warning_without_workers_or_with_an_executable_or_a_syntax_error() -> None:
    assert warned({"apps": {"a": {"code": CODE}}}, []) == []
    assert warned({"apps": {"a": {"code": CODE}}, "executable": "/opt/env/bin/python"}) == []
    assert warned({"apps": {"a": {"code": "import torch\nif x\n"}}}) == []
    for hostile in (None, [], {"apps": []}, {"apps": {"a": None}}, {"apps": {"a": {"code": 3}}}):
        assert warned(hostile) == []


def test_a_package_of_many_missing_imports_gets_the_first_ones() -> None:
    code = "\n".join(f"import missing{n}" for n in range(MAX_WARNINGS + 50))
    assert len(warned({"apps": {"a": {"code": code}}})) == MAX_WARNINGS


def test_a_check_parses_a_bounded_share_of_the_code_and_holds_little_memory() -> None:
    """Any reader may ask for a validation: a 2 MB app of `import` lines held ~350 MB of syntax
    tree in the API process (a 10 MB one 1.7 GB, for 10 s). An app over MAX_CODE_CHARS is not
    checked, nor apps past MAX_CHECKED_CHARS of code, in order; the others are as before."""
    huge = "import gone_huge\n" + "import os\n" * 200_000
    tracemalloc.start()
    try:
        assert warned({"apps": {"big": {"code": huge}}}) == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, peak

    filler = "\n" + "import os\n" * ((MAX_CODE_CHARS - 100) // 10)
    apps = {f"a{n:02}": {"code": f"import gone_{n:02}{filler}"} for n in range(30)}
    fit = MAX_CHECKED_CHARS // len(apps["a00"]["code"])
    assert 0 < fit < 30
    assert [app for _, app, _ in warned({"apps": apps})] == [f"a{n:02}" for n in range(fit)]
