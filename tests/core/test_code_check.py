"""Which code the compile check (`dizest_core.code_check`, the `syntax_error` warning of every
validation, save and submit) does not compile, and says so: code too deep for the parser, and
a dotted name too long for it (its time is quadratic in one name's length: the API process held
its GIL for 16 s over a 160 kB `import a.a.a...`, every other request of it waiting)."""

from __future__ import annotations

from dizest_core import dwp
from dizest_core.code_check import MAX_CHECKED_CHARS, MAX_NAME_PARTS, compile_error
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
