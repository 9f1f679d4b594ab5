"""Lost workers, with real worker processes: SIGKILLed mid-flow, lost too often, lost holding
flows it had freed but not started; a Redis restart; and SIGTERM's graceful stop. (Split from
test_failures.py so that the two run on two test processes at once.)"""

from __future__ import annotations

import os
import signal

import pytest

from dizest_worker.client import Client
from tests.conftest import package, wait_for
from tests.redis_server import EmbeddedRedis
from tests.worker.conftest import (
    SLOW,
    WorkerProcess,
    alive,
    cleanup,
    make_settings,
    slow_then_use,
    started,
    started_at,
)


@pytest.fixture
def cluster_overrides() -> dict[str, object]:
    """A 1 s lease: a killed worker's flows are taken over 1 s after its last beat, not 2 s, and
    what its batch held waiting 3 s after (3 leases). Only a dead worker's: a live one's
    expired lease waits lease_grace_s more (`Reaper.sweep`), so a loaded machine that delays
    a beat loses nothing it did not lose with 2 s."""
    return {"lease_s": 1.0}


# SLOW's first attempt (3 s, held stopped by the test), then no wait: the run's working
# directory counts the attempts, as in test_a_lost_worker_does_not_use_up_the_flows_retries
SLOW_FIRST_TIME = (
    "import os, time\n"
    "n = int(dizest.drive().read('tries', '0')) + 1\n"
    "dizest.drive().write('tries', str(n))\n"
    "print('started', os.getpid(), os.getuid(), flush=True)\n"
    "time.sleep(3 if n == 1 else 0)\n"
    "v = 21"
)


def test_sigkilled_worker_mid_flow_loses_nothing(cluster):
    first = cluster("a", concurrency=1)
    client = cluster.client
    pkg = slow_then_use()
    pkg["apps"]["slow"]["code"] = SLOW_FIRST_TIME
    run_id = client.submit(pkg)
    pid = started(client, run_id, "s")
    assert client.runs.flow_field(run_id, "s", "worker") == "a"
    # held still until `a` dies, however long `b` takes to start on a busy machine: a flow that
    # ended first would leave nothing to recover (a SIGKILL still ends a stopped process)
    os.kill(pid, signal.SIGSTOP)
    second = cluster("b", concurrency=1)  # started after, so `a` surely holds the flow
    first.kill()
    wait_for(lambda: not alive(pid))  # the dead worker's flow goes with it, stopped or not
    report = client.wait(run_id, timeout=60)
    assert report["status"] == "ready"
    assert report["flows"]["u"]["outputs"] == {"v": 42}
    assert client.runs.flow_field(run_id, "s", "attempt") == "2"
    assert client.runs.flow_field(run_id, "s", "worker") == "b"
    events = client.runs.events(run_id, count=10_000)
    reasons = [e.data.get("reason") for e in events if e.flow_id == "s" and e.type == "flow.status"]
    assert "worker lost; retrying (attempt 2)" in reasons
    assert [e.data["status"] for e in events if e.flow_id == "s" and e.type == "flow.status"].count(
        "ready"
    ) == 1
    assert "worker lost: requeued" in second.log  # the reaper of `b` took it over


def test_worker_lost_too_often_fails_the_flow(cluster):
    settings = cluster.settings
    assert settings.max_attempts == 3
    client = cluster.client
    run_id = client.submit(slow_then_use(30))
    last = None
    for attempt in (1, 2, 3):
        worker = cluster(f"k{attempt}", concurrency=1)
        _, last = started_at(client, run_id, "s", after=last)
        assert client.runs.flow_field(run_id, "s", "attempt") == str(attempt)
        worker.kill()
    cluster("last", concurrency=1)  # its reaper fails the flow
    report = client.wait(run_id, timeout=60)
    assert report["flows"]["s"]["status"] == "error"
    assert report["flows"]["s"]["reason"] == "worker lost"
    assert report["flows"]["u"]["reason"] == "upstream failed: s"


def test_a_lost_worker_does_not_use_up_the_flows_retries(cluster):
    code = (
        "import os, time\n"
        "n = int(dizest.drive().read('tries', '0')) + 1\n"
        "dizest.drive().write('tries', str(n))\n"
        "print('started', os.getpid(), os.getuid(), flush=True)\n"
        "if n == 1:\n    time.sleep(60)\n"
        "if n == 2:\n    raise RuntimeError('flaky')\n"
        "v = n"
    )
    pkg = package({"flaky": {"code": code, "outputs": ["v"]}}, {"f": {"app": "flaky"}})
    first = cluster("a", concurrency=1)
    client = cluster.client
    run_id = client.submit(pkg, options={"retries": 1})
    started(client, run_id, "f")
    cluster("b", concurrency=1)
    first.kill()  # attempt 1 lost, attempt 2 fails in user code: its one retry is still there
    report = client.wait(run_id, timeout=60)
    assert report["status"] == "ready", report["flows"]["f"]
    assert report["flows"]["f"]["outputs"] == {"v": 3}
    assert client.runs.flow_field(run_id, "f", "attempt") == "3"


def test_flows_a_dead_worker_had_freed_but_not_started_are_sent_again(cluster):
    first = cluster("a", concurrency=1)
    apps = {
        "src": {"code": "v = 1", "outputs": ["v"]},
        "slow": {"code": SLOW % 1, "inputs": ["x"], "outputs": ["v"]},
    }
    flows = {"src": {"app": "src"}} | {  # 23 freed at once: sent as batches of 2
        f"s{i:02d}": {"app": "slow", "in": {"x": [("src", "v")]}} for i in range(24)
    }
    client = cluster.client
    run_id = client.submit(package(apps, flows))
    started(client, run_id, "s01")  # `a` took a batch: one flow runs, the other waits there
    held = [
        f
        for f in flows
        if client.runs.flow_field(run_id, f) == "pending"
        and client.redis.zscore(client.runs.keys.leases, f"{run_id}\x1f{f}\x1f1")
    ]
    assert held, "the batch's waiting flow holds a reservation"
    first.kill()
    second = cluster("b", concurrency=8)  # the 23 one-second flows in three rounds, not six
    report = client.wait(run_id, timeout=60)
    assert report["status"] == "ready"
    assert {report["flows"][f]["outputs"]["v"] for f in flows if f != "src"} == {21}
    assert "sent again" in second.log and "worker lost: requeued" in second.log


def test_redis_restart_workers_reconnect_and_runs_continue(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis", appendonly="yes", appendfsync="always")
    settings = make_settings(server.url, tmp_path)
    worker = WorkerProcess(settings, "a", concurrency=1)
    try:
        client = Client(settings)
        run_id = client.submit(slow_then_use(4))
        started(client, run_id, "s")
        port = server.port
        server.stop()
        server = EmbeddedRedis(
            tmp_path / "redis", port=port, appendonly="yes", appendfsync="always"
        )
        report = client.wait(run_id, timeout=90)
        assert report["status"] == "ready", report
        assert report["flows"]["u"]["outputs"] == {"v": 42}
        again = client.submit(slow_then_use(0))
        assert client.wait(again, timeout=60)["status"] == "ready"
    finally:
        worker.stop()
        cleanup(settings)
        server.stop()


def test_sigterm_is_graceful(cluster):
    worker = cluster("a")
    os.killpg(worker.proc.pid, signal.SIGTERM)
    assert worker.proc.wait(timeout=30) == 0
