"""Live run events over real HTTP: SSE with resume (Last-Event-ID), WebSocket, the shared hub,
a stream handed over to it (its hub-side helpers: tests/api/hub_streams.py)."""

from __future__ import annotations

import http.client
import json
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

from dizest_api.event_hub import EventHub, hub_for
from dizest_core.events import Event
from dizest_worker.state import RedisRuns
from tests.api.hub_streams import (
    QuietRuns,
    event_numbers,
    live_event,
    read_all,
    serve_stream,
    subscribed,
)
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
        elif line == "":  # the end of a frame; after a comment (a heartbeat) it ends nothing
            if current:
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


@pytest.mark.parametrize("after", ["%D9%A1%D9%A2-0", "1700000000000-0%0A", "1-%EF%BC%91"])
def test_an_event_id_of_other_digits_or_a_newline_is_refused_before_any_stream(
    live: Live, after: str
) -> None:
    """`\\d` took Arabic-Indic or full-width digits and `$` a trailing newline: Redis refused
    them after the stream had begun (SSE cut after its first line, a 500 written into an
    upgraded WebSocket, a traceback in the log)."""
    alice = live.user("alice")
    run_id = submit(live, alice, slow(0.05, steps=1))
    sse = open_sse(live, f"/runs/{run_id}/events?after={after}", alice)
    assert sse.status == 400 and json.loads(sse.read())["error"]["code"] == "bad_request"
    url = urlsplit(live.base_url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=15)
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
    conn.request("GET", f"/api/v1/runs/{run_id}/ws?after={after}", headers={**alice, **upgrade})
    ws = conn.getresponse()
    assert ws.status == 400, ws.status  # refused at the handshake, not after a 101
    assert json.loads(ws.read())["error"]["code"] == "bad_request"


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
        r1 = subscribed(hub, "r1")
        for i in range(5):
            body = {"id": f"{i + 1}-0", "run_id": "r1", "type": "log.clear", "flow_id": "a"}
            publisher.publish(r1, json.dumps(body))
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


def test_a_stream_handed_to_the_hub_gets_every_event_once_in_order_and_ends(live: Live) -> None:
    """Events keep coming while the client's thread replays and hands its socket over: those
    queued meanwhile go first, then live ones; the thread is free at once, and the hub ends
    the chunked response after the final event and closes the socket."""
    assert live.worker_settings is not None
    total = 3000
    hub = EventHub(live.worker_settings.redis_url, f"hubtest:{uuid.uuid4().hex}", total + 10)
    ours, theirs = socket.socketpair()
    handed: list[bool] = []
    follower = threading.Thread(target=lambda: handed.append(serve_stream(hub, QuietRuns(), ours)))
    try:
        follower.start()
        wait_for(lambda: hub.clients() == 1, timeout=5)  # subscribed: nothing is missed
        for i in range(1, total + 1):
            hub._dispatch(live_event(i, final=i == total))
            if i == 10:
                wait_for(lambda: not follower.is_alive(), timeout=10)
        assert handed == [True]  # the thread returned long before the run ended
        received = read_all(theirs)
        assert event_numbers(received) == list(range(1, total + 1))
        assert received.endswith(b"0\r\n\r\n")  # the response's last chunk, then EOF
        wait_for(lambda: hub.clients() == 0, timeout=5)
    finally:
        ours.close()
        theirs.close()
        hub.close()


class BacklogRuns(QuietRuns):
    """While the client replays, `backlog` live events reach the hub, then the hub
    resubscribes (RESYNC); the run's stream holds `stream` events pubsub never delivered."""

    def __init__(self, hub: EventHub, backlog: int, stream: int) -> None:
        self.hub, self.backlog, self.stream, self.replayed = hub, backlog, stream, False

    def event_batch(self, run_id: str, after: str | None, count: int) -> list[Any]:
        if not self.replayed:
            self.replayed = True
            for i in range(1, self.backlog + 1):
                self.hub._dispatch(live_event(i))
            self.hub._subscribed(None)  # as when the hub resubscribes
            return []
        start = int(after.split("-")[0]) + 1 if after else 1
        ids = range(start, min(self.stream, start + count - 1) + 1)
        return [Event.from_dict(json.loads(live_event(i))) for i in ids]


def test_a_backlog_and_resync_during_the_replay_are_delivered_once_after_the_handover(
    live: Live,
) -> None:
    """The queue holds a backlog and a RESYNC when the socket is handed over: the backlog goes
    out first, then the hub catches the stream up from the run's stream (events pubsub lost),
    then live events, each once, in order."""
    assert live.worker_settings is not None
    backlog, stream = 300, 400
    hub = EventHub(live.worker_settings.redis_url, f"hubtest:{uuid.uuid4().hex}", backlog + 1)
    ready = hub.subscribe("other-run")  # the hub's own first RESYNC goes before ours begins
    wait_for(lambda: not ready.queue.empty(), timeout=5)
    # and so does the one that confirms the run's channel: subscribed by a first client of the
    # run before ours, it is not queued to ours during the replay (ours then held 302 items)
    first = hub.subscribe("r1")
    wait_for(lambda: not first.queue.empty(), timeout=5)
    ours, theirs = socket.socketpair()
    theirs.settimeout(15)
    try:
        assert serve_stream(hub, BacklogRuns(hub, backlog, stream), ours)
        wait_for(lambda: b"id: 400-0" in theirs.recv(1 << 20, socket.MSG_PEEK), timeout=10)
        hub._dispatch(live_event(401, final=True))
        assert event_numbers(read_all(theirs)) == list(range(1, stream + 2))
    finally:
        ours.close()
        theirs.close()
        hub.close()
