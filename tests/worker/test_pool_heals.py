"""A pool process whose zygote died is never reused broken (issue 7: `os.kill(os.getppid(), 9)`
from a flow used to make every later task of that pool process fail with BrokenPipeError).

The zygote is killed from outside, by PID, as any cause of its death would leave it; the
flow that was running is given back at once and requeued as a worker loss."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from dizest_worker.client import Client
from tests.conftest import wait_for
from tests.worker.conftest import WorkerProcess, slow_then_use, started


def children(pid: int) -> list[int]:
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[1] == str(pid) and fields[0] != "Z":
            found.append(int(entry))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pool_zygotes(worker: WorkerProcess) -> dict[int, int]:
    """Pool process pid -> pid of the zygote it started (its child running dizest_core.zygote)."""
    found = {}
    for pool in children(worker.proc.pid):
        for child in children(pool):
            if "dizest_core.zygote" in cmdline(child):
                found[pool] = child
    return found


def flow_statuses(client: Client, run_id: str, flow_id: str) -> list[tuple[str, str | None]]:
    return [
        (e.data["status"], e.data.get("reason"))
        for e in client.runs.events(run_id, count=10_000)
        if e.flow_id == flow_id and e.type == "flow.status"
    ]


def test_zygote_killed_under_a_running_flow_gives_it_back_and_heals(cluster):
    worker = cluster("a", concurrency=1)
    client = cluster.client
    run_id = client.submit(slow_then_use(2))
    started(client, run_id, "s")
    zygotes = pool_zygotes(worker)
    assert len(zygotes) == 1, zygotes
    ((pool, zygote),) = zygotes.items()
    os.kill(zygote, signal.SIGKILL)

    report = client.wait(run_id, timeout=15)
    assert report["status"] == "ready", (report, worker.log)
    assert report["flows"]["u"]["outputs"] == {"v": 42}
    statuses = flow_statuses(client, run_id, "s")
    assert ("pending", "worker lost; retrying (attempt 2)") in statuses, statuses
    assert [s for s, _ in statuses].count("ready") == 1
    assert client.runs.flow_field(run_id, "s", "attempt") == "2"
    assert "the flow supervisor is broken" in worker.log

    for _ in range(3):  # the same pool process runs the next flows with a new zygote
        again = client.submit(slow_then_use(0))
        assert client.wait(again, timeout=15)["status"] == "ready", worker.log
    assert "BrokenPipeError" not in worker.log
    ((new_pool, new_zygote),) = pool_zygotes(worker).items()
    assert new_zygote != zygote and new_pool == pool


def test_zygote_killed_while_idle_is_replaced_before_the_next_flow(cluster):
    worker = cluster("a", concurrency=1)
    client = cluster.client
    first = client.submit(slow_then_use(0))
    assert client.wait(first, timeout=15)["status"] == "ready"
    ((pool, zygote),) = wait_for(lambda: pool_zygotes(worker)).items()
    os.kill(zygote, signal.SIGKILL)
    wait_for(lambda: zygote not in children(pool))

    run_id = client.submit(slow_then_use(0))
    report = client.wait(run_id, timeout=15)
    assert report["status"] == "ready", (report, worker.log)
    assert client.runs.flow_field(run_id, "s", "attempt") == "1"  # nothing was lost
