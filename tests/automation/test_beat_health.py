"""The scheduler of `dizest beat` under load and when it dies, against a real Redis.

A probe's 4,000 due ticks took redbeat 30 s to send in one iteration, longer than its lock's
timeout: the next iteration's lock refresh raised LockNotOwnedError, the scheduler thread died,
and the process (worker and listener alive) went on without firing anything, for everyone."""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.beat import Service

from dizest_api.automation import beat
from dizest_api.automation.beat import Scheduler
from dizest_api.automation.celery_app import TICK, Entry, automation_queue, create_automation_celery
from dizest_api.automation.cron import zoned
from dizest_api.automation.settings import AutomationSettings
from dizest_worker.connection import redis_client
from dizest_worker.messages import broker_lists
from tests.automation.conftest import Stack
from tests.conftest import wait_for
from tests.worker.conftest import make_settings, queued, redis_url  # noqa: F401

# A second automation app in this process finalizes the first one's tasks too (celery shares
# them): harmless here, where no task runs.
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")

# the scheduler's lock timeout here (30 s in a deployment); at 1 s, a fresh CI's busiest
# minute starved the beat's thread past it between two refreshes (LockNotOwnedError)
LOCK_S = 2
SLEEP_S = 0.25  # its longest sleep: well within the lock's timeout, as in a deployment
BUSY_S = 3 * LOCK_S  # how long the due ticks take to send, at the measured cost of one
CALIBRATION = 400  # ticks sent to measure that cost
MOST = 5000  # due ticks at once, at most


@pytest.fixture
def app(redis_url: str, tmp_path: Path) -> Iterator[Any]:  # noqa: F811
    settings = make_settings(redis_url, tmp_path)
    made = create_automation_celery(settings, AutomationSettings(beat_interval_s=1))
    yield made
    made.close()
    redis_client(settings).delete(*broker_lists(automation_queue(settings)))


def _due(app: Any, names: range) -> None:
    """Yearly schedules whose tick of this year was missed: each due once, now."""
    pipe = redis_client(app.conf.dizest_settings).pipeline()
    for i in names:
        kwargs = {"schedule_id": f"s{i}", "cron": "@yearly", "timezone": "UTC"}
        entry = Entry(f"s{i}", TICK, zoned("@yearly", "UTC", app), kwargs=kwargs, app=app)
        entry.last_run_at = app.now() - timedelta(days=400)
        entry.save_on(pipe)
    pipe.execute()


def _tick_cost(app: Any) -> float:
    """Seconds one due tick takes the scheduler to load and send: the least of three rounds
    of 100 (after one that warms its connections up), so that BUSY_S is rather exceeded."""
    scheduler, costs = Scheduler(app=app, max_interval=1), []
    for first in range(0, CALIBRATION, 100):
        _due(app, range(first, first + 100))
        started = time.monotonic()
        for entry in scheduler.schedule.values():
            scheduler.maybe_due(entry, producer=scheduler.producer)
        costs.append((time.monotonic() - started) / 100)
    return min(costs[1:])


@contextlib.contextmanager
def beating(app: Any) -> Iterator[list[BaseException]]:
    """redbeat's service with our Scheduler in a thread, as `dizest beat` runs it; yields
    what ended the thread, if anything did."""
    scheduler = functools.partial(Scheduler, lock_timeout=LOCK_S)
    service = Service(app, max_interval=SLEEP_S, scheduler_cls=scheduler)
    died: list[BaseException] = []

    def run() -> None:
        try:
            service.start()
        except Exception as exc:  # what ended the scheduler's thread in the probe
            died.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield died
        assert thread.is_alive(), died
    finally:
        service.stop()
        thread.join(timeout=10)


def test_many_due_ticks_never_cost_the_beat_its_lock(app: Any) -> None:
    """As many due ticks as take BUSY_S (3 lock timeouts) to send: all are sent, the lock
    stays the beat's, and a tick due afterwards (the next minute's) is sent too."""
    redis, queue = (
        redis_client(app.conf.dizest_settings),
        automation_queue(app.conf.dizest_settings),
    )
    first, count = CALIBRATION, min(MOST, math.ceil(BUSY_S / _tick_cost(app)))
    _due(app, range(first, first + count))
    started = time.monotonic()
    with beating(app) as died:
        for _ in range(3):  # ticks sent faster than calibrated (a quieter moment): twice as many
            sent = wait_for(
                lambda end=first + count: died or queued(redis, queue) >= end,
                timeout=BUSY_S * 5,
            )
            assert sent is True and not died, died
            took = time.monotonic() - started
            if took > 1.5 * LOCK_S or count == MOST:
                break
            first, count = first + count, min(MOST, 2 * count)
            _due(app, range(first, first + count))
            started = time.monotonic()
        assert took > 1.5 * LOCK_S, f"{count} ticks in {took:.1f} s prove nothing"
        count += first - CALIBRATION  # every tick due so far
        Entry.from_key(Entry.generate_key(app, "s0"), app=app).reschedule(
            app.now() - timedelta(days=400)
        )  # due again, as its next tick would make it
        wait_for(lambda: died or queued(redis, queue) > CALIBRATION + count, timeout=10)
        assert not died, died
        assert redis.get(app.redbeat_conf.lock_key) is not None  # still held


def test_entries_whose_due_score_is_stale_do_not_hide_the_others(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An iteration loads the BATCH most overdue entries only: entries due by their score but
    not by their last run (sent just now) must not take those places for ever."""
    monkeypatch.setattr(beat, "BATCH", 5)
    redis, queue = (
        redis_client(app.conf.dizest_settings),
        automation_queue(app.conf.dizest_settings),
    )
    _due(app, range(1))  # due now
    pipe = redis.pipeline()
    for i in range(1, 11):
        entry = Entry(f"s{i}", TICK, zoned("@yearly", "UTC", app), app=app)
        entry.last_run_at = app.now()  # sent just now: due next year, its score says earlier
        entry.save_on(pipe)
        pipe.zadd(app.redbeat_conf.schedule_key, {entry.key: time.time() - 60})
    pipe.execute()
    with beating(app) as died:
        assert wait_for(lambda: died or queued(redis, queue) == 1, timeout=10) is True, died
    assert redis.zcount(app.redbeat_conf.schedule_key, 0, time.time()) == 0


def test_a_beat_whose_scheduler_dies_exits_for_its_supervisor(stack: Stack) -> None:
    """The scheduler thread dies (its lock taken over, as by a standby beat once it expired):
    the process exits non-zero, so that `dizest serve` (or systemd, compose) starts a new one,
    instead of living on without firing anything."""
    beat = stack.start_beat()
    redis = stack.api.services.redis
    lock = stack.auto.celery.redbeat_conf.lock_key
    wait_for(lambda: redis.get(lock), timeout=30)  # this beat holds it
    redis.set(lock, "another beat's token", ex=60)
    wait_for(lambda: beat.proc.poll() is not None, timeout=30)
    assert beat.proc.returncode == 70, beat.log
    assert "LockNotOwnedError" in beat.log and "the scheduler stopped" in beat.log
