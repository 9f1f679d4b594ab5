"""Failure handling with real worker processes: dead workers, cancel, limits, retries, routing,
malformed messages, large values and a Redis restart."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from dizest_worker.client import Client
from dizest_worker.messages import RUN_FLOW
from tests.conftest import package, wait_for
from tests.redis_server import EmbeddedRedis
from tests.worker.conftest import (
    SLOW,
    WorkerProcess,
    alive,
    cleanup,
    host_pid,
    make_settings,
    queued,
    slow_then_use,
)


def started(client: Client, run_id: str, flow_id: str, after: str | None = None) -> int:
    """Wait for the flow's next 'started <pid>' line (after event `after`); return the pid."""
    return started_at(client, run_id, flow_id, after)[0]


def started_at(
    client: Client, run_id: str, flow_id: str, after: str | None = None
) -> tuple[int, str]:
    for event in client.events(run_id, after=after):
        entry = event.data.get("entry")
        if event.flow_id == flow_id and isinstance(entry, str) and entry.startswith("started"):
            _, pid, uid = entry.split()
            return host_pid(int(pid), int(uid)), event.id
    raise AssertionError("the run ended before the flow started")


def test_two_workers_share_one_run(cluster):
    cluster("a", concurrency=1)
    cluster("b", concurrency=1)
    apps = {
        "src": {"code": "v = 1", "outputs": ["v"]},
        "nap": {
            "code": "import time\ntime.sleep(0.3)\nv = dizest.input('x')",
            "inputs": ["x"],
            "outputs": ["v"],
        },
    }
    flows = {"src": {"app": "src"}} | {
        f"n{i}": {"app": "nap", "in": {"x": [("src", "v")]}} for i in range(8)
    }
    client = cluster.client
    run_id = client.submit(package(apps, flows))
    report = client.wait(run_id, timeout=60)
    assert report["status"] == "ready"
    workers = {client.runs.flow_field(run_id, f, "worker") for f in flows}
    assert workers == {"a", "b"}


def test_sigkilled_worker_mid_flow_loses_nothing(cluster):
    first = cluster("a", concurrency=1)
    client = cluster.client
    run_id = client.submit(slow_then_use(3))
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


def test_cancel_kills_running_children_within_a_second(cluster):
    cluster("a", concurrency=1)
    client = cluster.client
    run_id = client.submit(slow_then_use(60))
    pid = started(client, run_id, "s")
    client.cancel(run_id)
    wait_for(lambda: not _alive(pid), timeout=1.5)
    report = client.wait(run_id, timeout=10)
    assert report["status"] == "cancelled"
    assert report["flows"]["s"]["reason"] == "cancelled"
    assert report["flows"]["u"]["reason"] == "cancelled"


def test_cancel_is_seen_by_the_heartbeat_when_the_control_message_is_lost(cluster):
    cluster("a", concurrency=1)
    client = cluster.client
    run_id = client.submit(slow_then_use(60))
    pid = started(client, run_id, "s")
    runs = client.runs
    keys = [runs.keys.run(run_id), runs.keys.flows(run_id), runs.keys.events(run_id)]
    # the CANCEL script with its control message sent where no worker listens: as if lost
    runs._cancel(keys=keys, args=[*runs._base_args(run_id), f"{runs.keys.prefix}:nobody"])
    wait_for(lambda: not _alive(pid), timeout=cluster.settings.lease_s / 3 + 1.5)
    report = client.wait(run_id, timeout=10)
    assert report["status"] == "cancelled"
    assert report["flows"]["s"]["reason"] == "cancelled"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # reaped between the signal and the open,
        return False  # or between the open and the read (ESRCH, as in CI at f831747)
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_flow_timeout_and_memory_limit(cluster):
    cluster("a")
    client = cluster.client
    slow = client.submit(slow_then_use(60, {"timeout": 1}))
    hog = package(
        {
            "hog": {
                "code": "b = []\nwhile True:\n    b.append(bytearray(50 << 20))",
                "outputs": ["v"],
            }
        },
        {"h": {"app": "hog"}},
    )
    hungry = client.submit(hog, options={"memory_limit_mb": 300})
    assert client.wait(slow, timeout=30)["flows"]["s"]["reason"] == "timeout after 1 s"
    assert client.wait(hungry, timeout=30)["flows"]["h"]["reason"] == (
        "memory limit exceeded (300 MB)"
    )


def test_retries_with_backoff(cluster):
    cluster("a")
    code = (
        "n = int(dizest.drive().read('tries', '0')) + 1\n"
        "dizest.drive().write('tries', str(n))\n"
        "if n < 2:\n    raise RuntimeError('flaky')\nv = n"
    )
    pkg = package({"flaky": {"code": code, "outputs": ["v"]}}, {"f": {"app": "flaky"}})
    client = cluster.client
    run_id = client.submit(pkg, options={"retries": 2})
    report = client.wait(run_id, timeout=30)
    assert report["status"] == "ready" and report["flows"]["f"]["outputs"] == {"v": 2}
    statuses = [e for e in client.runs.events(run_id) if e.type == "flow.status"]
    reasons = [e.data.get("reason") for e in statuses]
    assert "retrying after: RuntimeError: flaky" in reasons
    retrying = reasons.index("retrying after: RuntimeError: flaky")
    rerun = next(e for e in statuses[retrying:] if e.data["status"] == "running")
    assert rerun.ts - statuses[retrying].ts >= cluster.settings.engine.retry_backoff_s  # it waited


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


def test_flows_are_routed_to_named_queues(cluster):
    gpu_queue = cluster.settings.queue + "-gpu"
    cluster("cpu", concurrency=1)
    cluster("gpu", concurrency=1, queues=gpu_queue)
    pkg = slow_then_use(0, {"queue": gpu_queue})
    client = cluster.client
    run_id = client.submit(pkg)
    assert client.wait(run_id, timeout=30)["status"] == "ready"
    assert client.runs.flow_field(run_id, "s", "worker") == "gpu"
    assert client.runs.flow_field(run_id, "u", "worker") == "cpu"


def test_malformed_task_payloads_are_rejected_not_retried(cluster):
    worker = cluster("a", concurrency=1)
    client = cluster.client
    queue = cluster.settings.queue
    for payload in ("garbage", {"run_id": 5}, {"run_id": "r", "flow_id": "f", "attempt": 0}):
        client.app.send_task(RUN_FLOW, args=[payload], queue=queue)
    wait_for(lambda: worker.log.count("rejected malformed flow task") == 3, timeout=20)
    # acked, so never delivered again: not in the queue, nor in kombu's unacked hash
    wait_for(lambda: queued(client.redis, queue) == 0 and not _unacked(client, queue), timeout=10)
    run_id = client.submit(slow_then_use(0))
    assert client.wait(run_id, timeout=30)["status"] == "ready"
    assert worker.proc.poll() is None
    assert worker.log.count("rejected malformed flow task") == 3


def _unacked(client: Client, queue: str) -> list[bytes]:
    """Messages for `queue` that kombu's Redis transport delivered and holds until acked."""
    return [m for m in client.redis.hvals("unacked") if queue.encode() in m]  # names are unique


def test_100mb_output_between_worker_processes(cluster):
    size = 100 << 20
    other = cluster.settings.queue + "-b"
    workers = [cluster("a", concurrency=1), cluster("b", concurrency=1, queues=other)]
    code_use = (
        "import resource\nx = dizest.input('x')\n"
        "v = [len(x), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024]"
    )
    pkg = package(
        {
            "big": {"code": f"v = b'x' * {size}", "outputs": ["v"]},
            "use": {"code": code_use, "inputs": ["x"], "outputs": ["v"]},
        },
        {"b": {"app": "big"}, "u": {"app": "use", "in": {"x": [("b", "v")]}}},
    )
    pkg["flow"]["u"]["dizest"] = {"queue": other}
    client = cluster.client
    run_id = client.submit(pkg)
    report = client.wait(run_id, timeout=120)
    length, peak = report["flows"]["u"]["outputs"]["v"]
    assert length == size
    assert peak < 2.3 * size  # the consumer holds the value once, plus the interpreter
    assert client.runs.flow_field(run_id, "u", "worker") == "b"
    pool = _pool_pids(workers)
    assert len(pool) == 4  # each worker's main process and its one pool process
    for worker_pid in pool:
        assert _peak_rss(worker_pid) < 200 << 20  # worker processes never hold the value


def _pool_pids(workers: list[WorkerProcess]) -> list[int]:
    """The `dizest_cli worker` processes (main and pool) of these workers only: other tests
    and other people's workers on this machine are none of this test's business."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    ours = {w.proc.pid for w in workers}
    grew = True
    while grew:  # the workers' process trees
        more = {pid for pid, ppid in parents.items() if ppid in ours} - ours
        ours |= more
        grew = bool(more)
    pids = []
    for pid in sorted(ours):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"dizest_cli\x00worker" in cmd:
            pids.append(pid)
    return pids


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


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
    second = cluster("b", concurrency=4)
    report = client.wait(run_id, timeout=60)
    assert report["status"] == "ready"
    assert {report["flows"][f]["outputs"]["v"] for f in flows if f != "src"} == {21}
    assert "sent again" in second.log and "worker lost: requeued" in second.log
