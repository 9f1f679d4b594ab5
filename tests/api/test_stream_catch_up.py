"""The event hub catching a run's streams up from its Redis stream (what pubsub lost, or a
flood): long catch-ups in bounded steps, live events held back until it reaches them, rests
between its steps."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable

from dizest_api.event_hub import EventHub
from dizest_core.events import Event
from tests.api.hub_streams import (
    BackloggedRuns,
    event_numbers,
    handed,
    live_event,
    publish,
    read_all,
)
from tests.conftest import wait_for
from tests.worker.conftest import redis_url  # noqa: F401


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
