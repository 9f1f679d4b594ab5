"""Which code the compile check (`dizest_core.code_check`, the `syntax_error` warning of every
validation, save and submit) does not compile, and says so: code too deep for the parser, and
a dotted name too long for it (its time is quadratic in one name's length: the API process held
its GIL for 16 s over a 160 kB `import a.a.a...`, every other request of it waiting)."""

from __future__ import annotations

import ast
from typing import Any, NoReturn

import pytest

from dizest_core import code_check, dwp
from dizest_core.code_check import MAX_CHECKED_CHARS, MAX_NAME_PARTS, compile_error, crowded
from tests.conftest import package


def problems(code: str) -> list[tuple[str, str]]:
    made = package({"a": {"code": code, "outputs": ["v"]}}, {"f": {"app": "a"}})
    return [(p.code, p.message) for p in dwp.check(made)]


def test_a_dotted_name_too_long_to_compile_is_a_syntax_error_named_at_its_line() -> None:
    name = ".".join(["a"] * 60_000)  # ~9 s of compile before (a minute at 150,000 parts)
    said = "a dotted name of more than 1000 parts, too long to compile"
    assert problems(f"v = 1\nimport {name}\n") == [
        (
            "syntax_error",
            f"syntax error in the app's code on line 2: {said}; used by flow(s) 'a' (f)",
        )
    ]
    # however its parts are written: spaced, continued, parts \\w does not take
    for parts in (["a "] * 2000, ["a\\\n"] * 2000, ["a\u0301"] * 2000):
        assert compile_error(f"import {'.'.join(parts)}", "<app a>") == (said, 1)
    fine = ".".join(["a"] * (MAX_NAME_PARTS - 1))
    assert compile_error(f"import {fine}\n" * 50, "<app a>") is None


def keywords(n: int) -> str:
    return ", ".join(f"a{i}=1" for i in range(n))


def test_calls_and_patterns_too_crowded_to_compile_in_time_are_syntax_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CPython's compiler checks each keyword of a call or class pattern, and each key of a
    mapping pattern, against every other: 20,000 keys in one `case {...}` (258 kB) held a
    serve's worker 54 s, past gunicorn's timeout: killed, with every request it held (a probe's
    find). Past a squared count of a million in all, such code is not compiled."""
    mapping = "case {" + ", ".join(f"{i}: a{i}" for i in range(5000)) + "}: pass"
    assert problems(f"v = 1\nmatch v:\n    {mapping}\n") == [
        (
            "syntax_error",
            "syntax error in the app's code on line 3: 5,000 keys in one mapping pattern: too "
            "many to compile in time; used by flow(s) 'a' (f)",
        )
    ]
    said = "5,000 keywords in one class pattern: too many to compile in time"
    assert compile_error(f"match v:\n    case C({keywords(5000)}): pass\n", "<a>") == (said, 2)
    assert crowded(f"f({keywords(20_000)})") == (
        "20,000 keyword arguments in one call: too many to compile in time", 1
    )  # fmt: skip
    # a thousand in one call compiles (as fast as any code of its size), two of 708 do not
    assert compile_error(f"f({keywords(1000)})", "<a>") is None
    assert crowded(f"f({keywords(708)})\ng({keywords(708)})")[1] == 2  # type: ignore[index]
    # a data literal of 300,000 numbers is not even parsed for it: it compiles in linear time
    monkeypatch.setattr(code_check, "ast", Unparsed())
    assert crowded("v = [" + ", ".join(str(i) for i in range(300_000)) + "]") is None
    # a crowded call is (its keywords can't hide from the count of `=`: not behind a comment or
    # a line continuation, as they could from a scan for `name=` after `(` or `,`)
    for gap in (", ", ", # c\n", ",\\\n"):
        with pytest.raises(AssertionError):
            crowded("f(" + gap.join(f"a{i}=1" for i in range(1000)) + ")")


class Unparsed:
    """`ast` as code_check sees it, but for a parse."""

    def __getattr__(self, name: str) -> Any:
        return getattr(ast, name)

    def parse(self, *args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("parsed")


def test_code_too_deep_for_the_parser_is_a_syntax_error_not_a_crash() -> None:
    # the parser's MemoryError: it escaped the check, a 500 of every validate, save and submit
    for deep in ("-" * 100_000 + "1", "not " * 100_000 + "1", "lambda: " * 5000 + "1"):
        assert problems(f"v = {deep}") == [
            ("syntax_error", "syntax error in the app's code: MemoryError: too deeply nested; "
                             "used by flow(s) 'a' (f)")
        ]  # fmt: skip


def test_code_past_what_the_api_compiles_is_not_compiled_and_says_so() -> None:
    """Compiling ordinary code cost the API process ~0.9 us a character of its GIL (a 10 MB
    app: 8.6 s, every other request of that process waiting): a package's code is compiled up
    to MAX_CHECKED_CHARS, its apps in order; those past it are named, unchecked."""
    ordinary = "x = 1\n" * (MAX_CHECKED_CHARS // 6 // 2 + 1)  # a little over half of it
    made = package(
        {
            "a": {"code": ordinary, "outputs": ["v"]},
            "b": {"code": ordinary + "def (:\n", "outputs": ["v"]},
            "c": {"code": "def (:\n", "outputs": ["v"]},
        },
        {"f": {"app": "a"}, "g": {"app": "b"}, "h": {"app": "c"}},
    )
    found = [(p.code, p.app, p.severity) for p in dwp.check(made)]
    assert found == [("code_unchecked", "b", "warning")]
    (message,) = [p.message for p in dwp.check(made)]
    assert message == (
        "the code of app(s) 'b', 'c' is not checked for syntax errors: the package's code is over"
        " 1,000,000 characters; an error shows when their flows run"
    )
