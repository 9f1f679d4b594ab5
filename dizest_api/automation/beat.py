"""`dizest beat`: redbeat's scheduler, the automation worker and the run-end listener, in one
process. Run one per machine you like: redbeat's Redis lock lets one of them fire schedules
(the others wait for the lock, taking over within its timeout if the holder dies), while all of
them execute ticks and deliveries from the automation queue.

Missed ticks. redbeat keeps each entry's `last_run_at` in Redis; when a beat (re)starts, an
entry whose next cron time after `last_run_at` has passed is due once, and firing it sets
`last_run_at` to now, so however many ticks were missed it fires once, never twice
(`catchup: once`). `Scheduler.apply_async` adds the skip policy: a tick more than `LATE_S`
behind its cron time is a missed one, and a `catchup: skip` schedule records it as skipped and
moves on without a run. It also passes the tick's cron time to the task, which makes it the
run's idempotency key.

Many due ticks. redbeat loads every due entry, sends them all, then sleeps; it refreshes its
lock once per such iteration. Sending one tick takes three Redis round trips (load the entry,
send the message, store its next due time): 7.5 ms in the probe that made 4,001 ticks due at
once, so that iteration took 30 s, the lock's timeout, and the lock was lost. Here an
iteration loads and sends at most BATCH entries, the most overdue first, and starts the next
at once while more may be due (so a stop is also seen between batches); and the lock is
refreshed whenever a third of its timeout passed while sending. However many are due, the
lock stays this beat's while it works.

A part that dies ends the process. The scheduler and the run-end listener are threads beside
the automation worker (the main thread). When one ends while the process is not stopping (the
scheduler's lock lost after all, Redis gone when it starts), the process stops its worker (a
warm shutdown: running ticks and deliveries end first) and exits with EXIT_PART_DIED, so its
supervisor (`dizest serve`, compose's restart policy, systemd's Restart=on-failure) starts a
fresh one, with its backoff. That is what redbeat does as `celery beat` (the exception reaches
the entry point and the process exits) and what the supervisor is for; restarting the thread
in place would keep a scheduler whose lock another beat may hold by now (redbeat takes it only
at start-up, in `beat_init`) and hide a crash loop the supervisor would show and slow down.
Before, the thread died alone, and the process lived on firing nothing until a restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import click
from celery.beat import Service
from redbeat.decoder import to_timestamp
from redbeat.schedulers import RedBeatScheduler, get_redis

from dizest_api.automation.celery_app import (
    DELIVER,
    Entry,
    automation_queue,
    create_automation_celery,
)
from dizest_api.automation.cron import next_after
from dizest_api.automation.runtime import runtime
from dizest_core.errors import DizestError

log = logging.getLogger("dizest.automation")
LATE_S = 60.0  # a tick fired later than this after its cron time was missed
BATCH = 100  # due entries one scheduler iteration loads and sends
EXIT_PART_DIED = 70  # EX_SOFTWARE: the scheduler or the listener died; the supervisor restarts


class Scheduler(RedBeatScheduler):  # type: ignore[misc]
    Entry = Entry
    _full = False  # the iteration loaded BATCH due entries: more may be due
    _sent = 0  # ticks the iteration sent (or skipped)
    _kept = 0.0  # when the lock was last refreshed (monotonic)
    _due: set[str] = set()  # the keys the iteration loaded as due

    def tick(self, *args: Any, **kwargs: Any) -> float:
        self._kept, self._sent = time.monotonic(), 0  # redbeat's tick refreshes the lock first
        interval: float = super().tick(*args, **kwargs)
        return 0.0 if self._full and self._sent else interval

    @property
    def schedule(self) -> dict[str, Any]:
        """redbeat's: the due entries (BATCH at most, the most overdue first) and the next one
        due within `max_interval` (the iteration sleeps until then at most)."""
        key, now = self.app.redbeat_conf.schedule_key, to_timestamp(self.app.now())
        client = get_redis(self.app)
        with client.pipeline() as pipe:
            pipe.zrangebyscore(key, 0, now, start=0, num=BATCH)
            pipe.zrangebyscore(key, f"({now}", now + self.max_interval, start=0, num=1)
            due, soon = pipe.execute()
        self._full, self._due = len(due) == BATCH, set(due)
        entries = {}
        for name in due + soon:
            try:
                entry = self.Entry.from_key(name, app=self.app)
            except KeyError:
                log.warning("beat: entry %s is gone, removing it", name)
                client.zrem(key, name)
                continue
            entries[entry.name] = entry
        return entries

    def maybe_due(self, entry: Any, **kwargs: Any) -> Any:
        if self.lock is not None and time.monotonic() - self._kept > self.lock_timeout / 3:
            self.lock.extend(int(self.lock_timeout))  # LockNotOwnedError if lost: we stop
            self._kept = time.monotonic()
        sent = self._sent
        next_s = super().maybe_due(entry, **kwargs)
        if self._sent == sent and entry.key in self._due:  # due by a score its last run
            # says is stale: moved to its due time, lest BATCH of these hide the others
            get_redis(self.app).zadd(self.app.redbeat_conf.schedule_key, {entry.key: entry.score})
        return next_s

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kw: Any) -> Any:
        self._sent += 1
        now = self.app.now()
        due = next_after(entry.schedule, entry.last_run_at or now)
        entry.kwargs = {**(entry.kwargs or {}), "tick": due.isoformat()}
        late = (now - due).total_seconds() > LATE_S
        if late and entry.kwargs.get("catchup") == "skip":
            self.reserve(entry)  # last_run_at = now: the missed tick is done with
            sid = entry.kwargs.get("schedule_id", entry.name)
            runtime(self.app).schedules.record(
                sid, {"tick": due.isoformat(), "skipped": "missed while no beat ran"}
            )
            log.info("schedule %s: missed tick %s skipped", sid, due.isoformat())
            return None
        return super().apply_async(entry, producer, advance, **kw)


def vital(name: str, run: Callable[[], object], stopping: threading.Event, died: list[str]) -> None:
    """Run `run` in a daemon thread; if it ends while `stopping` is not set, record `name` in
    `died` and stop the process's worker (see the module docstring)."""

    def target() -> None:
        try:
            run()
        except Exception:
            log.exception("beat: the %s failed", name)
        if stopping.is_set():
            return
        died.append(name)
        log.critical("beat: the %s stopped: exiting (%d) to be restarted", name, EXIT_PART_DIED)
        os.kill(os.getpid(), signal.SIGTERM)  # the worker's warm shutdown, in the main thread

    threading.Thread(target=target, daemon=True, name=name).start()


@click.command()
@click.option("--concurrency", "-c", default=4, show_default=True, type=click.IntRange(min=1),
              help="Threads running ticks and webhook deliveries.")  # fmt: skip
@click.option("--name", "-n", default="dizest-beat@%h", show_default=True, help="Worker name.")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def beat(concurrency: int, name: str, loglevel: str) -> None:
    """Run schedules (celery-redbeat), deliver webhooks and notice ended runs."""
    from dizest_api.automation.notify import Notifier
    from dizest_api.automation.settings import AutomationSettings
    from dizest_api.automation.tasks import send_delivery
    from dizest_worker.client import REACH_S, WorkerSettings, reach

    def say(problem: str) -> None:
        click.echo(f"dizest beat: {problem}", err=True)

    try:
        settings, auto = WorkerSettings.from_env(), AutomationSettings.from_env()
    except DizestError as exc:  # EX_CONFIG: `dizest serve` stops, not restarts, on it
        say(str(exc))
        raise SystemExit(os.EX_CONFIG) from exc
    try:
        reach(settings.redis_url, REACH_S, say)  # said at once, not after a minute
    except DizestError as exc:
        raise click.ClickException(str(exc)) from exc
    app = create_automation_celery(settings, auto)
    app.conf.beat_enable_remote_control = False
    deliver = app.tasks[DELIVER]
    notifier = Notifier(runtime(app), lambda *args: send_delivery(deliver, args))
    stopping = threading.Event()
    died: list[str] = []
    vital("run-end listener", lambda: notifier.listen(stopping), stopping, died)
    service = Service(app, max_interval=auto.beat_interval_s, scheduler_cls=Scheduler)
    vital("scheduler", service.start, stopping, died)
    argv = [
        "worker",
        f"--queues={automation_queue(settings)}",
        f"--hostname={name}",
        f"--loglevel={loglevel}",
        "--pool=threads",
        f"--concurrency={concurrency}",
        "--without-gossip",
        "--without-mingle",
    ]
    try:
        app.worker_main(argv)
    finally:
        stopping.set()
        service.stop()
        # the beat thread releases redbeat's lock on its way out (within one interval), so a
        # restarted or standby beat takes over at once instead of after the lock's timeout
        with contextlib.suppress(Exception):
            service._is_stopped.wait(auto.beat_interval_s + 2)
    if died:
        raise SystemExit(EXIT_PART_DIED)
