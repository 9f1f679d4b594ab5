"""Live run events for SSE and WebSocket clients: replay from the run's stream, then live.

The fan-out is `dizest_api.event_hub` (one pubsub subscription per process); this module is one
client's side of it.

`follow` registers the client's queue BEFORE replaying the stream, so nothing published while
replaying is missed, and drops live events whose stream id it has already sent. Given the
client's socket (SSE under `dizest serve`), it then hands the socket to the hub, which writes
the rest of the stream itself, and ends with `HandedOver`: the stream holds no thread. Otherwise
it goes on from its queue; whenever the hub (re)subscribes, and whenever the client is idle, it
catches up from the stream as well, so an event lost on pubsub (a reconnect) is still delivered,
in order, exactly once.
"""

from __future__ import annotations

import queue
import re
import socket
from collections.abc import Iterator

from dizest_api import handover
from dizest_api.event_hub import CLOSING, RESYNC, EventHub, Subscription
from dizest_api.handover import HandedOver
from dizest_api.sse_frames import sse_frame, stream_key
from dizest_api.stream_owner import REPLAY_BATCH, RunFeed
from dizest_core.events import Event
from dizest_core.status import RUN_FINAL_VALUES

__all__ = ["REPLAY_BATCH", "STREAM_ID", "RunFeed", "follow", "sse"]

# Redis's are two 64-bit numbers; ASCII digits only (`\d` takes any script's) and matched whole
# (`$` takes a trailing newline): Redis refused what slipped through, after the stream began
STREAM_ID = re.compile(r"[0-9]{1,19}-[0-9]{1,19}")


def follow(
    hub: EventHub,
    runs: RunFeed,
    run_id: str,
    after: str | None,
    idle_s: float,
    sock: socket.socket | None = None,
    status: str | None = None,
    opened: tuple[Subscription, list[Event]] | None = None,
) -> Iterator[Event | None]:
    """The run's events after `after`, then live ones, until its final workflow.status.

    Yields None after `idle_s` without an event (a heartbeat). Ends early if the run expires or
    this client was dropped for being too slow. `status`: the run's, when the caller has just
    read its record. With `sock` (the client's socket, a chunked HTTP/1.1 response whose every
    yield so far is written), the hub takes the socket over with the replay's last batch and
    this raises `HandedOver`. `opened`: the run's subscription and the first batch after
    `after`, read after it was taken (`follow_run`), instead of subscribing and reading here.
    """
    # before replaying: nothing published meanwhile is missed
    sub, read = opened if opened is not None else (hub.subscribe(run_id), None)
    try:
        if hub.closing:
            return
        if status is None:
            record = runs.record(run_id)
            if record is None:
                return
            status = record.get("status")
        ended = status in RUN_FINAL_VALUES
        last = after
        first = True
        while True:
            while True:  # catch up from the stream
                batch = read if read is not None else runs.event_batch(run_id, last, REPLAY_BATCH)
                read = None
                if first and sock is not None and len(batch) < REPLAY_BATCH:
                    if not (ended and not batch) and hub.own(sub, sock, last, runs, batch):
                        raise HandedOver()  # the hub writes that batch, then live events
                    sock = None  # refused (dropped, stopping): this thread ends the stream
                if first:  # this thread writes events from here: it no longer sets a stream up
                    handover.leave_gate()
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
            while True:  # live
                if sub.dropped or hub.closing:
                    return
                try:
                    item = sub.queue.get(timeout=idle_s)
                except queue.Empty:
                    if runs.record(run_id) is None:
                        return
                    yield None
                    break  # cheap catch-up: covers anything pubsub may have lost
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
        hub.unsubscribe(sub)


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
