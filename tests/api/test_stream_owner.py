"""SSE streams the event hub owns (dizest_api.stream_owner): many clients, slow clients,
heartbeats, the end of a run, shutdown, resubscribes; the hub's real pubsub subscription on
real Redis."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from dizest_api.event_hub import EventHub
from dizest_api.handover import HandedOver
from dizest_api.stream_owner import CATCH_UP_TRIES
from dizest_api.streaming import follow
from dizest_core.events import Event
from tests.api.hub_streams import (
    BackloggedRuns,
    QuietRuns,
    StreamedRuns,
    event_numbers,
    handed,
    live_event,
    publish,
    read_all,
    subscribed,
)
from tests.conftest import wait_for
from tests.worker.conftest import redis_url  # noqa: F401


@pytest.fixture
def hub(redis_url: str) -> Iterator[EventHub]:  # noqa: F811
    made = EventHub(redis_url, f"ownertest:{uuid.uuid4().hex}", queue_size=50, heartbeat_s=0.2)
    try:
        yield made
    finally:
        made.close()


@pytest.mark.parametrize("floods", [True, False], ids=["floods", "live-only"])
def test_many_clients_get_every_event_once_in_order(
    hub: EventHub, floods: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Published on the real channel as fast as Redis takes them: the hub reads them in
    batches, frames each once and sends each client the same bytes (or, where a batch holds
    a flood of them, catches the clients up from the run's stream; not in `live-only`)."""
    if not floods:
        monkeypatch.setattr("dizest_api.floods.FLOOD_BATCH", 10**9)
    runs = StreamedRuns() if floods else QuietRuns()
    pairs = handed(hub, 200, runs)
    results: list[bytes] = [b""] * len(pairs)

    def reader(i: int) -> None:
        results[i] = read_all(pairs[i][1])

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(len(pairs))]
    try:
        for thread in readers:
            thread.start()
        publish(hub, range(1, 1001), final_at=1000, runs=runs)
        for thread in readers:
            thread.join(timeout=30)
        for received in results:
            assert event_numbers(received) == list(range(1, 1001))
            assert received.endswith(b"0\r\n\r\n")
        assert floods or hub.floods.started == 0  # live-only: every event went out live
        wait_for(lambda: hub.clients() == 0, timeout=5)
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


def test_a_client_that_stops_reading_is_dropped_without_delaying_the_others(
    hub: EventHub,
) -> None:
    """Its socket fills, its outbox grows past queue_size (50) events: the hub closes it. The
    others get every event meanwhile, none held up by it."""
    (stalled_ours, stalled), (ours, theirs) = handed(hub, 2)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled_ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = "x" * 4000
    publisher, channel = redis.Redis.from_url(hub.redis_url), subscribed(hub)
    try:
        theirs.settimeout(5)
        received = bytearray()
        for i in range(1, 201):
            body = json.loads(live_event(i, final=i == 200))
            body["data"] = {**body.get("data", {}), "text": big}
            publisher.publish(channel, json.dumps(body))
            while f"id: {i}-0".encode() not in received:  # each one arrives before the next
                received.extend(theirs.recv(1 << 20))
        wait_for(lambda: hub.clients() == 0, timeout=5)
        assert event_numbers(bytes(received) + read_all(theirs)) == list(range(1, 201))
        stalled.settimeout(5)
        left = read_all(stalled)  # what its buffers held, then EOF: the hub closed it
        assert len(event_numbers(left)) < 100
    finally:
        publisher.close()
        for sock in (stalled_ours, stalled, ours, theirs):
            sock.close()


def test_a_client_that_does_not_read_large_events_holds_a_bounded_outbox(hub: EventHub) -> None:
    """1 MB events, 20 of them, well under queue_size (50) events: the outbox of a client that
    never reads stops at MAX_OUTBOX_BYTES and its response ends (it would resume), instead of
    holding all 20 MB (a probe's 4 such clients held 2 GB of the API)."""
    from dizest_api.stream_owner import MAX_OUTBOX_BYTES

    ((ours, stalled),) = handed(hub, 1)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    (stream,) = hub.owned.by_run["r1"]
    publisher, channel = redis.Redis.from_url(hub.redis_url), subscribed(hub)
    try:
        for i in range(1, 21):  # one at a time: each its own write to the client
            body = json.loads(live_event(i))
            body["data"] = {**body.get("data", {}), "text": "x" * (1 << 20)}
            publisher.publish(channel, json.dumps(body))
            wait_for(lambda i=i: stream.last == f"{i}-0" or stream.ending, timeout=10)
            if stream.ending:
                break
        assert stream.ending
        assert stream.pending <= MAX_OUTBOX_BYTES + (2 << 20), stream.pending
        assert stream.behind < 20
    finally:
        publisher.close()
        ours.close()
        stalled.close()


class ExpiringRuns(QuietRuns):
    def __init__(self) -> None:
        self.expired = False

    def record(self, run_id: str) -> dict[str, str] | None:
        return None if self.expired else {"status": "running"}


def test_a_quiet_stream_gets_heartbeats_and_ends_when_its_run_expires(hub: EventHub) -> None:
    runs = ExpiringRuns()
    ((ours, theirs),) = handed(hub, 1, runs)
    try:
        theirs.settimeout(5)
        seen = b""
        started = time.monotonic()
        while seen.count(b": heartbeat") < 2:
            seen += theirs.recv(4096)
        assert time.monotonic() - started < 3  # every heartbeat period (0.2 s here)
        runs.expired = True
        rest = read_all(theirs)
        assert rest.endswith(b"0\r\n\r\n")
        wait_for(lambda: hub.clients() == 0, timeout=5)
    finally:
        ours.close()
        theirs.close()


def test_a_client_that_leaves_is_forgotten_at_once(hub: EventHub) -> None:
    ((ours, theirs),) = handed(hub, 1)
    theirs.close()
    try:
        wait_for(lambda: hub.clients() == 0, timeout=2)  # well before any heartbeat write
    finally:
        ours.close()


def test_shutdown_ends_owned_streams_with_their_last_chunk_and_refuses_new_ones(
    hub: EventHub,
) -> None:
    pairs = handed(hub, 3)
    try:
        publish(hub, range(1, 4))
        hub.shutdown()
        for _, theirs in pairs:
            received = read_all(theirs)
            assert received.endswith(b"0\r\n\r\n")
            assert b"workflow.status" not in received
        with pytest.raises(Exception, match="stopping"):
            hub.admit(threaded=False)
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


def test_live_events_after_a_resubscribe_wait_for_the_catch_up_of_what_pubsub_lost(
    hub: EventHub,
) -> None:
    """The exact interleaving: events 3-7 are lost while the hub resubscribes; the hub sends
    its first live event after it (8) before the writer has caught the run up. The client
    still gets 1..11 once each, in order: 8 waited for 3-7 (it had moved `last` past them)."""
    runs = BackloggedRuns(11)
    ((ours, theirs),) = handed(hub, 1, runs)
    events = [Event.from_dict(json.loads(live_event(i, i == 11))) for i in range(1, 12)]
    try:
        theirs.settimeout(5)
        publish(hub, range(1, 3))
        received = bytearray()
        while event_numbers(bytes(received)) != [1, 2]:
            received.extend(theirs.recv(65536))
        runs.stream = events  # the run's stream holds them all; pubsub lost 3-7
        with hub._lock:  # the writer cannot catch up in between
            hub.owned.resync()
            hub.owned.deliver("r1", [events[7]], {})
        publish(hub, range(9, 12), final_at=11)
        assert event_numbers(bytes(received) + read_all(theirs)) == list(range(1, 12))
    finally:
        ours.close()
        theirs.close()


class BrokenRuns(QuietRuns):
    """A run whose stream reads fail once its client has replayed (Redis gone for good, or an
    event nobody can decode)."""

    def __init__(self) -> None:
        self.calls = 0

    def event_batch(self, run_id: str, after: str | None, count: int) -> list[Event]:
        self.calls += 1
        if self.calls > 1:
            raise redis.ConnectionError("the stream cannot be read")
        return []


def test_streams_whose_catch_up_keeps_failing_end_so_their_clients_resume(hub: EventHub) -> None:
    """Live events wait while a catch-up fails (they may lie past a gap); after CATCH_UP_TRIES
    failures in a row (heartbeat 0.2 s here) the stream ends with its last chunk, instead of
    holding its client forever."""
    runs = BrokenRuns()
    ((ours, theirs),) = handed(hub, 1, runs)
    try:
        theirs.settimeout(1)
        received, deadline = bytearray(), time.monotonic() + 10  # heartbeats keep coming
        while not received.endswith(b"0\r\n\r\n") and time.monotonic() < deadline:
            received.extend(theirs.recv(65536))
        assert received.endswith(b"0\r\n\r\n"), bytes(received[-200:])
        assert event_numbers(bytes(received)) == [] and runs.calls - 1 >= CATCH_UP_TRIES
        wait_for(lambda: hub.clients() == 0, timeout=5)
    finally:
        ours.close()
        theirs.close()


def test_events_of_two_runs_read_at_once_go_each_to_its_own_runs_clients(hub: EventHub) -> None:
    """A stream id is a run's own (`<ms>-<n>` of its stream): two runs' events made in the same
    millisecond have the same id. One read of the channel holding both frames each for its own
    run's clients: a frame kept by id alone sent one run's event to the other run's clients."""
    clients = {}
    for run in ("r1", "r2"):
        ours, theirs = socket.socketpair()
        theirs.settimeout(5)
        with pytest.raises(HandedOver):
            for _ in follow(hub, QuietRuns(), run, None, 0.05, sock=ours):
                pass
        clients[run] = (ours, theirs)

    def frame_to(theirs: socket.socket) -> bytes:
        received = b""
        while b"\n\n\r\n" not in received:
            received += theirs.recv(65536)
        return received

    publisher = redis.Redis.from_url(hub.redis_url)
    try:
        for run, (_, theirs) in clients.items():  # each stream live: its first event came
            publisher.publish(subscribed(hub, run), live_event(5, run_id=run))
            assert b"id: 5-0" in frame_to(theirs)
        hub._dispatch_all([(run, live_event(7, run_id=run)) for run in clients])
        for run, (_, theirs) in clients.items():
            received = frame_to(theirs)
            assert b"id: 7-0" in received
            assert f'"run_id":"{run}"'.encode() in received
    finally:
        publisher.close()
        for ours, theirs in clients.values():
            ours.close()
            theirs.close()
