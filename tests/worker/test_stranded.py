"""A worker SIGKILLed after taking a flow message from the broker and before claiming it leaves
the message unacknowledged, which the broker gives back only after its visibility timeout (the
longest flow timeout plus 10 minutes). A reaper sends such a flow again once nobody has held it
for a lease and its grace (dizest_worker.stranded), so the run ends in seconds, the flow once."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time

from dizest_core.events import FLOW_STATUS
from dizest_worker.client import Client
from dizest_worker.stranded import UNACKED, UNACKED_INDEX, tasks_of
from tests.conftest import package
from tests.worker.conftest import WorkerProcess, cleanup, make_settings

# Takes one message from the queue as a worker does (unacknowledged), then dies as a SIGKILLed
# worker does: nothing acknowledged, nothing given back.
TAKE_AND_DIE = """
import os, signal, sys
from kombu import Connection
with Connection(sys.argv[1], transport_options={"priority_steps": list(range(10))}) as conn:
    channel = conn.channel()
    message = None
    while message is None:
        message = channel.basic_get(sys.argv[2], no_ack=False)
    print("taken", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_message_taken_by_a_killed_worker_runs_again_within_seconds(redis_url, tmp_path):
    settings = make_settings(redis_url, tmp_path, lease_s=1.0, lease_grace_s=1.0)
    client = Client(settings)
    worker, run_id = None, ""
    try:
        run_id = client.submit(
            package({"a": {"code": "v = 1", "outputs": ["v"]}}, {"a": {"app": "a"}})
        )
        taker = subprocess.run(
            [sys.executable, "-c", TAKE_AND_DIE, settings.redis_url, settings.queue],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert taker.stdout == b"taken\n" and taker.returncode == -9, taker
        held = [tasks_of(raw) for raw in client.redis.hvals(UNACKED)]
        assert [(t.run_id, t.flow_id) for ts in held for t in ts if t.run_id == run_id] == [
            (run_id, "a")
        ]
        assert client.redis.llen(settings.queue) == 0  # the broker holds no other copy
        started = time.monotonic()
        worker = WorkerProcess(settings, "w1", concurrency=1)
        report = client.wait(run_id, timeout=60)
        assert report["status"] == "ready", report
        assert time.monotonic() - started < 30  # lease + grace + a scan, not the visibility timeout
        events = client.runs.events(run_id, count=100)
        starts = [e for e in events if e.type == FLOW_STATUS and e.data["status"] == "running"]
        assert len(starts) == 1
    finally:
        if worker is not None:
            worker.stop()
        for tag, raw in client.redis.hgetall(UNACKED).items():  # the killed taker's, left
            if any(t.run_id == run_id for t in tasks_of(raw)):
                client.redis.hdel(UNACKED, tag)
                client.redis.zrem(UNACKED_INDEX, tag)
        cleanup(settings)


def test_what_is_no_flow_message_in_the_unacked_hash_is_left_alone() -> None:
    """The hash is the broker's, shared with every Celery task on this Redis: anything that is
    not a well-formed dizest flow message gives no task, and never an error that would stop
    the reaper's sweep."""
    body = base64.b64encode(
        json.dumps([[{"run_id": "r", "flow_id": "f", "attempt": 2}], {}, {}]).encode()
    )
    good = {"headers": {"task": "dizest.run_flow"}, "properties": {"body_encoding": "base64"}}
    entry = lambda message: json.dumps([message, "", "q"]).encode()  # noqa: E731
    assert [
        (t.run_id, t.flow_id, t.attempt) for t in tasks_of(entry({**good, "body": body.decode()}))
    ] == [("r", "f", 2)]
    for bad in (
        None,
        b"not json",
        b"[]",
        entry({**good, "headers": {"task": "someone.else"}, "body": body.decode()}),
        entry({**good, "body": "%%% not base64"}),
        entry({**good, "body": base64.b64encode(b'[[{"run_id": 5}], {}, {}]').decode()}),
        entry({**good, "body": base64.b64encode(b"[[[]], {}, {}]").decode()}),
        entry({"headers": "x", "body": 1}),
    ):
        assert tasks_of(bad) == [], bad
