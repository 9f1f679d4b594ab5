"""Which imports of an app's code `dizest_api.import_check` warns of: those whose top-level
module is neither in the standard library nor among the live workers' modules, but not an
optional import (under a `try` that handles ImportError), a relative one, code that does not
parse, a workflow with its own executable, or anything when no worker is live."""

from __future__ import annotations

from typing import Any

from dizest_api.import_check import MAX_WARNINGS, missing_modules

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
