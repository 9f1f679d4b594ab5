"""The operators' Workers view: `GET /api/v1/workers` over real HTTP on two real workers with
different names and queues, `Client.workers()` and `dizest workers` (a real process) on the same
server; a flow held running counts on its worker; a killed worker drops out; admins only."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from dizest_api.app import create_app
from dizest_api.client import Client, Forbidden
from dizest_api.settings import ApiSettings
from dizest_worker.liveness import WINDOW_S
from dizest_worker.settings import WorkerSettings
from tests.api.conftest import Api
from tests.cli.helpers import dizest, ok_json
from tests.conftest import package, wait_for
from tests.worker.conftest import WorkerProcess, cleanup, make_settings
from tests.worker.test_flow_slots import WAIT_FOR_GO, let_go


@dataclass
class Cluster:
    api: Api
    base: str
    settings: WorkerSettings
    workers: dict[str, WorkerProcess]


@pytest.fixture
def two(redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """Workers `cpu-1` (2 slots, the default queue) and `gpu-1` (1 slot, queue `<q>-gpu`), and
    the app on their settings, served on 127.0.0.1."""
    settings = make_settings(redis_url, tmp_path)
    started: dict[str, WorkerProcess] = {}
    try:
        started["cpu-1"] = WorkerProcess(settings, "cpu-1", concurrency=2)
        started["gpu-1"] = WorkerProcess(settings, "gpu-1", 1, f"{settings.queue}-gpu")
        app = create_app(
            ApiSettings(
                secret_key="k" * 32,
                data_dir=str(tmp_path / "data"),
                bcrypt_rounds=4,
                worker=settings,
            )
        )
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield Cluster(
                Api(app, app.test_client()),
                f"http://127.0.0.1:{server.server_port}",
                settings,
                started,
            )
        finally:
            server.shutdown()
    finally:
        for worker in started.values():
            worker.stop()
        cleanup(settings)


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {w["name"]: w for w in items}


def test_admins_see_every_live_worker_what_it_runs_and_a_killed_one_leaves(
    two: Cluster, tmp_path: Path
) -> None:
    admin = two.api.user("root", "admin")
    gpu = f"{two.settings.queue}-gpu"
    seen = by_name(two.api.call("GET", "/workers", admin).json["items"])
    assert sorted(seen) == ["cpu-1", "gpu-1"]
    for name, queues, slots in (("cpu-1", [two.settings.queue], 2), ("gpu-1", [gpu], 1)):
        row = seen[name]
        assert (row["queues"], row["slots"], row["running"]) == (queues, slots, 0)
        assert row["pid"] == two.workers[name].proc.pid
        assert 0 <= row["last_beat_s"] < WINDOW_S
        assert row["host"] and row["version"] and len(row["load"]) == 3
        assert 0 < row["memory"]["available"] <= row["memory"]["total"]
        assert 0 < row["disk"]["artifacts"]["free"] <= row["disk"]["artifacts"]["total"]

    held = package(
        {"wait": {"code": WAIT_FOR_GO, "outputs": ["v"]}},
        {"f": {"app": "wait", "dizest": {"queue": gpu}}},
    )
    answer = two.api.call("POST", "/runs", admin, json={"package": held})
    assert answer.status_code == 201, answer.json
    run_id = answer.json["run_id"]

    def gpu_running() -> dict[str, Any] | None:
        rows = by_name(two.api.call("GET", "/workers", admin).json["items"])
        return rows if rows["gpu-1"]["running"] == 1 else None

    rows = wait_for(gpu_running, timeout=60)
    assert rows["gpu-1"]["flows"] == [{"run_id": run_id, "flow_id": "f", "attempt": 1}]
    assert rows["cpu-1"]["running"] == 0

    # the Python client and the command line say the same, over real HTTP
    token = admin["Authorization"].removeprefix("Bearer ")
    client = Client(two.base, token)
    assert by_name(client.workers())["gpu-1"]["flows"] == rows["gpu-1"]["flows"]
    printed = ok_json(dizest(tmp_path, "workers", "--json", "--server", two.base, DIZEST_TOKEN=token))  # fmt: skip
    assert by_name(printed["items"])["gpu-1"]["running"] == 1
    table = dizest(tmp_path, "workers", "--server", two.base, DIZEST_TOKEN=token)
    assert table.returncode == 0, table.stderr
    head, *lines = table.stdout.splitlines()
    assert head.split() == ["WORKER", "HOST", "QUEUES", "SLOTS", "LOAD", "MEMORY", "DISK", "BEAT"]
    assert [line.split()[:4] for line in lines] == [
        ["cpu-1", rows["cpu-1"]["host"], two.settings.queue, "0/2"],
        ["gpu-1", rows["gpu-1"]["host"], gpu, "1/1"],
    ]
    user = two.api.user("alice")["Authorization"].removeprefix("Bearer ")
    with pytest.raises(Forbidden):
        Client(two.base, user).workers()
    refused = dizest(tmp_path, "workers", "--server", two.base, DIZEST_TOKEN=user)
    assert refused.returncode == 1 and "forbidden" in refused.stderr

    let_go(two.settings.workdir_root, run_id)
    wait_for(lambda: two.api.call("GET", f"/runs/{run_id}", admin).json["status"] == "ready", timeout=60)  # fmt: skip
    two.workers["cpu-1"].kill()  # SIGKILL: no goodbye, its beat ages out
    killed = time.monotonic()
    wait_for(
        lambda: (
            [w["name"] for w in two.api.call("GET", "/workers", admin).json["items"]] == ["gpu-1"]
        ),
        timeout=WINDOW_S + 3,
    )
    assert time.monotonic() - killed <= WINDOW_S + 3


def test_only_admins_acting_as_admins_see_the_workers(cluster_api: Api) -> None:
    api = cluster_api
    assert api.call("GET", "/workers").status_code == 401
    answer = api.call("GET", "/workers", api.user("alice"))
    assert answer.status_code == 403 and answer.json["error"]["message"] == "admins only"
    read_only_admin = api.user("root", "admin", scopes=("read", "run"))
    answer = api.call("GET", "/workers", read_only_admin)
    assert answer.status_code == 403 and answer.json["error"]["code"] == "forbidden"
    # an admin whose token lacks the scope (`dizest login`'s default) is told which, and how
    assert answer.json["error"]["details"] == {"scope": "admin"}, answer.json
    assert "--scope admin" in answer.json["error"]["message"], answer.json
    answer = api.call("GET", "/workers", api.user("root", "admin"))
    assert answer.status_code == 200 and answer.json == {"items": []}  # no worker beats here
