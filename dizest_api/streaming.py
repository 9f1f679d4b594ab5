"""Live run events for SSE and WebSocket clients: replay from the run's stream, then live.

The fan-out is `dizest_api.event_hub` (one pubsub subscription per process, per-client queues,
direct socket writes); this module is one client's side of it.

`follow` registers the client's queue BEFORE replaying the stream, so nothing published while
replaying is missed, and drops live events whose stream id it has already sent. Whenever the hub
(re)subscribes, and whenever a client is idle, it catches up from the stream as well, so an event
lost on pubsub (a reconnect) is still delivered, in order, exactly once.
"""

from __future__ import annotations

import contextlib
import queue
import re
import socket
from collections.abc import Iterator
from typing import Protocol

from dizest_api.event_hub import CLOSING, RESYNC, EventHub, Handback, sse_frame, stream_key
from dizest_core.events import Event
from dizest_core.status import RUN_FINAL_VALUES

STREAM_ID = re.compile(r"^\d+-\d+$")
REPLAY_BATCH = 500


class RunFeed(Protocol):
    """What a stream reads of the cluster: `dizest_worker.client.Client` is one."""

    def record(self, run_id: str) -> dict[str, str] | None: ...

    def event_batch(
        self, run_id: str, after: str | None = None, count: int = 1000
    ) -> list[Event]: ...


def follow(
    hub: EventHub,
    runs: RunFeed,
    run_id: str,
    after: str | None,
    idle_s: float,
    sock: socket.socket | None = None,
) -> Iterator[Event | None]:
    """The run's events after `after`, then live ones, until its final workflow.status.

    Yields None after `idle_s` without an event (a heartbeat). Ends early if the run expires or
    this client was dropped for being too slow. With `sock` (the client's socket, chunked
    HTTP/1.1), live events are written to it by the hub while this generator sleeps.
    """
    sub = hub.subscribe(run_id)  # before replaying: nothing published meanwhile is missed
    try:
        if hub.closing:
            return
        record = runs.record(run_id)
        if record is None:
            return
        ended = record.get("status") in RUN_FINAL_VALUES
        last = after
        first = True
        while True:
            while True:  # catch up from the stream
                batch = runs.event_batch(run_id, last, count=REPLAY_BATCH)
                for event in batch:
                    yield event
                    last = event.id
                    if event.final:
                        return
                if len(batch) < REPLAY_BATCH:
                    break
            if first and ended:  # the client had already seen the final event
                return
            first = False
            adoptable = True  # until refused, then again once the thread acts on a control item
            while True:  # live
                if sub.dropped:
                    return
                if adoptable and sock is not None and sub.sock is None:
                    adoptable = hub.adopt(sub, sock, last)
                try:
                    item = sub.queue.get(timeout=idle_s)
                except queue.Empty:
                    last = hub.release(sub, last)  # the socket is ours again: write
                    if runs.record(run_id) is None:
                        return
                    yield None
                    break  # cheap catch-up: covers anything pubsub may have lost
                last = hub.release(sub, last)
                if isinstance(item, Handback):
                    adoptable = True
                    last = item.last
                    if item.rest and sock is not None and not _send_rest(sock, item.rest, idle_s):
                        return  # the client stopped reading: end, it resumes from `last`
                    if item.done:
                        return
                    continue
                if item is CLOSING:
                    return
                if item is RESYNC:
                    break
                if last is not None and stream_key(item.id) <= stream_key(last):
                    continue
                yield item
                last = item.id
                if item.final:
                    return
    finally:
        hub.release(sub, None)
        hub.unsubscribe(sub)


def _send_rest(sock: socket.socket, rest: bytes, idle_s: float) -> bool:
    """The rest of a chunk the hub could only partly send; False if the client takes longer
    than two heartbeat periods to read it."""
    sock.settimeout(max(2 * idle_s, 1.0))
    try:
        sock.sendall(rest)
        return True
    except OSError:  # the response is cut mid-chunk: close it, never reuse the connection
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return False
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(None)


def sse(events: Iterator[Event | None]) -> Iterator[bytes]:
    """Server-Sent Events text: `id`/`event`/`data` per event, `: heartbeat` when idle."""
    try:
        yield b": stream\n\n"
        for event in events:
            if event is None:
                yield b": heartbeat\n\n"
            else:
                yield sse_frame(event)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
