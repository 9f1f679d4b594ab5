"""Imports no live worker can satisfy, as validation warnings (`missing_module`): the editor
marks the line as it is typed, as an IDE marks an unresolved import, instead of the run failing
with a ModuleNotFoundError minutes in.

A module is missing when its top-level name is neither in the standard library of the workers'
Python nor a top-level module of any live worker's environment (`dizest_worker.packages`: the
modules its installed distributions provide). Not warned: a workflow with its own `executable`
(its environment is not known here), an import inside a `try` that handles ImportError (an
optional dependency), a relative import, and everything when no worker is live (nothing to
check against). Code that does not parse has its syntax error instead.

A check costs the API process its code's syntax tree: ~170-500 bytes and ~0.3-0.6 us of
parsing per character of code (a 10 MB app of `import os` lines held 1.7 GB for 10 s, a
request any reader may make). So an app's code over MAX_CODE_CHARS is not checked (it compiles
as any other; a person does not read such code for its imports), nor code past MAX_CHECKED_CHARS
of a package (its apps in order): one check holds at most ~50 MB and ~0.6 s. The statements
are visited, never the expressions inside them (imports are statements), each once: a `try`
nested 98 deep around 1 MB of code walked it 98 times.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from dizest_core.code_check import MAX_CHECKED_CHARS, long_name_line
from dizest_core.errors import Problem
from dizest_core.interpreter import executable_of

HANDLED = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
MAX_WARNINGS = 100  # a package of generated apps gets the first ones, not a page of them
MAX_CODE_CHARS = 100_000  # one app's code checked at most (~50 MB of syntax tree, 60 ms)
BODIES = ("body", "orelse", "finalbody", "handlers", "cases")  # where statements hold statements


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
    budget = MAX_CHECKED_CHARS
    for app_id, app in apps.items() if isinstance(apps, Mapping) else ():
        code = app.get("code") if isinstance(app, Mapping) else None
        if not isinstance(code, str) or "import" not in code or len(code) > MAX_CODE_CHARS:
            continue
        budget -= len(code)
        if budget < 0:
            break
        if long_name_line(code) is not None:
            continue  # its syntax error says it (the parser's time is quadratic in such a name)
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


def _imports(tree: ast.AST) -> list[tuple[str, int]]:
    """Each absolute import's top-level module name and line, in line order, but those under a
    `try` whose handlers catch ImportError."""
    return sorted(_found(tree), key=lambda found: found[1])


def _found(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """`_imports`, the statements visited once each with whether they are guarded so (the
    expressions inside them never: an import is a statement)."""
    todo: list[tuple[ast.AST, bool]] = [(tree, False)]
    while todo:
        node, guarded = todo.pop()
        handled = isinstance(node, ast.Try | ast.TryStar) and any(map(_handles, node.handlers))
        for field in BODIES:
            for inner in getattr(node, field, ()):
                todo.append((inner, guarded or (handled and field == "body")))
        if guarded:
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
