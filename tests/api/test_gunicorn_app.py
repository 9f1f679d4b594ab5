"""The API worker's SIGTERM handler under gunicorn (dizest_api.gunicorn_app.post_worker_init)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
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


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("env", "line"),
    [
        # was "Failed to read config file" and a traceback
        ({"DIZEST_API_THREADS": "abc"}, "dizest: DIZEST_API_THREADS='abc': invalid literal"),
        # was only "Worker failed to boot", its streams limit being 0 too
        ({"DIZEST_API_CONNECTIONS": "0"}, "dizest: DIZEST_API_CONNECTIONS must be from 1 to"),
        ({"DIZEST_API_CONNECTIONS": "64"}, "dizest: DIZEST_API_CONNECTIONS must be above DIZEST"),
        ({"DIZEST_API_THREADS": "1"}, "dizest: DIZEST_API_THREADS must be from 2 to"),
    ],
)
def test_the_gunicorn_config_refuses_a_bad_variable_in_one_line(
    env: dict[str, str], line: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DIZEST_")}
    config = ["-c", "deploy/gunicorn.conf.py", "--check-config", "dizest_api.wsgi:create()"]
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", *config],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1
    assert len(lines) == 1 and lines[0].startswith(line), done.stderr
