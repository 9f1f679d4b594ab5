"""A flow's output on its way out of the child: serialized once, previewed cheaply.

Why its own module: large outputs (issue 12) must cost about their own size and no more. The
pickle is written as the pickler produces it (`_Spill`): the first `inline_max` bytes stay in
memory, and once a value outgrows that everything goes straight to the attempt's artifact file,
so a 100 MB value is never copied into a 100 MB pickle in memory (the pickler hands large
bytes/array buffers to `write` as they are, without a copy). The preview reads only what it
shows: a huge bytes or str is sliced before `repr`, a huge container goes through `reprlib`,
never `repr` or `json.dumps` of the whole value. Artifacts stay ordinary protocol-5 pickles in
files, so the consumer's `pickle.load` and every other reader are unchanged.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import reprlib
from typing import Any

from dizest_core.job import Artifact, FlowJob, Value

_SLICED = (str, bytes, bytearray)
_CONTAINERS = (list, tuple, dict, set, frozenset)


def serialize(value: Any) -> bytes:
    """Pickle protocol 5 in memory (values too small for an artifact, or no artifact dir)."""
    buf = io.BytesIO()
    _dump(value, buf)
    return buf.getvalue()


def store(job: FlowJob, value: Any, inline_max: int | None = None) -> Value:
    """The serialized output as the engine gets it: bytes up to `inline_max` (default
    `job.inline_max`), else an Artifact file in the attempt's artifact folder, written without
    holding the pickle."""
    folder = job.artifact_folder()
    if folder is None:
        return serialize(value)
    spill = _Spill(folder, job.inline_max if inline_max is None else inline_max)
    try:
        _dump(value, spill, spill.reset)
        return spill.finish()
    except BaseException:
        spill.discard()
        raise


def _dump(value: Any, target: Any, reset: Any = None) -> None:
    """Plain pickle first (faster on large data); functions and classes defined in flow code
    (module `__dizest_flow__`, which no other process can import) need cloudpickle, by value,
    so the consuming flow can load them. A failed first try leaves partial output: `reset`
    (or truncating the buffer) starts the target again."""
    try:
        pickle.dump(value, target, protocol=5)
    except Exception:
        import cloudpickle  # only when needed: most flows never pay for the import

        if reset is not None:
            reset()
        else:
            target.seek(0)
            target.truncate()
        cloudpickle.dump(value, target, protocol=5)


class _Spill:
    """A write-only file object for the pickler: memory up to `limit` bytes, then a file."""

    def __init__(self, folder: str, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self.buf = io.BytesIO()
        self.fh: io.BufferedWriter | None = None
        self.path = ""
        self.size = 0

    def write(self, data: Any) -> int:
        n = memoryview(data).nbytes  # bytes, memoryview or pickle.PickleBuffer
        if self.fh is None and self.size + n <= self.limit:
            self.buf.write(data)
        else:
            if self.fh is None:
                self._open()
            assert self.fh is not None
            self.fh.write(data)
        self.size += n
        return n

    def _open(self) -> None:
        os.makedirs(self.folder, exist_ok=True)
        self.path = os.path.join(self.folder, f"{len(os.listdir(self.folder))}.pkl")
        self.fh = open(self.path, "wb")  # noqa: SIM115 - closed by finish() or discard()
        self.fh.write(self.buf.getbuffer())
        self.buf = io.BytesIO()

    def finish(self) -> Value:
        if self.fh is None:
            return self.buf.getvalue()
        self.fh.close()
        return Artifact(self.path, self.size)

    def reset(self) -> None:
        self.discard()
        self.buf = io.BytesIO()
        self.size = 0

    def discard(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None
            os.unlink(self.path)


def preview(value: Any, limit: int) -> Any:
    """The JSON form of an output for reports, or {"$type", "$repr"} when it has none (bounded)."""
    cls = type(value)
    huge = isinstance(value, _SLICED + _CONTAINERS) and len(value) > limit
    if not huge:  # a container of more than `limit` items cannot have JSON within `limit`
        try:
            text = json.dumps(value, allow_nan=False)
            if len(text) <= limit:
                return json.loads(text)
        except (TypeError, ValueError, RecursionError):
            pass
    if huge and isinstance(value, _SLICED):
        rep = _safe_repr(value[:limit])
        rep = rep[: max(limit - 60, 0)] + f"... [truncated, {len(value)} items in all]"
    elif huge:
        rep = _short.repr(value)
    else:
        rep = as_str(value) if cls.__repr__ is object.__repr__ else _safe_repr(value)
    if len(rep) > limit:
        rep = rep[: limit - 40] + f"... [truncated {len(rep) - limit + 40} characters]"
    return {"$type": f"{cls.__module__}.{cls.__qualname__}", "$repr": rep}


_short = reprlib.Repr()
_short.maxlist = _short.maxtuple = _short.maxset = _short.maxfrozenset = _short.maxdict = 100
_short.maxstring = _short.maxother = 200


def as_str(value: Any) -> str:
    try:
        return str(value)
    except Exception as exc:
        return f"<unprintable {type(value).__name__}: {exc}>"


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:
        return f"<unrepresentable {type(value).__name__}: {exc}>"
