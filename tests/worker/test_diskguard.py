"""The disk guard in a worker (`dizest_core.diskguard`, wired by `WorkerSettings.engine`): under
the reserve, the flow writing the most is stopped with the reason in its status, and the run's
quiet flow completes."""

from __future__ import annotations

from dizest_core.diskguard import free_mb
from tests.core.test_diskguard import two


def test_a_worker_stops_the_top_writer_when_the_disk_is_low(cluster):
    free = free_mb(cluster.settings.workdir_root.rsplit("/", 1)[0])
    assert free is not None
    cluster("a", concurrency=2, env={"DIZEST_DISK_RESERVE_MB": str(int(free) + 1024)})
    client = cluster.client
    run_id = client.submit(two(100_000, 3))
    report = client.wait(run_id, timeout=120)
    writer, sleeper = report["flows"]["writer"], report["flows"]["sleeper"]
    assert writer["status"] == "error", writer
    assert "the disk is almost full" in writer["reason"] and "wrote the most" in writer["reason"]
    assert sleeper["status"] == "ready", sleeper
