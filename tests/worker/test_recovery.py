"""Recovery from a lost worker (issue 12), with real Redis and real `dizest worker` processes.

- A SIGKILLed worker (its whole process group) has no process connected to Redis any more, so
  the other worker's reaper takes its flow over as soon as the lease expires: the flow is
  `running` again within RECOVERY_S of the kill, with the default lease and reaper settings.
- A worker that is alive but stalled (SIGSTOP: silent, still connected) keeps its flow past the
  lease's expiry, for `lease_grace_s`; when it then loses it and comes back with the result of
  the old attempt, that result is refused (FINISH accepts the current attempt only).

Either way the run ends with every flow completed exactly once. The rule itself, on the real
scripts: an attempt is vouched for by the holder id of the process that claimed it, and by
nothing else (not another process of the same worker name).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from dizest_core import dwp
from dizest_core.events import FLOW_STATUS, LOG_APPEND, Event
from dizest_core.plan import make_plan
from dizest_worker.client import Client
from dizest_worker.connection import redis_client
from dizest_worker.keys import lease_member
from dizest_worker.reaper import Reaper
from dizest_worker.settings import WorkerSettings
from dizest_worker.state import RedisRuns, now_ms
from tests.conftest import package, wait_for
from tests.worker.conftest import (
    WorkerProcess,
    cleanup,
    make_settings,
    slow_then_use,
    stop_all,
)

RECOVERY_S = 5.0  # issue 12's bound: kill -> the flow running again elsewhere


@contextlib.contextmanager
def two_workers(redis_url: str, root: Path, **overrides: object) -> Iterator[dict]:
    """Two idle workers `a` and `b` (-c 1), with "settings" and a "client"."""
    settings = make_settings(redis_url, root, **overrides)
    started: dict[str, WorkerProcess] = {}
    try:
        for name in ("a", "b"):
            started[name] = WorkerProcess(settings, name, concurrency=1)
        yield {"settings": settings, "client": Client(settings), **started}
    finally:
        for worker in started.values():
            with_continued(worker)
        stop_all(started.values())
        cleanup(settings)


def with_continued(worker: WorkerProcess) -> None:
    if worker.proc.poll() is None:
        os.killpg(worker.proc.pid, signal.SIGCONT)


def next_event(
    client: Client, run_id: str, test: Callable[[Event], bool], after: str | None, timeout: float
) -> Event:
    """The first event after `after` that passes `test`; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in client.runs.events(run_id, after, block_ms=100):
            if test(event):
                return event
            after = event.id
    raise AssertionError(f"no such event within {timeout} s")


def started_line(event: Event) -> bool:
    entry = event.data.get("entry")
    return event.flow_id == "s" and event.type == LOG_APPEND and str(entry).startswith("started")


def running(event: Event) -> bool:
    return event.flow_id == "s" and event.type == FLOW_STATUS and event.data["status"] == "running"


def holder_and_other(workers: dict, client: Client, run_id: str) -> tuple[WorkerProcess, str]:
    holder = client.runs.flow_field(run_id, "s", "worker")
    assert holder in ("a", "b")
    return workers[holder], "b" if holder == "a" else "a"


def assert_completed_once(client: Client, run_id: str, by: str) -> None:
    report = client.wait(run_id, timeout=60)
    assert report["status"] == "ready", report
    assert report["flows"]["u"]["outputs"] == {"v": 42}
    events = client.runs.events(run_id, count=10_000)
    for flow in ("s", "u"):
        statuses = [e.data["status"] for e in events if e.flow_id == flow and e.type == FLOW_STATUS]
        assert statuses.count("ready") == 1, (flow, statuses)
    assert client.runs.flow_field(run_id, "s", "attempt") == "2"
    assert client.runs.flow_field(run_id, "s", "worker") == by
    outputs = client.redis.hget(client.runs.keys.outputs(run_id, "s"), "_attempt")
    assert outputs == b"2", "the outputs are those of the attempt that took over"


def test_a_sigkilled_workers_flow_runs_again_elsewhere_within_the_bound(redis_url, tmp_path):
    shipped = WorkerSettings()  # the default lease and reaper settings, not the tests' short ones
    defaults = {
        "lease_s": shipped.lease_s,
        "lease_grace_s": shipped.lease_grace_s,
        "reaper_interval_s": shipped.reaper_interval_s,
    }
    with two_workers(redis_url, tmp_path, **defaults) as workers:
        client = workers["client"]
        run_id = client.submit(slow_then_use(3))
        first = next_event(client, run_id, started_line, None, timeout=60)
        victim, other = holder_and_other(workers, client, run_id)
        os.killpg(victim.proc.pid, signal.SIGKILL)
        killed = time.time()
        again = next_event(client, run_id, running, first.id, timeout=RECOVERY_S + 10)
        assert again.ts - killed <= RECOVERY_S, f"running again {again.ts - killed:.2f} s after"
        assert_completed_once(client, run_id, by=other)
        assert "worker lost: requeued" in workers[other].log  # the other worker's reaper did it


def test_a_stalled_worker_keeps_its_flow_through_the_grace_and_its_late_result_is_refused(
    redis_url, tmp_path
):
    with two_workers(redis_url, tmp_path, lease_s=1.0, lease_grace_s=4.0) as workers:
        client, settings = workers["client"], workers["settings"]
        run_id = client.submit(slow_then_use(1.5))
        first = next_event(client, run_id, started_line, None, timeout=60)
        stalled, other = holder_and_other(workers, client, run_id)
        os.killpg(stalled.proc.pid, signal.SIGSTOP)  # its flow's child (own session) runs on
        stopped = time.time()
        again = next_event(client, run_id, running, first.id, timeout=settings.lease_grace_s + 15)
        # still connected: taken over the grace after its lease expired, not at expiry (a dead
        # worker's: within a lease + a sweep of the stop); its last renewal may predate the
        # stop by up to a lease on a loaded machine
        assert again.ts - stopped >= settings.lease_grace_s - settings.lease_s
        with_continued(stalled)  # back, with attempt 1's result: FINISH refuses it
        assert_completed_once(client, run_id, by=other)


def test_only_the_claiming_process_vouches_for_an_expired_attempt(redis_url, tmp_path):
    settings = make_settings(redis_url, tmp_path, lease_s=0.3, lease_grace_s=60.0)
    runs = RedisRuns(redis_client(settings), settings)
    sent: list = []
    reaper = Reaper(runs, lambda tasks, _countdown: sent.extend(tasks), settings)
    pkg = package({"n": {"code": "v = 1", "outputs": ["v"]}}, {f: {"app": "n"} for f in "abc"})
    record = {"targets": None, "reused": [], "options": {}, "inputs": {}, "flow_inputs": {}}
    runs.create("r1", pkg, make_plan(dwp.load(pkg)), record)
    runs.release([("r1", f, 1) for f in "abc"])  # sent: no reservations left
    live = runs.client.pubsub()
    live.subscribe(runs.keys.holder_channel("w/1/live"))  # a process that holds attempts
    try:
        assert runs.claim("r1", "a", 1, "w", holder="w/1/live")[0] == "ok"
        assert runs.claim("r1", "b", 1, "w", holder="w/2/dead")[0] == "ok"  # same worker name
        assert runs.claim("r1", "c", 1, "w")[0] == "ok"  # no holder id: nobody vouches
        leases = [lease_member("r1", f, 1) for f in "abc"]
        wait_for(lambda: max(runs.client.zmscore(runs.keys.leases, leases)) < now_ms(), 5)
        assert sorted(reaper.sweep()) == [("r1", "a", "alive"), ("r1", "b", "2"), ("r1", "c", "2")]
        assert runs.flow_field("r1", "a", "holder") == "w/1/live"
        live.unsubscribe()
        live.get_message(timeout=1)  # the unsubscribe went through
        assert reaper.sweep() == [("r1", "a", "2")]  # its process is gone: taken over at once
    finally:
        live.close()
        cleanup(settings)
