"""A client waiting in the event hub's queue gets one RESYNC however many causes come before it
reads it (a resubscription, its run's channel confirmed): the first one read catches it up from
the run's stream, after all of them. A RESYNC after an event it has not read is queued again."""

from __future__ import annotations

import queue
from typing import Any

from dizest_api.event_hub import RESYNC, EventHub
from tests.api.hub_streams import live_event
from tests.api.test_run_channels import hub, listeners  # noqa: F401 (hub: its fixture)
from tests.conftest import wait_for
from tests.worker.conftest import redis_url  # noqa: F401


def items(q: queue.Queue[Any]) -> list[str]:
    """What the queue holds, oldest first: "RESYNC" or an event's id."""
    with q.mutex:
        return ["RESYNC" if item is RESYNC else item.id for item in q.queue]


def test_resyncs_before_the_client_reads_are_queued_once(hub: EventHub) -> None:  # noqa: F811
    sub = hub.subscribe("r1")
    wait_for(lambda: listeners(hub, "r1") == 1 and not sub.queue.empty(), timeout=5)
    hub._subscribed(None)  # as when the hub subscribes again (a Redis restart), twice
    hub._subscribed(None)
    assert items(sub.queue) == ["RESYNC"]
    hub._dispatch(live_event(1))
    hub._subscribed(None)
    hub._subscribed("r1")  # as when the run's channel is confirmed
    assert items(sub.queue) == ["RESYNC", "1-0", "RESYNC"]
    assert sub.queue.get_nowait() is RESYNC  # read: the next one is queued again
    assert sub.queue.get_nowait().id == "1-0"
    assert sub.queue.get_nowait() is RESYNC
    hub._subscribed(None)
    assert items(sub.queue) == ["RESYNC"]
