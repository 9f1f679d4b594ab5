"""Live run events over real HTTP: SSE with resume (Last-Event-ID), WebSocket, the shared hub."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from simple_websocket import ConnectionClosed

from dizest_api.event_hub import RESYNC, EventHub, chunk, hub_for, sse_frame
from dizest_api.streaming import follow
from dizest_worker.state import RedisRuns
from tests.api.test_runs import FANOUT, Live, serve_live, slow
from tests.conftest import wait_for
from tests.ws_client import WsClient


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with serve_live(redis_url, tmp_path_factory.mktemp("live")) as found:
        yield found


def stream_ids(live: Live, run_id: str) -> list[str]:
    assert live.worker_settings is not None
    runs = RedisRuns(redis.Redis.from_url(live.worker_settings.redis_url), live.worker_settings)
    return [e.id for e in runs.events(run_id, count=100_000)]


def open_sse(live: Live, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    url = urlsplit(live.base_url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=15)
    conn.request("GET", f"/api/v1{path}", headers=headers)
    return conn.getresponse()


def read_sse(resp: http.client.HTTPResponse, limit: int | None = None) -> tuple[list[dict], int]:
    """Events (id, event, data) until the stream ends or `limit` events; and heartbeats seen."""
    events: list[dict[str, Any]] = []
    heartbeats, current = 0, {}
    while limit is None or len(events) < limit:
        line = resp.readline().decode()
        if not line:
            break
        line = line.rstrip("\n")
        if line == ": heartbeat":
            heartbeats += 1
        elif line == "" and current:
            events.append(current)
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = value
    for event in events:
        data = json.loads(event["data"])
        assert data["id"] == event["id"] and data["type"] == event["event"]
    return events, heartbeats


def submit(live: Live, headers: dict[str, str], pkg: dict[str, Any]) -> str:
    answer = live.call("POST", "/runs", headers, json={"package": pkg})
    assert answer.status_code == 201, answer.json
    return str(answer.json["run_id"])


def test_sse_resumes_after_a_disconnect_with_every_event_once(live: Live) -> None:
    alice = live.user("alice")
    run_id = submit(live, alice, slow(0.8, steps=3))
    resp = open_sse(live, f"/runs/{run_id}/events", alice)
    assert resp.status == 200 and resp.getheader("Content-Type", "").startswith("text/event-stream")
    assert resp.getheader("Cache-Control") == "no-cache"
    assert resp.getheader("X-Accel-Buffering") == "no"
    first, _ = read_sse(resp, limit=3)
    resp.close()  # disconnect mid-run
    assert len(first) == 3
    resp = open_sse(live, f"/runs/{run_id}/events", {**alice, "Last-Event-ID": first[-1]["id"]})
    rest, heartbeats = read_sse(resp)
    resp.close()
    got = [e["id"] for e in first + rest]
    assert got == stream_ids(live, run_id)  # every event exactly once, in order
    last = json.loads(rest[-1]["data"])
    assert last["type"] == "workflow.status" and last["data"]["status"] == "ready"
    assert heartbeats >= 1  # 0.8 s sleeps, a 0.5 s heartbeat in this app
    # the same with ?after=, from the start, on the finished run
    again, _ = read_sse(open_sse(live, f"/runs/{run_id}/events?after={first[0]['id']}", alice))
    assert [e["id"] for e in again] == got[1:]
    done, _ = read_sse(
        open_sse(live, f"/runs/{run_id}/events", {**alice, "Last-Event-ID": got[-1]})
    )
    assert done == []
    hub = live.app.extensions["dizest.events"]
    wait_for(lambda: hub.clients() == 0, timeout=5)  # the dropped connection was noticed
    bad = open_sse(live, f"/runs/{run_id}/events", {**alice, "Last-Event-ID": "x"})
    assert bad.status == 400


def test_websocket_gives_the_same_events_as_sse(live: Live) -> None:
    alice = live.user("alice")
    run_id = submit(live, alice, slow(0.2, steps=3))
    ws_url = live.base_url.replace("http://", "ws://") + f"/api/v1/runs/{run_id}/ws"
    ws = WsClient.connect(ws_url, headers=alice)
    received: list[dict[str, Any]] = []
    try:
        while True:
            message = ws.receive(timeout=15)
            assert message is not None, "timed out"
            received.append(json.loads(message))
    except ConnectionClosed:
        pass
    ids = [e["id"] for e in received]
    assert ids == stream_ids(live, run_id)
    assert received[-1]["type"] == "workflow.status" and received[-1]["data"]["status"] == "ready"
    sse_events, _ = read_sse(open_sse(live, f"/runs/{run_id}/events", alice))
    assert [json.loads(e["data"]) for e in sse_events] == received
    resumed = WsClient.connect(f"{ws_url}?after={ids[1]}", headers=alice)
    tail: list[str] = []
    try:
        while True:
            message = resumed.receive(timeout=15)
            assert message is not None, "timed out"
            tail.append(json.loads(message)["id"])
    except ConnectionClosed:
        pass
    assert tail == ids[2:]


def test_websocket_and_sse_refuse_anonymous_and_strangers(live: Live) -> None:
    alice, bob = live.user("alice"), live.user("bob")
    run_id = submit(live, alice, FANOUT)
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    path = f"/runs/{run_id}/ws"
    assert open_sse(live, path, upgrade).status == 401
    assert open_sse(live, path, {**upgrade, **bob}).status == 404
    assert open_sse(live, f"/runs/{run_id}/events", {}).status == 401
    assert open_sse(live, f"/runs/{run_id}/events", bob).status == 404
    read_sse(open_sse(live, f"/runs/{run_id}/events", alice))  # wait for the end


def test_hub_drops_a_client_whose_queue_overflows(live: Live) -> None:
    assert live.worker_settings is not None
    channel = f"{live.worker_settings.prefix}:hubtest:{uuid.uuid4().hex}"
    hub = EventHub(live.worker_settings.redis_url, channel, queue_size=2)
    try:
        slow_sub, other = hub.subscribe("r1"), hub.subscribe("r2")
        assert hub.ready.is_set()
        publisher = redis.Redis.from_url(live.worker_settings.redis_url)
        for i in range(5):
            body = {"id": f"{i + 1}-0", "run_id": "r1", "type": "log.clear", "flow_id": "a"}
            publisher.publish(channel, json.dumps(body))
        wait_for(lambda: slow_sub.dropped, timeout=5)
        assert not other.dropped and hub.clients() == 1
    finally:
        hub.close()


def test_an_idle_websocket_is_pinged(live: Live) -> None:
    """At the heartbeat interval (0.5 s here, as for SSE), as idle proxies need."""
    alice = live.user("alice")
    run_id = submit(live, alice, slow(3))
    url = urlsplit(live.base_url)
    try:
        with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
            head = f"GET /api/v1/runs/{run_id}/ws HTTP/1.1\r\nHost: {url.netloc}\r\n"
            head += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            head += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            head += f"Authorization: {alice['Authorization']}\r\n\r\n"
            sock.sendall(head.encode())
            reader = sock.makefile("rb")
            assert b" 101 " in reader.readline()
            while reader.readline() not in (b"\r\n", b""):
                pass
            pings: list[float] = []
            while len(pings) < 2:  # frames until two pings; the 5 s socket timeout bounds it
                first, second = reader.read(2)
                size = second & 0x7F
                if size >= 126:  # server frames are unmasked: only the extended length
                    size = int.from_bytes(reader.read(2 if size == 126 else 8), "big")
                reader.read(size)
                if first & 0x0F == 0x9:
                    pings.append(time.monotonic())
                    sock.sendall(b"\x8a\x80\x00\x00\x00\x00")  # pong (masked, empty): alive
            assert 0.3 <= pings[1] - pings[0] <= 2.0  # at the heartbeat interval
    finally:
        live.call("POST", f"/runs/{run_id}/cancel", alice)


def test_streams_beyond_the_cap_are_refused_with_503(live: Live) -> None:
    limited = live.app_with(max_streams=1)
    alice = limited.user("alice")
    run_id = limited.call("POST", "/runs", alice, json={"package": slow(3)}).json["run_id"]
    hub = hub_for(limited.app)
    held = hub.subscribe("someone-else's-run")
    try:
        upgrade = {"Upgrade": "websocket", "Connection": "Upgrade"}
        upgrade |= {"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}
        for path, extra in ((f"/runs/{run_id}/events", {}), (f"/runs/{run_id}/ws", upgrade)):
            refused = limited.call("GET", path, {**alice, **extra})
            assert refused.status_code == 503, path
            assert refused.json["error"]["code"] == "too_many_streams"
            assert int(refused.headers["Retry-After"]) > 0
        hub.unsubscribe(held)
        first = limited.http.get(f"/api/v1/runs/{run_id}/events", headers=alice, buffered=False)
        assert first.status_code == 200
        first.close()
    finally:
        hub.unsubscribe(held)
        limited.call("POST", f"/runs/{run_id}/cancel", alice)
        hub.close()


def test_shutdown_ends_every_stream_at_once_and_refuses_new_ones(live: Live) -> None:
    other = live.app_with()
    alice = other.user("alice")
    run_id = other.call("POST", "/runs", alice, json={"package": slow(30)}).json["run_id"]
    hub = hub_for(other.app)
    stream = other.http.get(f"/api/v1/runs/{run_id}/events", headers=alice, buffered=False)
    chunks: list[bytes] = []

    def read() -> None:
        for piece in stream.response:
            chunks.append(piece)

    reader = threading.Thread(target=read, daemon=True)
    try:
        reader.start()
        wait_for(lambda: b"event: flow.status" in b"".join(chunks), timeout=10)
        hub.shutdown()
        reader.join(timeout=5)
        assert not reader.is_alive(), "the stream did not end on shutdown"
        assert other.call("GET", f"/runs/{run_id}", alice).json["status"] == "running"
        assert other.call("GET", f"/runs/{run_id}/events", alice).status_code == 503
    finally:
        stream.close()
        other.call("POST", f"/runs/{run_id}/cancel", alice)
        hub.close()


class QuietRuns:
    """A run that exists and whose stream holds nothing yet: every event comes live."""

    def record(self, run_id: str) -> dict[str, str]:
        return {"status": "running"}

    def event_batch(self, run_id: str, after: str | None, count: int) -> list[Any]:
        return []


def live_event(i: int, final: bool = False) -> str:
    body = {"id": f"{i}-0", "run_id": "r1", "type": "log.append", "flow_id": "a"}
    if final:
        body |= {"type": "workflow.status", "data": {"status": "ready"}}
    return json.dumps(body)


def test_direct_writes_deliver_every_event_once_in_order_across_adopt_and_release(
    live: Live,
) -> None:
    """The hub writes to an adopted socket while the client's thread keeps taking it back
    (a 10 ms idle period: heartbeat, catch-up, adopt again) and events keep coming.

    The queue holds every event: a follower thread starved on a loaded machine may fall 1000
    behind while it is not adopted and be dropped, as designed (see the overflow test); that
    ends the stream early, which this test must not take for a loss."""
    assert live.worker_settings is not None
    total = 3000
    channel = f"hubtest:{uuid.uuid4().hex}"
    hub = EventHub(live.worker_settings.redis_url, channel, queue_size=total + 10)
    ours, theirs = socket.socketpair()
    received = bytearray()

    def client_thread() -> None:  # what the WSGI server and sse() do with the yields
        for event in follow(hub, QuietRuns(), "r1", None, 0.01, sock=ours):
            frame = b": heartbeat\n\n" if event is None else sse_frame(event)
            ours.sendall(chunk(frame))

    def read() -> None:
        while chunk_ := theirs.recv(65536):
            received.extend(chunk_)

    reader = threading.Thread(target=read, daemon=True)
    follower = threading.Thread(target=client_thread, daemon=True)
    try:
        reader.start()
        follower.start()
        wait_for(lambda: hub.clients() == 1, timeout=5)
        for i in range(1, total + 1):
            hub._dispatch(live_event(i, final=i == total))
            if i % 100 == 0:
                time.sleep(0.002)  # let the follower cycle through release and adopt
        follower.join(timeout=10)
        assert not follower.is_alive(), "the stream did not end at the final event"
        ours.close()
        reader.join(timeout=5)
        ids = [int(m.split(b"-")[0]) for m in re.findall(rb"id: (\d+-\d+)", bytes(received))]
        assert ids == list(range(1, total + 1))
    finally:
        ours.close()
        theirs.close()
        hub.close()


class BacklogRuns(QuietRuns):
    """While the client replays, `backlog` live events reach the hub, then the hub
    resubscribes (RESYNC): the client's queue holds them all ahead of a control item."""

    def __init__(self, hub: EventHub, backlog: int) -> None:
        self.hub, self.backlog, self.replayed = hub, backlog, False

    def event_batch(self, run_id: str, after: str | None, count: int) -> list[Any]:
        if not self.replayed:
            self.replayed = True
            for i in range(1, self.backlog + 1):
                self.hub._dispatch(live_event(i))
            self.hub._broadcast(RESYNC)
        return []


def test_a_backlog_ahead_of_resync_is_worked_through_once_not_per_event(live: Live) -> None:
    """Adopting is refused while a control item waits; retrying at every event moved the whole
    backlog out of the queue and back under the hub lock each time (quadratic), so the client's
    thread fell behind its own queue and was dropped after ~40 of 3000 events. One event
    arrives per event delivered, as a busy run does, with the queue full all along."""
    assert live.worker_settings is not None
    backlog = 300
    channel = f"hubtest:{uuid.uuid4().hex}"
    hub = EventHub(live.worker_settings.redis_url, channel, queue_size=backlog + 1)
    ready = hub.subscribe("other-run")  # the hub's own first RESYNC goes before ours begins
    wait_for(lambda: not ready.queue.empty(), timeout=5)
    ours, theirs = socket.socketpair()
    received = bytearray()

    def read() -> None:
        while chunk_ := theirs.recv(65536):
            received.extend(chunk_)

    reader = threading.Thread(target=read, daemon=True)
    events = follow(hub, BacklogRuns(hub, backlog), "r1", None, 0.05, sock=ours)
    try:
        reader.start()
        sent = backlog
        for event in events:  # this thread is the client's: the generator only runs in next()
            ours.sendall(chunk(b": heartbeat\n\n" if event is None else sse_frame(event)))
            if sent < 2 * backlog:
                sent += 1
                hub._dispatch(live_event(sent, final=sent == 2 * backlog))
            if event is not None and event.id == f"{backlog}-0":  # the RESYNC is next
                (sub,) = hub._subs["r1"]
                puts_through_backlog = sub.queue.unfinished_tasks
        ours.close()
        reader.join(timeout=5)
        ids = [int(m.split(b"-")[0]) for m in re.findall(rb"id: (\d+-\d+)", bytes(received))]
        assert ids == list(range(1, 2 * backlog + 1))
        assert not sub.dropped
        # Every put into the client's queue counts (nothing calls task_done). Through the
        # backlog: it and the RESYNC, both again for the one refused adopt, and one live event
        # per event delivered; retrying at every event put ~backlog**2 (90,000). After the
        # RESYNC, hand backs re-queue what is left as often as the reader lags: not counted.
        assert puts_through_backlog == 2 * (backlog + 1) + backlog
    finally:
        events.close()
        ours.close()
        theirs.close()
        hub.close()
