"""The channel between the engine and a flow's child: how messages are framed and checked.

engine -> child: one frame holding the `FlowJob`, pickled. The engine is trusted, and the child
runs user code anyway.

child -> engine: never pickle. User code can find its socket and write anything on it, and the
engine process holds credentials, so what a child sends is decoded as JSON plus opaque bytes
and checked against `FIELDS`; anything else raises `ProtocolError` (that flow ends in error,
the engine carries on). A serialized output value stays opaque bytes: the engine stores and
forwards it, and only another flow's child ever loads it.

    frame (socket)   8-byte big-endian body length | 4-byte JSON length | JSON object | bytes
                     (trailing bytes only in an `output` message: the serialized value)
    record (pipe)    LOG_MARK | JSON object | "\\n"

Print entries and log clears are records written to the child's stdout pipe, the pipe that
also carries fd-level stdout and stderr (C extensions, subprocesses): one channel, so the log
keeps the order in which the flow produced its output. The pipe is shared with whatever the
flow starts, so a record that does not parse is shown as text rather than failing the flow.

Messages are tuples, the same on both sides (the runtime emits them, decoding returns them):

    (LOG, entry)                     record  entry: str | {"mime": str, "data": str}
    (CLEAR,)                         record
    (RESULT, name, payload)          frame   payload: {"mime": str, "data": str}
    (OUTPUT, name, value, preview)   frame   value: bytes | Artifact; preview: any JSON (of
                                             at most MAX_CONTAINERS objects and arrays)
    (ERROR, {type, message, traceback, compiled})  frame  compiled: False when the flow's own
                                             code did not compile (no attempt can run it)
    (DONE,)                          frame   the last message of a child that finished
    (ANSWER, status, media_type, body)  frame  an `api` call's answer; body: bytes
"""

from __future__ import annotations

import json
import pickle
import re
import socket
import struct
from collections.abc import Callable
from typing import Any

from dizest_core.errors import ProtocolError
from dizest_core.job import MAX_ARTIFACT_PATH, Artifact, FlowJob

HEADER = struct.Struct(">Q")
META = struct.Struct(">I")
# Starts a record in the pipe; the control characters make an accidental match in user output
# practically impossible (and a deliberate one only forges a log entry of the flow itself).
LOG_MARK = b"\x1edizest\x1f"

LOG = "log"
CLEAR = "clear"
RESULT = "result"
OUTPUT = "output"
ERROR = "error"
DONE = "done"
ANSWER = "answer"
RECORD_KINDS = frozenset({LOG, CLEAR})
FRAME_KINDS = frozenset({RESULT, OUTPUT, ERROR, DONE, ANSWER})

MAX_CONTAINERS = 10_000  # JSON objects and arrays in one message (see `_few_containers`)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included
# ensure_ascii JSON spends at most 12 bytes on one character (a surrogate pair, escaped)
_JSON_BYTES_PER_CHAR = 12
_SLACK = 65_536


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def is_name(value: Any) -> bool:
    """Text Redis and JSON can hold: a str without lone surrogates (an output's name is a key
    of the run's state; `"v\\ud800"` made the worker's write to Redis raise)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_payload(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.keys() == {"mime", "data"}
        and all(isinstance(v, str) for v in value.values())
    )


def _is_entry(value: Any) -> bool:
    return isinstance(value, str) or _is_payload(value)


def _is_artifact(value: Any) -> bool:
    return value is None or (
        isinstance(value, dict)
        and value.keys() == {"path", "size"}
        and isinstance(value["path"], str)
        and len(value["path"].encode()) <= MAX_ARTIFACT_PATH  # resolving 25 MB took an hour
        and type(value["size"]) is int
        and value["size"] >= 0
    )


def _is_json(value: Any) -> bool:
    return True  # it came out of json.loads: JSON by construction


def _is_status(value: Any) -> bool:
    return type(value) is int and 200 <= value <= 599


def _is_media_type(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 200 and value.isprintable()


FIELDS: dict[str, dict[str, Callable[[Any], bool]]] = {
    LOG: {"entry": _is_entry},
    CLEAR: {},
    RESULT: {"name": _is_text, "value": _is_payload},
    OUTPUT: {"name": is_name, "artifact": _is_artifact, "preview": _is_json},
    ERROR: {"type": _is_text, "message": _is_text, "traceback": _is_text, "compiled": _is_bool},
    DONE: {},
    ANSWER: {"status": _is_status, "media_type": _is_media_type},
}


# --------------------------------------------------------------------------- engine -> child


def encode_job(job: FlowJob) -> bytes:
    body = pickle.dumps(job, protocol=5)
    return HEADER.pack(len(body)) + body


def recv_job(sock: socket.socket) -> FlowJob:
    """Read the job frame (blocking, child side); EOFError when the engine closed first."""
    (size,) = HEADER.unpack(_recv_exact(sock, HEADER.size))
    job = pickle.loads(_recv_exact(sock, size))
    if not isinstance(job, FlowJob):
        raise TypeError(f"expected a FlowJob, got {type(job).__name__}")
    return job


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise EOFError("peer closed the channel")
        got += n
    return bytes(buf)


# --------------------------------------------------------------------------- child -> engine


def encode_frame(message: tuple[Any, ...]) -> tuple[bytes, bytes]:
    """A socket message as (frame head, serialized value): sent in two writes, so a large
    value is not copied once more."""
    fields, blob = _fields(message)
    meta = _dumps(fields)
    head = HEADER.pack(META.size + len(meta) + len(blob)) + META.pack(len(meta)) + meta
    return head, blob


def send_frame(sock: socket.socket, message: tuple[Any, ...]) -> None:
    head, blob = encode_frame(message)
    sock.sendall(head)
    if blob:
        sock.sendall(blob)


def encode_record(message: tuple[Any, ...]) -> bytes:
    """A log message as one line for the stdout pipe."""
    fields, _ = _fields(message)
    return LOG_MARK + _dumps(fields) + b"\n"


def _fields(message: tuple[Any, ...]) -> tuple[dict[str, Any], bytes]:
    kind, *args = message
    if kind == OUTPUT:
        name, value, preview = args
        if isinstance(value, Artifact):
            ref = {"path": value.path, "size": value.size}
            return {"kind": kind, "name": name, "artifact": ref, "preview": preview}, b""
        return {"kind": kind, "name": name, "artifact": None, "preview": preview}, bytes(value)
    if kind == ERROR:
        return {"kind": kind, **args[0]}, b""
    if kind == ANSWER:
        status, media_type, body = args
        return {"kind": kind, "status": status, "media_type": media_type}, bytes(body)
    return {"kind": kind, **dict(zip(FIELDS[kind], args, strict=True))}, b""


def _dumps(fields: dict[str, Any]) -> bytes:
    # ASCII only: lone surrogates in user strings survive, and the record holds no raw newline
    return json.dumps(fields, ensure_ascii=True, allow_nan=False).encode("ascii")


def max_frame(job: FlowJob) -> int | None:
    """The largest frame a well-behaved child of `job` sends, or None when the job has no
    artifact directory (then every output value travels inline, whatever its size)."""
    if job.artifact_dir is None:
        return None
    text = 2 * job.max_render_bytes + job.max_preview_bytes  # an error: message + traceback
    return job.inline_max + _JSON_BYTES_PER_CHAR * text + _SLACK


def max_output(job: FlowJob) -> int | None:
    """The bytes of OUTPUT frames a child of `job` may send in all (the engine keeps them), or
    None when the job has no artifact directory (as `max_frame`: then every value travels
    inline)."""
    return None if job.artifact_dir is None else job.max_output


def max_record(job: FlowJob) -> int:
    """The longest record line a well-behaved child of `job` writes (one bounded entry)."""
    return len(LOG_MARK) + _JSON_BYTES_PER_CHAR * job.max_render_bytes + _SLACK


class FrameReader:
    """Incremental parser of a child's frames (engine side, non-blocking): JSON and opaque
    bytes only, every message checked; raises ProtocolError on anything else."""

    def __init__(self, limit: int | None = None, total: int | None = None) -> None:
        self._buf = bytearray()
        self.limit = limit
        self.total = total  # the bytes of all OUTPUT frames together (the engine holds them)
        self.kept = 0

    def feed(self, data: bytes) -> list[tuple[Any, ...]]:
        self._buf += data
        messages = []
        while len(self._buf) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buf)
            if self.limit is not None and size > self.limit:
                raise ProtocolError(f"a frame of {size} bytes (the limit is {self.limit})")
            end = HEADER.size + size
            if len(self._buf) < end:
                break
            with memoryview(self._buf) as view:
                message = decode_frame(view[HEADER.size : end])
            del self._buf[:end]
            if message[0] == OUTPUT and self.total is not None:  # counted once, when complete
                self.kept += size
                if self.kept > self.total:
                    raise ProtocolError(
                        f"over {self.total >> 20} MB of outputs in all "
                        "(DIZEST_MAX_OUTPUT_BYTES; large values go to files)"
                    )
            messages.append(message)
        return messages


def decode_frame(body: bytes | memoryview) -> tuple[Any, ...]:
    """One frame body as a checked message."""
    if len(body) < META.size:
        raise ProtocolError(f"a frame too short to hold a message ({len(body)} bytes)")
    (size,) = META.unpack_from(body)
    if META.size + size > len(body):
        raise ProtocolError(f"a frame that announces {size} bytes of JSON but holds fewer")
    fields = _loads(bytes(body[META.size : META.size + size]))
    message = _message(fields, bytes(body[META.size + size :]))
    if message[0] not in FRAME_KINDS:
        raise ProtocolError(f"a {message[0]} message as a frame (it is a log record)")
    return message


def decode_record(line: bytes) -> tuple[Any, ...]:
    """One record (the line after LOG_MARK) as a checked LOG or CLEAR message."""
    message = _message(_loads(line), b"")
    if message[0] not in RECORD_KINDS:
        raise ProtocolError(f"a {message[0]} message as a log record")
    return message


def _loads(data: bytes) -> Any:
    _few_containers(data)
    try:
        return json.loads(data, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"a message that is not JSON ({type(exc).__name__})") from None


def _few_containers(data: bytes) -> None:
    """Refuse a message of more than MAX_CONTAINERS JSON objects and arrays, before parsing it.
    No message needs many (payloads, previews, errors: a few, holding long strings), and each
    costs ~80 bytes once parsed: a probe's 25 MB frame of `{},` became 8.5 million dicts, 2 GB
    of a worker's or the API's memory. Brackets inside strings do not count."""
    if data.count(b"{") + data.count(b"[") <= MAX_CONTAINERS:
        return  # the usual case, at C speed; else count outside strings only
    bare = _STRING.sub(b"", data)
    found = bare.count(b"{") + bare.count(b"[")
    if found > MAX_CONTAINERS:
        raise ProtocolError(
            f"a message of {found} JSON objects and arrays (at most {MAX_CONTAINERS})"
        )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # 1e999: a report could not be strict JSON
        raise ValueError(f"{text[:20]} overflows a float")
    return value


def _message(fields: Any, blob: bytes) -> tuple[Any, ...]:
    kind = fields.get("kind") if isinstance(fields, dict) else None
    if not isinstance(kind, str) or kind not in FIELDS:
        raise ProtocolError(f"a message of unknown kind {_short(kind)}")
    expected = FIELDS[kind]
    if fields.keys() != {"kind", *expected}:
        raise ProtocolError(f"a {kind} message with fields {_short(sorted(fields))}")
    for name, check in expected.items():
        if not check(fields[name]):
            raise ProtocolError(f"a {kind} message with a malformed {name!r}")
    if kind == OUTPUT:
        ref = fields["artifact"]
        if ref is not None and blob:
            raise ProtocolError("an output message with both a file reference and bytes")
        value = blob if ref is None else Artifact(ref["path"], ref["size"])
        return (OUTPUT, fields["name"], value, fields["preview"])
    if kind == ANSWER:
        return (ANSWER, fields["status"], fields["media_type"], blob)
    if blob:
        raise ProtocolError(f"a {kind} message with trailing bytes")
    if kind == ERROR:
        return (ERROR, {name: fields[name] for name in expected})
    return (kind, *(fields[name] for name in expected))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
