"""A run read in parts (dizest_worker.run_parts): one flow's part is what the whole report keeps
of it, while the run runs and after, whatever its id; the states report is the report's states
with the newest event's id."""

from __future__ import annotations

from typing import Any

import pytest

from dizest_core.errors import UnknownFlowError
from dizest_worker.client import Client, RunNotFound
from tests.conftest import package, wait_for

ODD = 'say "hi" é'  # written escaped in an event's JSON: its events are found by decoding them
TALK = "import time\nprint('one')\ndizest.clear()\nprint('two')\ndizest.result('r', 5)\n"
SLOW = package(
    {"talk": {"code": TALK + "x = 3\nprint('start')\ntime.sleep(60)\n", "outputs": ["x"]},
     "use": {"code": "z = dizest.input('x')", "inputs": ["x"], "outputs": ["z"]},
     "quick": {"code": "print('q')\nq = 7\n", "outputs": ["q"]}},
    {"s": {"app": "talk"}, "s2": {"app": "quick"}, "u": {"app": "use", "in": {"x": [("s", "x")]}},
     ODD: {"app": "quick"}},
)  # fmt: skip


def parts_equal_the_report(client: Client, run_id: str) -> dict[str, Any]:
    report = client.get(run_id)
    newest = client.event_batch(run_id, count=100_000)[-1].id
    for flow_id, whole in report["flows"].items():
        part = client.flow_report(run_id, flow_id)
        assert part == {**whole, "last_event_id": newest}, flow_id
    states = client.states(run_id)
    assert states["last_event_id"] == newest
    assert states["flows"] == {
        f: {k: whole[k] for k in ("status", "reason", "index", "duration_s")}
        for f, whole in report["flows"].items()
    }
    return report


def test_a_flows_part_is_what_the_report_keeps_of_it(cluster: Any) -> None:
    cluster("w1", concurrency=3)
    client: Client = cluster.client
    run_id = client.submit(SLOW)
    wait_for(lambda: client.states(run_id)["counts"].get("ready") == 2, timeout=60)
    wait_for(lambda: "start" in client.flow_report(run_id, "s")["log"], timeout=60)
    running = parts_equal_the_report(client, run_id)
    assert running["flows"]["s"]["log"] == ["two", "start"]  # the clear folded: "one" is gone
    assert [r["name"] for r in running["flows"]["s"]["results"]] == ["r"]
    assert running["flows"][ODD]["log"] == ["q"] and running["flows"]["s2"]["log"] == ["q"]
    client.cancel(run_id)
    client.wait(run_id, timeout=60)
    ended = parts_equal_the_report(client, run_id)
    assert ended["status"] == "cancelled"
    assert client.states(run_id)["counts"] == {"ready": 2, "error": 1, "idle": 1}
    with pytest.raises(UnknownFlowError):
        client.flow_report(run_id, "nope")
    with pytest.raises(RunNotFound):
        client.flow_report("0" * 32, "s")


def test_an_ended_runs_states_are_kept_while_it_exists_a_running_ones_read_again(
    cluster: Any,
) -> None:
    cluster("w1", concurrency=3)
    client: Client = cluster.client
    run_id = client.submit(SLOW)
    # s2 ended (no step writes its state again) and s runs: the run is not over
    wait_for(lambda: client.states(run_id)["counts"] == {"ready": 2, "running": 1, "idle": 1}, timeout=60)  # fmt: skip
    flows, probe = client.runs.keys.flows(run_id), "s2:duration"  # (read by no step)

    def duration() -> float:
        return float(client.states(run_id)["flows"]["s2"]["duration_s"])

    client.redis.hset(flows, probe, "11.5")
    assert duration() == 11.5  # running: read again
    client.cancel(run_id)
    client.wait(run_id, timeout=60)
    ended = client.states(run_id)
    client.redis.hset(flows, probe, "22.5")  # no step writes an ended run's flows
    assert client.states(run_id) == ended and duration() == 11.5  # kept
    fresh = Client(client.settings, redis_client=client.redis, celery_app=client.app)
    fresh.parts.max_ended_flows = 3  # fewer than the run's 4: not kept
    assert fresh.states(run_id)["flows"]["s2"]["duration_s"] == 22.5
    client.redis.hset(flows, probe, "33.5")
    assert fresh.states(run_id)["flows"]["s2"]["duration_s"] == 33.5
    client.redis.delete(client.runs.keys.run(run_id))
    with pytest.raises(RunNotFound):
        client.states(run_id)  # kept no longer than the run
