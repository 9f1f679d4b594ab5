"""Streams on the event hub without HTTP, for the hub tests (tests/api/test_stream*.py,
test_run_channels.py, test_floods.py, test_hub_resync.py): a socket pair through `follow` as a
request's would go, live events published on a run's real channel, what a client read, and
stand-ins for a run's record and stream (quiet, streamed, backlogged).
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from typing import Any

import redis

from dizest_api.event_hub import EventHub, chunk, sse_frame
from dizest_api.handover import HandedOver
from dizest_api.sse_frames import stream_key
from dizest_api.streaming import follow
from dizest_core.events import Event
from dizest_worker.client import run_channel
from tests.conftest import wait_for


class QuietRuns:
    """A run that exists and whose stream holds nothing yet: every event comes live."""

    def record(self, run_id: str) -> dict[str, str]:
        return {"status": "running"}

    def event_batch(self, run_id: str, after: str | None, count: int) -> list[Any]:
        return []


def subscribed(hub: EventHub, run_id: str = "r1") -> str:
    """The run's channel, once Redis holds the hub's subscription to it: nothing published
    there from now on is lost."""
    channel = run_channel(hub.channel, run_id)
    client = redis.Redis.from_url(hub.redis_url)
    try:
        wait_for(lambda: client.pubsub_numsub(channel)[0][1] > 0, timeout=5)
    finally:
        client.close()
    return channel


def live_event(i: int, final: bool = False, run_id: str = "r1") -> str:
    body = {"id": f"{i}-0", "run_id": run_id, "type": "log.append", "flow_id": "a"}
    if final:
        body |= {"type": "workflow.status", "data": {"status": "ready"}}
    return json.dumps(body)


def serve_stream(hub: EventHub, runs: Any, sock: socket.socket, idle_s: float = 0.05) -> bool:
    """What the WSGI server and sse() do with follow's yields, until the hub takes the socket
    over (True) or the stream ends in this thread (False)."""
    try:
        for event in follow(hub, runs, "r1", None, idle_s, sock=sock):
            sock.sendall(chunk(b": heartbeat\n\n" if event is None else sse_frame(event)))
    except HandedOver:
        return True
    return False


def read_all(sock: socket.socket) -> bytes:
    """Until the hub closes the stream (bounded by the socket's timeout)."""
    sock.settimeout(15)
    received = bytearray()
    while piece := sock.recv(65536):
        received.extend(piece)
    return bytes(received)


def event_numbers(received: bytes) -> list[int]:
    return [int(m.split(b"-")[0]) for m in re.findall(rb"id: (\d+-\d+)", received)]


def handed(hub: EventHub, n: int, runs: Any = None) -> list[tuple[socket.socket, socket.socket]]:
    """`n` streams of run r1 handed to the hub (each through follow, as a request would)."""
    pairs = [socket.socketpair() for _ in range(n)]
    for ours, _ in pairs:
        assert serve_stream(hub, runs or QuietRuns(), ours)
    wait_for(lambda: hub.clients() == n, timeout=5)
    return pairs


class StreamedRuns(QuietRuns):
    """Run r1 whose stream holds every event `publish` sent it, as a worker's emit does (the
    stream first, then the channel): what the hub catches a flooding run up from."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def event_batch(self, run_id: str, after: str | None, count: int) -> list[Any]:
        key = stream_key(after) if after is not None else (-1, -1)
        return [e for e in self.events if stream_key(e.id) > key][:count]


def publish(hub: EventHub, numbers: range, final_at: int | None = None, runs: Any = None) -> None:
    publisher, channel = redis.Redis.from_url(hub.redis_url), subscribed(hub)
    try:
        for i in numbers:
            raw = live_event(i, final=i == final_at)
            if isinstance(runs, StreamedRuns):
                runs.events.append(Event.from_dict(json.loads(raw)))
            publisher.publish(channel, raw)
    finally:
        publisher.close()


class BackloggedRuns(QuietRuns):
    """A run whose stream holds events 1..`total` that its client never got live (pubsub lost
    them: the hub resubscribed). While the hub reads the first page of its catch-up, the run's
    last events are published live (`during_catch_up`)."""

    def __init__(self, total: int) -> None:
        self.stream: list[Event] = []
        self.total = total
        self.during_catch_up: Callable[[], None] | None = None

    def event_batch(self, run_id: str, after: str | None, count: int) -> list[Event]:
        hook, self.during_catch_up = self.during_catch_up, None
        if hook is not None:
            hook()
        start = 0 if after is None else int(after.split("-")[0])
        return self.stream[start : start + count]
