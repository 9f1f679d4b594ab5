"""The scheduler of `dizest beat` under load and when it dies, against a real Redis.

A probe's 4,000 due ticks took redbeat 30 s to send in one iteration, longer than its lock's
timeout: the next iteration's lock refresh raised LockNotOwnedError, the scheduler thread died,
and the process (worker and listener alive) went on without firing anything, for everyone."""

from __future__ import annotations

from tests.automation.conftest import Stack
from tests.conftest import wait_for


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
