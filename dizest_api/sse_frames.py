"""How the live streams put events on the wire: one SSE frame per event, as an HTTP/1.1 chunk,
framed once per batch and shared by every client of a run; and their order (stream ids)."""

from __future__ import annotations

from dizest_core.events import Event


def stream_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def sse_frame(event: Event) -> bytes:
    return f"id: {event.id}\nevent: {event.type}\ndata: {event.wire}\n\n".encode()


def chunk(data: bytes) -> bytes:
    """`data` as one HTTP/1.1 chunk, exactly as gunicorn frames a chunked response's writes."""
    return b"%X\r\n%s\r\n" % (len(data), data)


HEARTBEAT = chunk(b": heartbeat\n\n")  # an SSE comment
LAST_CHUNK = b"0\r\n\r\n"  # a chunked response's end


def newer(events: list[Event], last: str | None) -> list[Event]:
    """The events after `last` in stream order, each once, up to and including a final one."""
    out: list[Event] = []
    key = stream_key(last) if last is not None else (-1, -1)
    for event in events:
        if stream_key(event.id) > key:
            out.append(event)
            key = stream_key(event.id)
            if event.final:
                break
    return out


def frame(event: Event, frames: dict[str, bytes]) -> bytes:
    """`event`'s chunk, kept in `frames` by its id: `frames` must hold one run's events only, a
    stream id being its run's own (two runs' events of the same millisecond have the same)."""
    data = frames.get(event.id)
    if data is None:
        data = frames[event.id] = chunk(sse_frame(event))
    return data
