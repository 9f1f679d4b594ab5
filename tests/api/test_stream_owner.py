"""SSE streams the event hub owns (dizest_api.stream_owner): many clients, slow clients,
heartbeats, the end of a run, shutdown; the hub's real pubsub subscription on real Redis."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from dizest_api.event_hub import EventHub
from dizest_api.handover import HandedOver
from dizest_api.sse_frames import stream_key
from dizest_api.stream_owner import CATCH_UP_TRIES
from dizest_api.streaming import follow
from dizest_core.events import Event
from tests.api.test_streaming import (
    QuietRuns,
    event_numbers,
    live_event,
    read_all,
    serve_stream,
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


def caught_up(
    redis_url: str,  # noqa: F811
    runs: BackloggedRuns,
    before: Callable[[EventHub], None],
) -> list[int]:
    """One client of run r1 on a hub (queue_size 1000), the run's stream then holding events
    1..runs.total (the last final) the client never got live; `before(hub)`, then the hub
    resyncs (as when it resubscribes): the event numbers the client got, to the end."""
    hub = EventHub(redis_url, f"ownertest:{uuid.uuid4().hex}", queue_size=1000, heartbeat_s=30)
    try:
        ((ours, theirs),) = handed(hub, 1, runs)
        runs.stream = [
            Event.from_dict(json.loads(live_event(i, i == runs.total)))
            for i in range(1, runs.total + 1)
        ]
        before(hub)
        with hub._lock:
            hub.owned.resync()
        try:
            return event_numbers(read_all(theirs))
        finally:
            ours.close()
            theirs.close()
    finally:
        hub.close()


def test_a_long_catch_up_keeps_live_events_back_until_it_reaches_them(redis_url: str) -> None:  # noqa: F811
    """The exact interleaving: a catch-up longer than queue_size is read in bounded steps;
    live events that arrive during its first step lie past what that step read. They must
    wait for the rest of the catch-up, not follow the first step (a gap the client would
    never fill: its Last-Event-ID would be past it)."""
    total = 3000
    runs = BackloggedRuns(total)

    def live_tail(hub: EventHub) -> None:  # published and held back before the first page returns
        (stream,) = hub.owned.by_run["r1"]
        publish(hub, range(total - 9, total + 1), final_at=total)
        wait_for(lambda: len(stream.held or []) == 10, timeout=5)

    def before(hub: EventHub) -> None:
        runs.during_catch_up = lambda: live_tail(hub)

    assert caught_up(redis_url, runs, before) == list(range(1, total + 1))


class SlowRuns(BackloggedRuns):
    """The backlog read from a Redis that answers each read in READ_S (a stand-in for a busy
    server, not a wait for a condition); when each read started and ended."""

    READ_S = 0.05

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.reads: list[tuple[float, float]] = []

    def event_batch(self, run_id: str, after: str | None, count: int) -> list[Event]:
        started = time.monotonic()
        time.sleep(self.READ_S)
        out = super().event_batch(run_id, after, count)
        self.reads.append((started, time.monotonic()))
        return out


def test_a_long_catch_up_rests_between_its_steps_as_long_as_each_took(redis_url: str) -> None:  # noqa: F811
    """A run far ahead of its clients (a flood) is caught up in steps of queue_size events,
    each followed by a rest as long as the step: its catch-ups take at most half of the writer
    thread (and of the GIL), so other runs' live events are not held behind them. Its client
    still gets every event once, in order."""
    runs = SlowRuns(3000)
    assert caught_up(redis_url, runs, lambda hub: runs.reads.clear()) == list(range(1, 3001))
    steps: list[list[tuple[float, float]]] = []  # reads with no rest between them
    for read in runs.reads:
        if steps and read[0] - steps[-1][-1][1] < SlowRuns.READ_S / 2:
            steps[-1].append(read)
        else:
            steps.append([read])
    assert [len(step) for step in steps] == [2, 2, 2]  # 500 a read, queue_size a step
    for step, following in itertools.pairwise(steps):
        assert following[0][0] - step[-1][1] >= step[-1][1] - step[0][0]


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
