"""Whether an app's code compiles, asked of code any user sent (a validation, a save, a submit:
the API process compiles it, holding the GIL all the while, so every other request of that
process waits).

CPython's parser is quadratic in the length of one dotted name (`import a.a.a...`: each part
joins the name so far anew): 40,000 parts (80 kB) took 1.4 s, 80,000 (160 kB) 16 s of a serve's
GIL during which another user's GET waited as long, and a 10 MB one would take hours. Code with
a dotted name of more than MAX_NAME_PARTS parts is not compiled: that is its problem. (Real code
has a few parts; 1,000 parts a name cost about what any code of the same size costs.) Code too
deep for the parser (`-` or `not` 100,000 times: MemoryError; `a+a+...`: RecursionError) does
not compile, as a flow would find.
"""

from __future__ import annotations

import re
import warnings

MAX_NAME_PARTS = 1000
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


def compile_error(code: str, filename: str) -> tuple[str, int | None] | None:
    """Why `code` does not compile, and on which line if known; None when it compiles."""
    line = long_name_line(code)
    if line is not None:
        return f"a dotted name of more than {MAX_NAME_PARTS} parts, too long to compile", line
    source = code if code.endswith("\n") else code + "\n"
    try:
        with warnings.catch_warnings():  # e.g. invalid escapes: the flow's business
            warnings.simplefilter("ignore")
            compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:  # ValueError: a NUL
        text = getattr(exc, "msg", None) or str(exc) or f"{type(exc).__name__}: too deeply nested"
        return text, getattr(exc, "lineno", None)
    return None
