"""A run whose events come faster than the event hub hands them on (dizest_api.floods): its
events are caught up from its stream, every one once and in order, while the other runs' go
on live; it leaves flood mode once quiet, without losing what came meanwhile. The hub's real
pubsub connection on real Redis; the hub's thread held (its lock) while a flood is published,
so the flood waits in one read as it does when the hub falls behind."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from dizest_api.event_hub import EventHub, chunk, sse_frame
from dizest_api.floods import FLOOD_BATCH
from dizest_api.handover import HandedOver
from dizest_api.streaming import follow
from dizest_core.events import Event
from dizest_worker.client import run_channel
from tests.api.hub_streams import StreamedRuns, event_numbers, live_event, read_all, subscribed
from tests.api.test_run_channels import listeners
from tests.conftest import wait_for
from tests.worker.conftest import redis_url  # noqa: F401

FLOOD = 3 * FLOOD_BATCH


class CountedRuns(StreamedRuns):
    """StreamedRuns of any run id, counting the reads of its stream after a start."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def event_batch(self, run_id: str, after: str | None, count: int) -> list[Any]:
        self.reads += 1
        return super().event_batch(run_id, after, count)


@pytest.fixture
def hub(redis_url: str) -> Iterator[EventHub]:  # noqa: F811
    made = EventHub(redis_url, f"floodtest:{uuid.uuid4().hex}", queue_size=100, heartbeat_s=5)
    try:
        yield made
    finally:
        made.close()


def owned(hub: EventHub, runs: Any, run_id: str) -> socket.socket:
    """A stream of `run_id` handed to the hub, as a request would; the client's end."""
    ours, theirs = socket.socketpair()
    try:
        for event in follow(hub, runs, run_id, None, 0.05, sock=ours):
            ours.sendall(chunk(b": heartbeat\n\n" if event is None else sse_frame(event)))
    except HandedOver:
        return theirs
    raise AssertionError("the stream was not handed over")


def confirmations(hub: EventHub) -> set[str | None]:
    """The runs whose channel's confirmation the hub's thread has handled, from now on."""
    handled: set[str | None] = set()
    inner = hub.channels.on_subscribed

    def noting(run_id: str | None) -> None:
        inner(run_id)
        handled.add(run_id)

    hub.channels.on_subscribed = noting
    return handled


def settled(hub: EventHub, confirmed: set[str | None], run_id: str) -> None:
    """Once Redis holds the run's channel, the hub has also handled its confirmation and the
    catch-up of its streams that follows (the read it makes): Redis counting the subscriber is
    not enough, the hub may still be about to read the run's stream (seen with a 0.2 s delay)."""
    wait_for(lambda: run_id in confirmed)
    wait_for(lambda: all(s.held is None for s in hub.owned.by_run.get(run_id, ())))


def publish(hub: EventHub, items: list[tuple[str, int, bool]], feeds: dict[str, Any]) -> None:
    """(run, number, final) events, in that order, each in its run's stream first (the runs'
    channels are subscribed by now)."""
    publisher = redis.Redis.from_url(hub.redis_url)
    channels = {run: run_channel(hub.channel, run) for run in feeds}
    try:
        pipe = publisher.pipeline(transaction=False)
        for run, i, final in items:
            raw = live_event(i, final=final, run_id=run)
            feeds[run].events.append(Event.from_dict(json.loads(raw)))
            pipe.publish(channels[run], raw)
        pipe.execute()
    finally:
        publisher.close()


def test_a_flooding_run_is_caught_up_from_its_stream_and_the_others_stay_live(
    hub: EventHub,
) -> None:
    confirmed = confirmations(hub)
    flood, quiet = CountedRuns(), CountedRuns()
    feeds = {"r1": flood, "r2": quiet}
    flooded = [owned(hub, flood, "r1") for _ in range(2)]
    other = owned(hub, quiet, "r2")
    threaded: list[Event | None] = []
    reader = threading.Thread(
        target=lambda: threaded.extend(e for e in follow(hub, flood, "r1", None, 30.0) if e),
        daemon=True,
    )
    reader.start()
    wait_for(lambda: hub.clients() == 4)
    for run in feeds:
        subscribed(hub, run)
        settled(hub, confirmed, run)  # no read of its stream is still to come from that
    reads, quiet_reads = flood.reads, quiet.reads
    with hub._lock:  # the hub's thread stops at its next batch; the flood waits in Redis
        publish(hub, [("r1", i, False) for i in range(1, FLOOD + 1)] + [("r2", 1, True)], feeds)
    assert event_numbers(read_all(other)) == [1]  # the quiet run's event, live
    assert hub.floods.started == 1 and quiet.reads == quiet_reads  # r2's came live
    wait_for(lambda: flood.reads > reads)  # its clients are caught up from its stream
    wait_for(lambda: listeners(hub, "r1") == 0)  # Redis sends this process none of its events
    # still flooding: these reach no one live; the streams catch up from the run's stream
    publish(hub, [("r1", i, False) for i in range(FLOOD + 1, FLOOD + 6)], feeds)
    wait_for(lambda: "r1" not in hub.floods.until, timeout=10)  # quiet for QUIET_S: live again
    subscribed(hub, "r1")  # its channel again
    publish(hub, [("r1", i, i == FLOOD + 10) for i in range(FLOOD + 6, FLOOD + 11)], feeds)
    wanted = list(range(1, FLOOD + 11))
    for client in flooded:
        assert event_numbers(read_all(client)) == wanted  # every one once, in order
    reader.join(15)
    assert not reader.is_alive()
    assert [int(str(e.id).split("-")[0]) for e in threaded if e is not None] == wanted
    assert hub.floods.started == 1


def test_a_reader_that_keeps_up_is_not_cut_by_a_flood(redis_url: str) -> None:  # noqa: F811
    """2,500 events waiting at once, a client reading all along through a 64 kB send buffer:
    the catch-up's steps fit `queue_size` (1000), and what a client has not taken yet of one
    step counts as the events left in it, so the stream is not ended as a slow one's."""
    hub = EventHub(redis_url, f"floodtest:{uuid.uuid4().hex}", queue_size=1000, heartbeat_s=15)
    try:
        feeds = {"r1": CountedRuns()}
        ours, theirs = socket.socketpair()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        try:
            for event in follow(hub, feeds["r1"], "r1", None, 0.05, sock=ours):
                ours.sendall(chunk(b": heartbeat\n\n" if event is None else sse_frame(event)))
        except HandedOver:
            pass
        subscribed(hub, "r1")
        received: list[bytes] = []
        reader = threading.Thread(target=lambda: received.append(read_all(theirs)), daemon=True)
        reader.start()
        with hub._lock:
            publish(hub, [("r1", i, i == 2500) for i in range(1, 2501)], feeds)
        reader.join(30)
        assert not reader.is_alive() and hub.floods.started == 1
        assert event_numbers(received[0]) == list(range(1, 2501))
    finally:
        hub.close()


class FailingRuns(CountedRuns):
    """Its stream's reads fail `failures` times (Redis busy with the flood), then work;
    `attempts` counts them all."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures, self.attempts = failures, 0

    def event_batch(self, run_id: str, after: str | None, count: int) -> list[Any]:
        if self.events:
            self.attempts += 1
            if self.failures:
                self.failures -= 1
                raise redis.ConnectionError("busy")
        return super().event_batch(run_id, after, count)


def test_catch_ups_failing_back_to_back_in_a_flood_do_not_end_its_streams(
    redis_url: str,  # noqa: F811
) -> None:
    """A flooding run is caught up after every read: three failures in a row came within
    milliseconds and ended its streams; they end only when the failures last a heartbeat
    period (30 s here). Each flood is published once the previous one's catch-up failed."""
    hub = EventHub(redis_url, f"floodtest:{uuid.uuid4().hex}", queue_size=100, heartbeat_s=30)
    try:
        feeds = {"r1": FailingRuns(failures=3)}
        client = owned(hub, feeds["r1"], "r1")
        subscribed(hub, "r1")
        for k, start in enumerate(range(1, 1001, FLOOD), 1):  # floods, one read each
            numbers = range(start, min(start + FLOOD, 1001))
            with hub._lock:
                publish(hub, [("r1", i, i == 1000) for i in numbers], feeds)
            if k <= 3:
                wait_for(lambda k=k: feeds["r1"].attempts >= k)  # this one's catch-up failed
        assert event_numbers(read_all(client)) == list(range(1, 1001))
        assert feeds["r1"].failures == 0
    finally:
        hub.close()


def test_a_flood_is_less_than_what_one_read_takes() -> None:
    from dizest_api.run_channels import BATCH

    assert FLOOD_BATCH < BATCH  # else no read could ever show one


def test_a_failed_catch_up_is_tried_again_soon_not_a_heartbeat_period_later(
    redis_url: str,  # noqa: F811
) -> None:
    """The interleaving CI met (a loaded machine, the flood over before its third failure):
    the catch-up after a resubscribe fails, and the live events after it wait for the next.
    That one came a heartbeat period later (30 s here) unless the run flooded again; now it
    comes after a short backoff, and the client gets every event once, in order."""
    hub = EventHub(redis_url, f"floodtest:{uuid.uuid4().hex}", queue_size=100, heartbeat_s=30)
    try:
        feeds = {"r1": FailingRuns(failures=0)}
        client = owned(hub, feeds["r1"], "r1")
        subscribed(hub, "r1")
        publish(hub, [("r1", 1, False), ("r1", 2, False)], feeds)
        client.settimeout(5)
        received = bytearray()
        while event_numbers(bytes(received)) != [1, 2]:
            received.extend(client.recv(65536))
        with hub._lock:  # as the hub does once its subscription is confirmed again
            feeds["r1"].failures = 1
            hub.owned.resync(["r1"])
        wait_for(lambda: feeds["r1"].failures == 0)  # that catch-up failed
        publish(hub, [("r1", i, i == 5) for i in range(3, 6)], feeds)  # held back, live
        assert event_numbers(bytes(received) + read_all(client)) == [1, 2, 3, 4, 5]
    finally:
        hub.close()
