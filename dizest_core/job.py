"""What crosses the boundary between the engine and a flow's child process.

`FlowJob` is everything a child needs to run one flow (sent once, as the first frame); the child
answers with a stream of `Message` tuples. Frames are an 8-byte big-endian length followed by a
pickle: the two sides are always the same dizest version, started by the same engine.
Input values travel already serialized (`bytes`, pickle protocol 5), exactly as the store holds
them, so the engine never unpickles user objects.
"""

from __future__ import annotations

import pickle
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from dizest_core.model import OUTPUT, InputSpec, Package
from dizest_core.settings import Settings

HEADER = struct.Struct(">Q")

# Messages from the child, as tuples whose first item is the kind:
LOG = "log"  # (LOG, entry): entry is a str or a render payload {mime, data}
CLEAR = "clear"  # (CLEAR,)
RESULT = "result"  # (RESULT, name, payload)
OUTPUTS = "outputs"  # (OUTPUTS, {name: (Value, JSON preview)})
ERROR = "error"  # (ERROR, ErrorInfo.to_dict())
DONE = "done"  # (DONE,): the last message of a child that finished (well or not)


@dataclass(frozen=True)
class Artifact:
    """A serialized value kept in a file (large outputs): its path and size in bytes."""

    path: str
    size: int


Value = bytes | Artifact  # a serialized output as stores and jobs carry it


@dataclass(frozen=True)
class FlowJob:
    """One flow attempt, as the child process receives it."""

    run_id: str
    flow_id: str
    app_id: str
    code: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    workdir: str
    title: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    # input name -> the sources' serialized values in package order (None: source has no value)
    sources: dict[str, list[Value | None]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    memory_limit_mb: int | None = None
    max_render_bytes: int = 1_000_000
    max_preview_bytes: int = 65_536
    attempt: int = 1
    # outputs larger than `inline_max` are written by the child to files under `artifact_dir`
    artifact_dir: str | None = None
    inline_max: int = 1 << 20


def build_job(
    package: Package,
    flow_id: str,
    run_id: str,
    values: list[Value | None],
    settings: Settings,
    **fields: Any,
) -> FlowJob:
    """The job of one flow: `values` are its wired inputs' values, in `Package.wired` order;
    `fields` set the rest (workdir, params, memory_limit_mb, attempt, artifact_dir)."""
    flow = package.flows[flow_id]
    app = package.app_of(flow)
    sources: dict[str, list[Value | None]] = {s.name: [] for s in app.inputs if s.type == OUTPUT}
    for (name, _), value in zip(package.wired(flow), values, strict=True):
        sources[name].append(value)
    return FlowJob(
        run_id=run_id,
        flow_id=flow_id,
        app_id=app.id,
        code=app.code,
        inputs=app.inputs,
        outputs=app.outputs,
        title=flow.title,
        data=dict(flow.data),
        sources=sources,
        max_render_bytes=settings.max_render_bytes,
        max_preview_bytes=settings.max_preview_bytes,
        inline_max=settings.inline_max_bytes,
        **fields,
    )


def encode(obj: Any) -> bytes:
    body = pickle.dumps(obj, protocol=5)
    return HEADER.pack(len(body)) + body


def send(sock: socket.socket, obj: Any) -> None:
    sock.sendall(encode(obj))


def recv(sock: socket.socket) -> Any:
    """Read one frame (blocking); EOFError when the peer closed first."""
    (size,) = HEADER.unpack(_recv_exact(sock, HEADER.size))
    return pickle.loads(_recv_exact(sock, size))


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


class FrameReader:
    """Incremental frame parser for the non-blocking side (the engine)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        frames = []
        while len(self._buf) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buf)
            end = HEADER.size + size
            if len(self._buf) < end:
                break
            frames.append(pickle.loads(memoryview(self._buf)[HEADER.size : end]))
            del self._buf[:end]
        return frames
