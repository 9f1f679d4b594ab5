"""What workers say of themselves with their beat, read back as the operators' view: two real
`dizest worker` processes with different names and queues, a flow held running on one of them
(until the test lets it end), and a killed worker that drops out within the liveness window."""

from __future__ import annotations

import json
import platform
import socket
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

from dizest_worker import liveness, packages, worker_info
from dizest_worker.connection import redis_client
from dizest_worker.keys import Keys
from tests.conftest import package, wait_for
from tests.worker.conftest import WorkerProcess
from tests.worker.test_flow_slots import WAIT_FOR_GO, let_go


def rows(cluster: Any) -> dict[str, dict[str, Any]]:
    return {w["name"]: w for w in cluster.client.workers()}


def test_live_workers_say_who_they_are_what_they_run_and_how_their_machine_is(
    cluster: Callable[..., WorkerProcess],
) -> None:
    settings = cluster.settings  # type: ignore[attr-defined]
    gpu = f"{settings.queue}-gpu"
    before = time.time()
    cpu = cluster("cpu-1", concurrency=2)
    cluster("gpu-1", concurrency=1, queues=gpu)
    seen = rows(cluster)  # the main process's beat at ready says it all already
    assert sorted(seen) == ["cpu-1", "gpu-1"]
    for name, queues, slots in (("cpu-1", [settings.queue], 2), ("gpu-1", [gpu], 1)):
        row = seen[name]
        assert (row["queues"], row["slots"], row["running"], row["flows"]) == (queues, slots, 0, [])
        assert row["host"] == socket.gethostname()
        assert row["version"] == metadata.version("dizest")
        assert before <= row["started_at"] <= time.time()
        assert 0 <= row["last_beat_s"] < liveness.WINDOW_S
        assert len(row["load"]) == 3 and all(x >= 0 for x in row["load"])
        assert 0 < row["memory"]["available"] <= row["memory"]["total"]
        for place in ("artifacts", "runs"):
            assert 0 < row["disk"][place]["free"] <= row["disk"][place]["total"]
        assert row["sandbox"], row  # the layers it recorded at start
    assert seen["cpu-1"]["pid"] == cpu.proc.pid  # the main process, not a pool process's

    held = package(
        {"wait": {"code": WAIT_FOR_GO, "outputs": ["v"]}},
        {"f": {"app": "wait", "dizest": {"queue": gpu}}},
    )
    run_id = cluster.client.submit(held)  # type: ignore[attr-defined]
    running = wait_for(lambda: rows(cluster)["gpu-1"]["running"] == 1 and rows(cluster), timeout=60)
    assert running["gpu-1"]["flows"] == [{"run_id": run_id, "flow_id": "f", "attempt": 1}]
    assert running["cpu-1"]["running"] == 0
    let_go(settings.workdir_root, run_id)
    assert cluster.client.wait(run_id, timeout=60)["status"] == "ready"  # type: ignore[attr-defined]
    assert rows(cluster)["gpu-1"]["running"] == 0

    cpu.kill()  # SIGKILL: its beat and info age out, and it leaves the view with its beat
    wait_for(lambda: "cpu-1" not in rows(cluster), timeout=liveness.WINDOW_S + 3)
    assert sorted(rows(cluster)) == ["gpu-1"]


def test_a_clean_stop_takes_the_info_with_the_beat(cluster: Callable[..., WorkerProcess]) -> None:
    settings = cluster.settings  # type: ignore[attr-defined]
    client = redis_client(settings)
    worker = cluster("w1")
    keys = Keys(settings.prefix)
    assert client.hget(keys.worker_info, "w1") is not None
    # its packages: said by its beating thread, and said again if they go while it lives
    said = wait_for(lambda: client.hget(keys.worker_packages, "w1"), timeout=10)
    assert json.loads(said)["python"] == platform.python_version()
    client.hdel(keys.worker_packages, "w1")
    wait_for(lambda: client.hexists(keys.worker_packages, "w1"), timeout=packages.CHECK_S + 5)
    worker.stop()
    assert client.hget(keys.worker_info, "w1") is None
    assert client.hget(keys.worker_packages, "w1") is None


def test_the_machine_is_sampled_once_per_window_and_a_missing_dir_reads_its_parent(
    tmp_path: Any,
) -> None:
    missing, made = (
        worker_info.disk(str(tmp_path / "not" / "made")),
        worker_info.disk(str(tmp_path)),
    )
    # the same file system: its size, and its free bytes but for what the suite beside wrote
    # between the two reads (a CI run's differed by 12 kB)
    assert missing is not None and made is not None
    assert missing["total"] == made["total"] and abs(missing["free"] - made["free"]) < 2**30
    settings = type("S", (), {"artifact_dir": str(tmp_path), "workdir_root": str(tmp_path)})
    reporter = worker_info.Reporter(settings, ["q"], 1, 0.0)  # type: ignore[arg-type]
    first = reporter.info()
    assert reporter.info() is first  # no system call until MACHINE_S has passed
    reporter._until = 0.0
    assert reporter.info() is not first


def test_a_package_installed_while_the_worker_runs_is_listed_within_seconds(
    cluster: Callable[..., WorkerProcess], tmp_path: Any
) -> None:
    """A `pip install` into the worker's environment: its next flows can import it, so its
    list says it too once the path's directory changed (no restart)."""
    settings = cluster.settings  # type: ignore[attr-defined]
    client = redis_client(settings)
    key = Keys(settings.prefix).worker_packages
    site = tmp_path / "site"
    site.mkdir()
    cluster("w1", env={"PYTHONPATH": str(site)})
    said = lambda: json.loads(client.hget(key, "w1") or b"{}")  # noqa: E731
    assert "fresh_mod_xyz" not in wait_for(said, timeout=10)["modules"]
    info = site / "fresh_dist_xyz-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fresh-dist-xyz\nVersion: 1.2.3\n")
    (site / "fresh_mod_xyz.py").write_text("X = 1\n")
    # (a read between two of these writes is read again at the next check: the path changed)
    listed = lambda: ["fresh-dist-xyz", "1.2.3"] in (now := said())["packages"] and now  # noqa: E731
    assert "fresh_mod_xyz" in wait_for(listed, timeout=2 * packages.CHECK_S + 5)["modules"]
    # and its next flows import it, sandboxed as ever
    pkg = package({"a": {"code": "import fresh_mod_xyz\nv = fresh_mod_xyz.X", "outputs": ["v"]}}, {"f": {"app": "a"}})  # fmt: skip
    run_id = cluster.client.submit(pkg)  # type: ignore[attr-defined]
    report = cluster.client.wait(run_id, timeout=60)  # type: ignore[attr-defined]
    assert report["status"] == "ready", report
