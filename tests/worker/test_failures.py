"""Failure handling with real worker processes: cancel, flow limits, retries, routing, malformed
messages and large values (dead workers and a Redis restart: test_worker_loss.py)."""

from __future__ import annotations

import os
from pathlib import Path

from dizest_worker.client import Client
from dizest_worker.messages import RUN_FLOW
from tests.conftest import package, wait_for
from tests.worker.conftest import WorkerProcess, queued, slow_then_use, started


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
