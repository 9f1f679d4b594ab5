"""The Executor in this process (real Redis and flow children, no broker): what it runs
itself and what it leaves to other tasks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from dizest_worker.client import Client
from dizest_worker.connection import redis_client
from dizest_worker.context import RunContext
from dizest_worker.orchestration import Executor, FlowTask
from tests.conftest import package
from tests.worker.conftest import cleanup, make_settings


@pytest.fixture
def executor(redis_url, tmp_path) -> Iterator[tuple[Client, Executor, list[FlowTask]]]:
    """A client and an Executor whose enqueued tasks are recorded, not sent. Celery's hard
    limit for a task here is 8 s, and a task runs nothing that could end after 6 s."""
    settings = make_settings(redis_url, tmp_path, max_flow_timeout_s=4.0, task_slack_s=4.0)
    sent: list[FlowTask] = []
    client = Client(settings)
    client._enqueue = lambda tasks, countdown: sent.extend(t for t, _ in tasks)
    ex = Executor(settings, redis_client(settings), client._enqueue)
    yield client, ex, sent
    ex.close()
    cleanup(settings)


def test_a_task_stops_taking_local_flows_before_celerys_hard_time_limit(executor):
    client, ex, sent = executor
    assert ex.settings.local_budget_s == 6.0
    nap = {"code": "import time\ntime.sleep(2.5)\nv = 1", "outputs": ["v"]}
    use = {"code": "v = dizest.input('x')", "inputs": ["x"], "outputs": ["v"]}
    flows = {
        "a": {"app": "nap"},  # ~2.5 s, then b fits (2.5 + 1 <= 6) but c would not (+ 4)
        "b": {"app": "use", "in": {"x": [("a", "v")]}, "dizest": {"timeout": 1}},
        "c": {"app": "use", "in": {"x": [("b", "v")]}, "dizest": {"timeout": 4}},
    }
    run_id = client.submit(package({"nap": nap, "use": use}, flows))
    assert [t.flow_id for t in sent] == ["a"]
    ex.handle([sent.pop()])
    assert [t.flow_id for t in sent] == ["c"]  # b ran here, c is left to a new task
    assert client.runs.flow_field(run_id, "b") == "ready"
    assert client.runs.flow_field(run_id, "c") == "pending"
    ex.handle([sent.pop()])
    assert client.wait(run_id, timeout=10)["status"] == "ready"


def test_max_flow_timeout_is_every_flows_default_and_bound(redis_url, tmp_path):
    pkg = package(
        {"a": {"code": "v = 1", "outputs": ["v"]}}, {"x": {"app": "a"}, "y": {"app": "a"}}
    )
    pkg["flow"]["y"]["dizest"] = {"timeout": 2}
    ctx = RunContext.build("r", pkg, None, [], {}, {}, {})
    settings = make_settings(redis_url, tmp_path, max_flow_timeout_s=4.0)
    assert ctx.flow_options("x", settings).timeout == 4.0  # no timeout set anywhere
    assert ctx.flow_options("y", settings).timeout == 2.0
    loose = replace(settings, engine=replace(settings.engine, flow_timeout=3600.0))
    assert ctx.flow_options("x", loose).timeout == 4.0  # a worker default above the bound
