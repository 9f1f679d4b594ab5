"""Imports no live worker can satisfy, as validation warnings (`missing_module`): the editor
marks the line as it is typed, as an IDE marks an unresolved import, instead of the run failing
with a ModuleNotFoundError minutes in.

A module is missing when its top-level name is neither in the standard library of the workers'
Python nor a top-level module of any live worker's environment (`dizest_worker.packages`: the
modules its installed distributions provide). Not warned: a workflow with its own `executable`
(its environment is not known here), an import inside a `try` that handles ImportError (an
optional dependency), a relative import, and everything when no worker is live (nothing to
check against). Code that does not parse has its syntax error instead.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from dizest_core.errors import Problem
from dizest_core.interpreter import executable_of

HANDLED = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
MAX_WARNINGS = 100  # a package of generated apps gets the first ones, not a page of them


def missing_modules(
    raw: Any, environments: list[dict[str, Any]], unknown_to: str = "no live worker has installed"
) -> list[Problem]:
    """The `missing_module` warnings of package `raw` against `environments` (the live workers'
    by default; `dizest validate`: its own Python's, saying so in `unknown_to`)."""
    if not isinstance(raw, Mapping) or not environments or executable_of(raw) is not None:
        return []
    known = set(sys.stdlib_module_names)
    for env in environments:
        known.update(env.get("modules", ()))
    apps = raw.get("apps")
    found: list[Problem] = []
    for app_id, app in apps.items() if isinstance(apps, Mapping) else ():
        code = app.get("code") if isinstance(app, Mapping) else None
        if not isinstance(code, str) or "import" not in code:
            continue
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue  # its syntax error says what is wrong
        for name, line in _imports(tree):
            if name not in known:
                message = f"line {line}: imports {name!r}, which {unknown_to}"
                found.append(Problem("missing_module", message, app=str(app_id), field="code",
                                     severity="warning"))  # fmt: skip
                if len(found) >= MAX_WARNINGS:
                    return found
    return found


def _imports(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Each absolute import's top-level module name and line, but those under a `try` whose
    handlers catch ImportError."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_handles(h) for h in node.handlers):
            guarded.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.module.split(".")[0], node.lineno


def _handles(handler: ast.ExceptHandler) -> bool:
    """Whether an except clause catches ImportError (bare, or naming it or a parent)."""
    kind = handler.type
    if kind is None:
        return True
    names = kind.elts if isinstance(kind, ast.Tuple) else [kind]
    return any(isinstance(n, ast.Name) and n.id in HANDLED for n in names)
