"""The in-memory client (dizest_worker.memory_client) against the real one on a real worker:
one scenario (submit with inputs, wait, report, outputs, cancel a running run, rerun a flow)
gives the same reports, minus timings and ids, through both doors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dizest_core.errors import UnknownFlowError
from dizest_worker.client import RunNotFound
from dizest_worker.memory_client import MemoryClient
from tests.conftest import package, wait_for
from tests.worker.conftest import make_settings

CHAIN = package(
    {
        "src": {"code": "print('got', x)\ny = x * 2\n", "inputs": [("x", "variable", None)],
                "outputs": ["y"]},
        "inc": {"code": "import random\nz = dizest.input('y') + 1\nr = random.random()\n",
                "inputs": ["y"], "outputs": ["z", "r"]},
    },
    {"a": {"app": "src"}, "b": {"app": "inc", "in": {"y": [("a", "y")]}}},
)  # fmt: skip
SLOW = package(
    {"wait": {"code": "import time\nprint('start')\ntime.sleep(60)\ny = 1\n", "outputs": ["y"]},
     "use": {"code": "z = dizest.input('y')", "inputs": ["y"], "outputs": ["z"]}},
    {"s": {"app": "wait"}, "u": {"app": "use", "in": {"y": [("s", "y")]}}},
)  # fmt: skip


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """What both doors must agree on (not timings, ids, or the random output `r`)."""
    flows = {
        f: {k: d.get(k) for k in ("status", "reason", "log", "results")}
        | {"outputs": {n: v for n, v in d.get("outputs", {}).items() if n != "r"}}
        for f, d in report["flows"].items()
    }
    return {"status": report["status"], "flows": flows}


def scenario(client: Any) -> dict[str, Any]:
    """The same calls through either door; what they answered, made comparable."""
    seen: dict[str, Any] = {}
    first = client.submit(CHAIN, inputs={"x": 20}, idempotency_key="k1")
    assert client.submit(CHAIN, inputs={"x": 99}, idempotency_key="k1") == first
    seen["first"] = comparable(client.wait(first, timeout=60))
    outputs = client.outputs(first, "b")
    seen["outputs"] = {"z": outputs["z"], "r is a float": isinstance(outputs["r"], float)}
    with pytest.raises(UnknownFlowError):
        client.outputs(first, "nope")
    with pytest.raises(RunNotFound):
        client.get("0" * 32)
    seen["record"] = {k: client.record(first)[k] for k in ("status", "inputs", "flow_inputs")}
    events = list(client.events(first))
    seen["event types"] = sorted({e.type for e in events})
    assert events[-1].final and sum(e.final for e in events) == 1
    states = client.states(first)  # a big run's page reads these, not the whole report
    seen["states"] = {f: (s["status"], s["reason"]) for f, s in states["flows"].items()}
    seen["counts"] = states["counts"]
    part = client.flow_report(first, "a")
    seen["part"] = {k: part[k] for k in ("status", "log", "results", "outputs")}
    assert states["last_event_id"] == part["last_event_id"] == events[-1].id
    with pytest.raises(UnknownFlowError):
        client.flow_report(first, "nope")
    with pytest.raises(RunNotFound):
        client.states("0" * 32)
    assert json.loads(client.snapshot_json(first)) == client.snapshot(first)

    slow = client.submit(SLOW)
    wait_for(lambda: "start" in str(client.get(slow)["flows"]["s"].get("log")), timeout=60)
    client.cancel(slow)
    seen["cancelled"] = comparable(client.wait(slow, timeout=60))

    again = client.rerun(first, "b")
    rerun = client.wait(again, timeout=60)
    seen["rerun"] = comparable(rerun)
    seen["rerun r differs"] = client.outputs(again, "b")["r"] != outputs["r"]
    return seen


def test_memory_client_answers_as_the_cluster_does(cluster: Any, tmp_path: Path) -> None:
    cluster("w1", concurrency=2)
    remote = scenario(cluster.client)
    local = MemoryClient(make_settings(cluster.settings.redis_url, tmp_path / "memory"))
    try:
        here = scenario(local)
    finally:
        local.close()
    assert here == remote
    # the scenario means something: real outputs, a cancel that ended a running flow
    assert remote["first"]["flows"]["b"]["outputs"] == {"z": 41}
    assert remote["counts"] == {"ready": 2} and remote["part"]["log"] == ["got 20"]
    assert remote["cancelled"]["status"] == "cancelled"
    assert remote["cancelled"]["flows"]["s"]["status"] != "ready"
    assert remote["rerun r differs"] is True
