"""Whether an app's code compiles, asked of code any user sent (a validation, a save, a submit:
the API process compiles it, holding the GIL all the while, so every other request of that
process waits).

CPython's parser is quadratic in the length of one dotted name (`import a.a.a...`: each part
joins the name so far anew): 40,000 parts (80 kB) took 1.4 s, 80,000 (160 kB) 16 s of a serve's
GIL during which another user's GET waited as long, and a 10 MB one would take hours. Code with
a dotted name of more than MAX_NAME_PARTS parts is not compiled: that is its problem. (Real code
has a few parts; 1,000 parts a name cost about what any code of the same size costs.) Its
compiler checks each keyword argument of a call, key of a mapping pattern and keyword of a class
pattern against every other one: 20,000 of them in one construct took 2.3 s (call), 33 s (class
pattern) and 54 s (mapping pattern, 258 kB), and a gunicorn worker was killed at its timeout
with every request it held (a probe's find). Code whose constructs hold more than
MAX_SQUARED_ITEMS of them, counted squared, is not compiled either (one construct of 1,000; a
mapping pattern of that size compiles in ~0.14 s). Code too deep for the parser (`-` or `not`
100,000 times: MemoryError; `a+a+...`: RecursionError) does not compile, as a flow would find.
A flow's own process makes the same checks before it compiles its code (`flowerror`): such
code fails its flow at once, never retried, instead of holding its slot for minutes.

Ordinary code costs ~0.9 us and ~100 bytes of the API process a character to compile (a 10 MB
app: 8.6 s of its GIL, 1 GB more at its peak). So a package's code is checked up to
MAX_CHECKED_CHARS, its apps in order (~0.9 s at most): an app past it is not compiled here, and
says so; a syntax error in it shows when its flows run, as in DIZEST.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

from dizest_core.errors import Problem

if TYPE_CHECKING:
    from dizest_core.model import Package

MAX_NAME_PARTS = 1000
MAX_SQUARED_ITEMS = 1_000_000  # sum over one code's calls and patterns of their items, squared
MAX_CHECKED_CHARS = 1_000_000  # a package's code the API compiles (or parses) at most
_DELIMITERS = r"\s.\\'\"()\[\]{},:;=+\-*/%&|^~<>!@#`"
# a dotted name's parts and dots, whitespace and line continuations between (more than Python
# takes: any run of non-delimiters is a part); each character is looked at a bounded number of
# times: a chain starts only after a delimiter, and its parts and separators are possessive
_CHAIN = re.compile(
    rf"(?<![^{_DELIMITERS}])[^{_DELIMITERS}]++(?:[\s\\]*+\.[\s\\]*+[^{_DELIMITERS}]++)++"
)


def long_name_line(code: str) -> int | None:
    """The line of the first dotted name of more than MAX_NAME_PARTS parts, if there is one."""
    if code.count(".") < MAX_NAME_PARTS:
        return None
    for found in _CHAIN.finditer(code):
        if code.count(".", found.start(), found.end()) >= MAX_NAME_PARTS:
            return code.count("\n", 0, found.start()) + 1
    return None


def crowded(code: str) -> tuple[str, int] | None:
    """The construct that makes the squared count of `code`'s keyword arguments and pattern
    keys pass MAX_SQUARED_ITEMS, said, and its line; None when it stays under (or the code does
    not parse: compiling it says why). Parsed only when it has enough `=` (a keyword argument or
    pattern has one each) or, with a `case`, `:` (a mapping pattern's key has one) for that:
    not for a data literal of a million numbers, which compiles in linear time."""
    items = code.count("=") + (code.count(":") if "case" in code else 0)
    if items < MAX_SQUARED_ITEMS**0.5:  # then the sum of their squares is under too
        return None
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    total = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            count, what = len(node.keywords), "keyword arguments in one call"
        elif isinstance(node, ast.MatchMapping):
            count, what = len(node.keys), "keys in one mapping pattern"
        elif isinstance(node, ast.MatchClass):
            count, what = len(node.kwd_patterns), "keywords in one class pattern"
        else:
            continue
        total += count * count
        if total > MAX_SQUARED_ITEMS:
            return f"{count:,} {what}: too many to compile in time", node.lineno
    return None


def too_slow(code: str) -> tuple[str, int] | None:
    """Why compiling `code` would take too long (see the module's docstring), and the line."""
    line = long_name_line(code)
    if line is not None:
        return f"a dotted name of more than {MAX_NAME_PARTS} parts, too long to compile", line
    return crowded(code)


def compile_error(code: str, filename: str) -> tuple[str, int | None] | None:
    """Why `code` does not compile, and on which line if known; None when it compiles."""
    slow = too_slow(code)
    if slow is not None:
        return slow
    source = code if code.endswith("\n") else code + "\n"
    try:
        with warnings.catch_warnings():  # e.g. invalid escapes: the flow's business
            warnings.simplefilter("ignore")
            compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:  # ValueError: a NUL
        text = getattr(exc, "msg", None) or str(exc) or f"{type(exc).__name__}: too deeply nested"
        return text, getattr(exc, "lineno", None)
    return None


SYNTAX_ERROR = "syntax_error"  # a warning: stored and run (see below); `dizest validate` fails
CODE_UNCHECKED = "code_unchecked"  # a warning: apps past what the API compiles (code_check)


def syntax_problems(package: Package) -> list[Problem]:
    """A `syntax_error` for each app of the file whose code does not compile, naming the app,
    the flows that use it, and the line: the error a flow would otherwise hit only when it runs.
    A warning: as DIZEST, such a package is stored and run, its flows ending in error (the
    SyntaxError their reason), their downstream not run. Plugin apps are not checked here."""
    own = package.raw.get("apps")
    users: dict[str, list[str]] = {}
    for flow in package.flows.values():
        users.setdefault(flow.app_id, []).append(flow.id)
    problems: list[Problem] = []
    budget, unchecked = MAX_CHECKED_CHARS, []
    for app_id, app in package.apps.items():
        if not isinstance(own, Mapping) or app_id not in own or not app.code:
            continue
        budget -= len(app.code)
        if budget < 0:  # (code_check: what compiling costs the API process)
            unchecked.append(app_id)
            continue
        error = compile_error(app.code, f"<app {app_id}>")
        if error is not None:
            (text, line), flows = error, users.get(app_id, [])
            named = (package.flow_name(f) for f in flows[:5])
            used = f"; used by flow(s) {', '.join(named)}" if flows else ""
            used += f" and {len(flows) - 5} more" if len(flows) > 5 else ""
            where = f" on line {line}" if line else ""
            message = f"syntax error in the app's code{where}: {text}{used}"
            first = flows[0] if flows else None
            problems.append(Problem(SYNTAX_ERROR, message, first, app_id, "code", "warning"))
    if unchecked:
        apps = ", ".join(repr(a) for a in unchecked[:5])
        apps += f" and {len(unchecked) - 5} more" if len(unchecked) > 5 else ""
        message = (
            f"the code of app(s) {apps} is not checked for syntax errors: the package's code is"
            f" over {MAX_CHECKED_CHARS:,} characters; an error shows when their flows run"
        )
        problems.append(Problem(CODE_UNCHECKED, message, None, unchecked[0], "code", "warning"))
    return problems
