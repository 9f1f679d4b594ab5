"""The Executor in this process (real Redis and flow children, no broker): what it runs
itself and what it leaves to other tasks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest

from dizest_worker.client import Client
from dizest_worker.connection import redis_client
from dizest_worker.context import RunContext
from dizest_worker.messages import broker_lists
from dizest_worker.orchestration import HOLD_PER_SLOT, Executor, FlowTask
from tests.conftest import package, wait_for
from tests.worker.conftest import cleanup, make_settings


@pytest.fixture(params=[4.0])
def executor(request, redis_url, tmp_path) -> Iterator[tuple[Client, Executor, list[FlowTask]]]:
    """A client and an Executor whose enqueued tasks are recorded, not sent. Celery's hard
    limit for a task here is 8 s, and a task runs nothing that could end after 6 s (unless
    the test asks for another `max_flow_timeout_s`, through indirect parametrization)."""
    timeout = request.param
    settings = make_settings(redis_url, tmp_path, max_flow_timeout_s=timeout, task_slack_s=timeout)
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


def test_freed_children_wait_here_while_the_queue_has_a_backlog(executor):
    """Beyond its free slot a process keeps the children it freed (up to HOLD_PER_SLOT a
    slot) while messages wait in its queue: no process is idle for want of work, so a message
    per child would only cost Celery's CPU. With an empty queue the others are sent."""
    client, ex, sent = executor
    one = {"code": "v = 1", "outputs": ["v"]}
    use = {"code": "v = dizest.input('x') + 1", "inputs": ["x"], "outputs": ["v"]}
    flows = {"a": {"app": "one"}, **{c: {"app": "use", "in": {"x": [("a", "v")]}} for c in "bcd"}}
    pkg = package({"one": one, "use": use}, flows)
    assert ex.settings.local_slots * HOLD_PER_SLOT >= 3
    waiting = broker_lists(ex.settings.queue)[0]
    client.runs.client.rpush(waiting, "a message of someone else's")  # never consumed here
    run_id = client.submit(pkg)
    ex.handle([sent.pop()])
    assert sent == []  # b, c and d ran here, after a
    assert client.wait(run_id, timeout=10)["status"] == "ready"
    client.runs.client.delete(waiting)
    run_id = client.submit(pkg)
    ex.handle([sent.pop()])
    assert sorted(t.flow_id for t in sent) == ["c", "d"]  # b took the free slot
    while sent:
        ex.handle([sent.pop()])
    assert client.wait(run_id, timeout=10)["status"] == "ready"


@pytest.mark.parametrize("executor", [300.0], indirect=True)  # no flow sent for the budget
def test_held_flows_go_to_the_broker_once_its_queue_is_empty(executor):
    """Flows held behind a long one are sent once the queue has no message waiting (another
    process may be idle for want of them), not kept until the long one ends."""
    client, ex, sent = executor
    one = {"code": "v = 1", "outputs": ["v"]}
    slow = {"code": "import time\ntime.sleep(2)\nv = 2", "inputs": ["x"], "outputs": ["v"]}
    use = {"code": "v = dizest.input('x') + 1", "inputs": ["x"], "outputs": ["v"]}
    flows = {
        "a": {"app": "one"},
        "b": {"app": "slow", "in": {"x": [("a", "v")]}},  # the most urgent: it is first
        **{c: {"app": "use", "in": {"x": [("a", "v")]}} for c in "cd"},
    }
    waiting = broker_lists(ex.settings.queue)[0]
    client.runs.client.rpush(waiting, "a message of someone else's")  # c and d are held
    run_id = client.submit(package({"one": one, "slow": slow, "use": use}, flows))

    def drain() -> None:  # the other message is taken while b runs
        wait_for(lambda: client.runs.flow_field(run_id, "b") == "running", timeout=30)
        client.runs.client.delete(waiting)

    thread = threading.Thread(target=drain)
    thread.start()
    ex.handle([sent.pop()])
    thread.join()
    assert sorted(t.flow_id for t in sent) == ["c", "d"]  # spilled, not run here after b
    for flow_id in "cd":
        assert client.runs.flow_field(run_id, flow_id) == "pending"
    while sent:
        ex.handle([sent.pop()])
    assert client.wait(run_id, timeout=10)["status"] == "ready"
