"""The event hub listens to the channels of the runs it streams, and only to those
(dizest_api.run_channels), on real Redis: what another run publishes never reaches it, a run's
channel goes once its last stream has, and an event published before the hub's subscription to
its run was in place still reaches the stream, in order."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from dizest_api.event_hub import EventHub
from dizest_core.events import Event
from dizest_worker.client import run_channel
from tests.api.hub_streams import (
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
    made = EventHub(redis_url, f"channelstest:{uuid.uuid4().hex}", queue_size=50)
    try:
        yield made
    finally:
        made.close()


def listeners(hub: EventHub, run_id: str) -> int:
    client = redis.Redis.from_url(hub.redis_url)
    try:
        return int(client.pubsub_numsub(run_channel(hub.channel, run_id))[0][1])
    finally:
        client.close()


def test_the_hub_subscribes_the_runs_it_streams_and_lets_them_go_after(hub: EventHub) -> None:
    """Thread-held streams and owned ones alike; an unwatched run's events never reach it."""
    a, b = hub.subscribe("a"), hub.subscribe("b")
    wait_for(lambda: listeners(hub, "a") == 1 and listeners(hub, "b") == 1, timeout=5)
    publisher = redis.Redis.from_url(hub.redis_url)
    try:
        assert publisher.publish(run_channel(hub.channel, "nobody-watches"), live_event(1)) == 0
        hub.unsubscribe(a)
        wait_for(lambda: listeners(hub, "a") == 0, timeout=5)
        assert listeners(hub, "b") == 1
        ours, theirs = socket.socketpair()
        assert serve_stream(hub, QuietRuns(), ours)  # r1's stream, handed to the hub
        hub.unsubscribe(b)
        channel = subscribed(hub, "r1")  # an owned stream keeps its run's channel
        wait_for(lambda: listeners(hub, "b") == 0, timeout=5)
        assert publisher.publish(channel, live_event(1)) == 1
        theirs.settimeout(5)
        assert event_numbers(theirs.recv(1 << 16)) == [1]
        theirs.close()  # the client leaves: the run's channel goes
        wait_for(lambda: listeners(hub, "r1") == 0, timeout=5)
        ours.close()
    finally:
        publisher.close()


class LateSubscription(QuietRuns):
    """The run's stream holds events 1-2 when the client replays; event 3 is added to it and
    published while the hub has not yet subscribed the run's channel (pubsub loses it)."""

    def __init__(self, hub: EventHub, gate: threading.Event) -> None:
        self.hub, self.gate = hub, gate
        self.stream = [Event.from_dict(json.loads(live_event(i))) for i in (1, 2)]
        self.lost: list[int] = []

    def event_batch(self, run_id: str, after: str | None, count: int) -> list[Any]:
        start = int(after.split("-")[0]) if after else 0
        batch = self.stream[start : start + count]
        if not self.gate.is_set():  # the replay: the hub is held before it subscribes
            self.stream.append(Event.from_dict(json.loads(live_event(3))))
            publisher = redis.Redis.from_url(self.hub.redis_url)
            try:
                self.lost.append(publisher.publish(run_channel(self.hub.channel, run_id), "3"))
            finally:
                publisher.close()
            self.gate.set()  # now the hub may subscribe
        return batch


def test_an_event_published_before_its_runs_channel_was_subscribed_still_arrives(
    hub: EventHub,
) -> None:
    """The exact interleaving: the client subscribes and replays events 1-2 while the hub's
    thread is held before subscribing the run's channel; event 3 is published then (to no
    one). Once the subscription is confirmed, the hub catches the run up from its stream: the
    client gets 1, 2, 3, then the live 4, each once, in order."""
    warm = hub.subscribe("other-run")  # the hub's first RESYNC (connected) goes before ours
    wait_for(lambda: not warm.queue.empty(), timeout=5)
    # held only now: held before, its thread could wait there before the connection's
    # confirmation was read, as long as both waits for it above (5 + 5 s of a 10 s gate)
    gate = threading.Event()
    wanted = hub.channels.wanted
    hub.channels.wanted = lambda: (gate.wait(10), wanted())[1]  # the hub's thread waits here
    runs = LateSubscription(hub, gate)
    ours, theirs = socket.socketpair()
    try:
        assert serve_stream(hub, runs, ours)
        assert runs.lost == [0]  # published while nobody listened on the run's channel
        channel = subscribed(hub)
        theirs.settimeout(10)
        received = bytearray()
        while event_numbers(bytes(received)) != [1, 2, 3]:
            received.extend(theirs.recv(1 << 16))
        publisher = redis.Redis.from_url(hub.redis_url)
        try:
            assert publisher.publish(channel, live_event(4, final=True)) == 1
        finally:
            publisher.close()
        assert event_numbers(bytes(received) + read_all(theirs)) == [1, 2, 3, 4]
    finally:
        ours.close()
        theirs.close()


def test_closing_the_hub_twice_leaves_the_fds_it_had_to_their_new_owners(
    redis_url: str,  # noqa: F811
) -> None:
    """A closed fd number is soon another object's: a second close (or a wake-up written
    after the first) closed or wrote into whatever held that number by then."""
    hub = EventHub(redis_url, f"chtest:{uuid.uuid4().hex}", queue_size=10, heartbeat_s=5)
    hub.close()
    theirs = socket.socketpair()  # takes the lowest free numbers: those the hub's pipe had
    try:
        hub.close()
        hub.channels.want()
        theirs[0].sendall(b"ok")
        assert theirs[1].recv(2) == b"ok"  # both ends still open, nothing else written
    finally:
        for sock in theirs:
            sock.close()
