"""The API worker's SIGTERM handler under gunicorn (dizest_api.gunicorn_app.post_worker_init)."""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from dizest_api.event_hub import CLOSING, EventHub
from dizest_api.gunicorn_app import post_worker_init
from tests.worker.conftest import redis_url  # noqa: F401


@pytest.fixture
def restore_sigterm() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_inside_a_client_queue_lock_ends_the_streams_without_a_deadlock(
    redis_url: str,  # noqa: F811
    restore_sigterm: None,
) -> None:
    """A second SIGTERM (the arbiter's, after a killpg's) lands while the first handler's
    broadcast holds a client queue's lock: the exact interleaving, driven by holding that lock
    while the handler runs. The handler must return at once and the stream still get CLOSING
    once the lock is free (run in the handler, the shutdown waited on the lock forever)."""
    hub = EventHub(redis_url, f"gunicorntest:{uuid.uuid4().hex}")
    try:
        sub = hub.subscribe("r1")
        worker = SimpleNamespace(wsgi=SimpleNamespace(extensions={"dizest.events": hub}))
        post_worker_init(worker)
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        returned = threading.Event()

        def run_handler() -> None:
            handler(signal.SIGTERM, None)
            returned.set()

        with sub.queue.mutex:  # where the interrupted broadcast was
            caller = threading.Thread(target=run_handler, daemon=True)
            caller.start()
            assert returned.wait(5), "the SIGTERM handler blocked on a lock"
            assert hub.closing
        items = []  # RESYNC (the hub's subscription confirmed) may come first
        while CLOSING not in items:
            items.append(sub.queue.get(timeout=5))  # queue.Empty: CLOSING never came
    finally:
        hub.close()
