"""A flow's failure as data: the user's traceback from their first frame on, and code that did
not compile told apart from code that raised (no attempt can run the first, so none is retried),
whatever compiling it raised: SyntaxError, ValueError (a NUL byte), RecursionError (too deep for
the compiler), MemoryError (too deep for the parser)."""

from __future__ import annotations

import linecache
import traceback
from types import CodeType

from dizest_core.code_check import too_slow
from dizest_core.errors import ErrorInfo
from dizest_core.outvalue import as_str


class NotCompiled(Exception):
    """The user's code did not compile (its `__cause__` says why): no attempt can run it."""


def format_error(exc: BaseException, filename: str) -> ErrorInfo:
    """Plain-text traceback from the user's first frame on, with the user's own line numbers;
    for code that did not compile, only what compiling it raised (no frame of ours)."""
    if isinstance(exc, NotCompiled) and exc.__cause__ is not None:
        exc = exc.__cause__
        tb = traceback.TracebackException.from_exception(exc)
        tb.stack = traceback.StackSummary.from_list([])
    else:
        tb = traceback.TracebackException.from_exception(exc)
    frames = list(tb.stack)
    for i, frame in enumerate(frames):
        if frame.filename == filename:
            tb.stack = traceback.StackSummary.from_list(frames[i:])
            break
    message = as_str(exc)
    if isinstance(exc, SystemExit):
        message = f"the flow called sys.exit({exc.code!r}); a flow cannot exit the engine"
    return ErrorInfo(type(exc).__name__, message, "".join(tb.format()).rstrip())


def compile_flow(code: str, filename: str) -> CodeType:
    """`code` compiled as `filename`, its lines put in linecache under that name so that a
    traceback shows the user's source; NotCompiled (from what compile() raised) if it fails."""
    source = code if code.endswith("\n") else code + "\n"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        slow = too_slow(source)  # as validate says it: minutes of compiling, then a kill
        if slow is not None:
            raise SyntaxError(slow[0], (filename, slow[1], None, None))
        return compile(source, filename, "exec")
    except Exception as exc:  # SyntaxError, ValueError (a NUL), RecursionError, MemoryError
        raise NotCompiled(filename) from exc
