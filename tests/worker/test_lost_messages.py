"""A worker SIGKILLed after kombu's BRPOP took a flow message and before it recorded it in the
`unacked` hash loses the message: in no list, in no hash, its flow pending with no lease, its run
never ending (bench/chaos.py: 2 of 200 runs). Once a worker has died, a reaper audits the broker
and sends such flows again (dizest_worker.lost_messages): here a real process takes the message
with BRPOP and dies, exactly in that window."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from dizest_core.events import FLOW_STATUS
from dizest_worker import liveness
from dizest_worker.client import Client
from dizest_worker.messages import FlowTask, broker_lists
from dizest_worker.reaper import Reaper
from dizest_worker.state import now_ms
from dizest_worker.stranded import UNACKED, tasks_in, tasks_of
from tests.conftest import package
from tests.worker.conftest import WorkerProcess, cleanup, make_settings

# Takes one message with BRPOP, as kombu's consumer does, and dies before anything records it.
BRPOP_AND_DIE = """
import os, signal, sys
import redis
taken = redis.Redis.from_url(sys.argv[1]).brpop(sys.argv[2:], timeout=30)
print("taken" if taken else "none", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

ONE_FLOW = package({"a": {"code": "v = 1", "outputs": ["v"]}}, {"a": {"app": "a"}})


def lose_the_message(client: Client, run_id: str) -> None:
    """A process takes the run's only message with BRPOP and is killed holding it."""
    lists = broker_lists(client.settings.queue)
    taker = subprocess.run(
        [sys.executable, "-c", BRPOP_AND_DIE, client.settings.redis_url, *lists],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert taker.stdout == b"taken\n" and taker.returncode == -9, taker
    assert sum(client.redis.llen(key) for key in lists) == 0
    held = [t for raw in client.redis.hvals(UNACKED) for t in tasks_of(raw)]
    assert all(t.run_id != run_id for t in held)  # the message is nowhere now
    assert client.runs.flow_field(run_id, "a") == "pending"


def ran_once(client: Client, run_id: str) -> None:
    report = client.wait(run_id, timeout=60)
    assert report["status"] == "ready" and report["flows"]["a"]["outputs"] == {"v": 1}, report
    events = client.runs.events(run_id, count=100)
    starts = [e for e in events if e.type == FLOW_STATUS and e.data["status"] == "running"]
    assert len(starts) == 1


@pytest.mark.parametrize(
    ("dead", "age_ms"),
    [("killed", 10_000), ("w1", 0)],
    ids=["its-beat-aged-out", "restarted-under-its-name-at-once"],
)
def test_a_message_lost_by_a_killed_worker_runs_once(redis_url, tmp_path, dead, age_ms):
    """The killed worker's last beat is left as it leaves it: older than the liveness window,
    or fresh when a supervisor restarts it at once under its name (w1): its beat never aged
    out, but the new instance finds it left over at start, which marks an audit due."""
    settings = make_settings(redis_url, tmp_path)
    client = Client(settings)
    worker = None
    try:
        run_id = client.submit(ONE_FLOW)
        lose_the_message(client, run_id)
        client.redis.hset(client.runs.keys.workers, dead, now_ms() - age_ms)
        worker = WorkerProcess(settings, "w1", concurrency=1)
        ran_once(client, run_id)
        if age_ms:  # that death is audited once: the next sweeps leave it
            assert client.redis.hget(client.runs.keys.audited, dead) is not None
    finally:
        if worker is not None:
            worker.stop()
        cleanup(settings)


def test_forget_marks_an_audit_due_only_for_a_beat_left_over(redis_url, tmp_path):
    settings = make_settings(redis_url, tmp_path)
    client = Client(settings)
    keys = client.runs.keys
    try:
        liveness.forget(client.redis, settings, "never-beat")
        assert not client.redis.exists(keys.audit_due)
        client.redis.hset(keys.workers, "w9", now_ms())
        liveness.forget(client.redis, settings, "w9")
        assert client.redis.get(keys.audit_due) == b"1"
    finally:
        cleanup(settings)


def test_an_audit_sends_again_only_what_is_nowhere_and_only_once_per_death(redis_url, tmp_path):
    """Twelve flows (ids with ':', as DIZEST allows) whose messages wait in the queue, one of
    them lost, another run's flow waiting in a queue no worker serves, and entries in the queue
    that are no flow message: the audit sends the lost one alone; the next sweep, with no new
    death, sends nothing."""
    settings = make_settings(redis_url, tmp_path)
    client = Client(settings)
    runs = client.runs
    sent: list[tuple[Any, str]] = []
    reaper = Reaper(runs, lambda tasks, countdown: sent.extend(tasks), settings)
    try:
        flows = {f"f:{i}": {"app": "a"} for i in range(12)}
        run_id = client.submit(package({"a": {"code": "v = 1", "outputs": ["v"]}}, flows))
        unserved = f"{settings.queue}-b"
        other = {"o": {"app": "a", "dizest": {"queue": unserved}}}
        other_run = client.submit(package({"a": {"code": "v = 1", "outputs": ["v"]}}, other))
        assert sum(client.redis.llen(key) for key in broker_lists(unserved)) == 1
        lists = broker_lists(settings.queue)
        assert sum(client.redis.llen(key) for key in lists) == 12
        raw = next(client.redis.rpop(key) for key in lists if client.redis.llen(key))
        assert raw is not None
        lost = {(t.run_id, t.flow_id, t.attempt) for t in tasks_in(json.loads(raw))}
        assert len(lost) == 1 and next(iter(lost))[0] == run_id
        client.redis.lpush(settings.queue, b"not json", b"[1]", b'{"headers": 5}')
        assert reaper.lost.sweep(now=time.monotonic()) == []  # no worker died: no audit
        client.redis.hset(runs.keys.workers, "killed", now_ms() - 10_000)
        again = reaper.lost.sweep(now=time.monotonic() + 10)
        assert set(again) == lost and all(t[0] != other_run for t in again)
        assert [(t.run_id, t.flow_id, t.attempt) for t, _ in sent] == list(again)
        assert all(isinstance(t, FlowTask) and q == settings.queue for t, q in sent)
        assert reaper.lost.sweep(now=time.monotonic() + 20) == []  # that death is audited
        client.redis.lpush(settings.queue, raw)  # as the broker's enqueue does
        client.redis.set(runs.keys.audit_due, "1")
        assert reaper.lost.sweep(now=time.monotonic() + 30) == []  # in the queue again
    finally:
        cleanup(settings)
