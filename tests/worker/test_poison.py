"""Poison input at the task boundary (issue 7, item 5), against real Redis and real workers.

The door (`Client.submit`) refuses what breaks `dizest_core.limits` and stores nothing. What a
door of another version (here: a client with the limits lifted) lets through must end as that
flow's error, never break the worker process, and never disturb another user's runs.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dizest_core.errors import InputError
from dizest_core.execution import Supervisor
from dizest_worker.client import Client
from dizest_worker.connection import redis_client
from dizest_worker.orchestration import Executor, FlowTask
from dizest_worker.settings import WorkerSettings
from tests.conftest import package, wait_for
from tests.core.test_limits import nested
from tests.worker.conftest import cleanup, make_settings

ECHO = package(
    {
        "echo": {"code": "y = dizest.input('x', 0)", "inputs": [("x", "variable", None)],
                 "outputs": ["y"]},
        "double": {"code": "z = [dizest.input('y'), dizest.input('y')]", "inputs": ["y"],
                   "outputs": ["z"]},
    },
    {"e": {"app": "echo"}, "d": {"app": "double", "in": {"y": [("e", "y")]}}},
)  # fmt: skip


def self_referencing() -> Any:
    loop: list[Any] = [1]
    loop.append({"again": loop})
    return loop


POISON = st.one_of(
    st.integers(33, 3000).flatmap(
        lambda d: st.sampled_from([nested(d, "list"), nested(d, "dict")])
    ),
    st.builds(self_referencing),
    st.sampled_from([object(), {1, 2}, b"raw", float("nan"), 10**5000]),
    st.integers(1, 3).map(lambda n: ["x" * (1 << 14)] * (n * 64)),  # over max_input_bytes
)


def doorless(settings: WorkerSettings) -> Client:
    """A client whose door lets nearly anything through (as a program of an older version)."""
    engine = replace(settings.engine, max_input_depth=100_000, max_input_nodes=10**9)
    return Client(replace(settings, engine=engine))


def stored_keys(client: Client) -> set[bytes]:
    return set(client.redis.scan_iter(match=f"{client.settings.prefix}:*", count=1000))


@pytest.fixture
def executor(redis_url, tmp_path) -> Iterator[tuple[Client, Executor, list[FlowTask]]]:
    """A client and this process's Executor; tasks are recorded, not sent to a broker."""
    settings = make_settings(redis_url, tmp_path, max_flow_timeout_s=10.0, task_slack_s=4.0)
    settings = replace(settings, engine=replace(settings.engine, max_input_bytes=1 << 20))
    sent: list[FlowTask] = []
    client = Client(settings)
    client._enqueue = lambda tasks, countdown: sent.extend(t for t, _ in tasks)
    ex = Executor(settings, redis_client(settings), client._enqueue)
    yield client, ex, sent
    ex.close()
    cleanup(settings)


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=POISON, where=st.sampled_from(["x", "e.x"]))
def test_poison_is_refused_at_the_door_and_nothing_is_stored(executor, value, where) -> None:  # fmt: skip
    client, _, sent = executor
    before = stored_keys(client)
    with pytest.raises(InputError) as caught:
        client.submit(ECHO, inputs={where: value})
    assert caught.value.code.startswith("input_") and repr(where) in str(caught.value)
    assert stored_keys(client) == before and not sent


def test_options_and_package_are_checked_too(executor) -> None:
    client, _, sent = executor
    with pytest.raises(InputError) as caught:
        client.submit(ECHO, options={"retries": nested(100, "list")})
    assert caught.value.code == "option_too_deep"
    deep = {**ECHO, "flow": {**ECHO["flow"]}}
    deep["flow"]["e"] = {**deep["flow"]["e"], "data": nested(100, "dict")}
    with pytest.raises(InputError) as caught:
        client.submit(deep)
    assert caught.value.code == "package_too_deep" and not sent


def run_to_end(ex: Executor, sent: list[FlowTask]) -> list[FlowTask]:
    handled = []
    while sent:
        handled.append(sent.pop(0))
        ex.handle([handled[-1]])
    return handled


# Not hypothesis: it raises the recursion limit while a test runs, and that is what this is about.
@pytest.mark.parametrize(("depth", "kind"), [(500, "dict"), (640, "list"), (800, "dict")])
def test_what_gets_through_ends_as_that_flows_error_and_the_executor_carries_on(
    executor, depth: int, kind: str
) -> None:
    client, ex, sent = executor
    supervisor = ex.supervisor
    poisoned = doorless(client.settings)
    poisoned._enqueue = client._enqueue
    run_id = poisoned.submit(ECHO, inputs={"x": nested(depth, kind)}, options={"retries": 2})
    handled = run_to_end(ex, sent)
    assert [(t.flow_id, t.attempt) for t in handled] == [("e", 1)]  # failed once, not retried
    report = client.get(run_id)
    assert report["status"] == "error"
    assert report["flows"]["e"]["reason"].startswith("could not start the flow: RecursionError")
    assert report["flows"]["d"]["status"] == "idle"  # not run: upstream failed
    assert ex.supervisor is supervisor and not supervisor.children and not supervisor.forking
    fine = client.submit(ECHO, inputs={"x": 21})
    run_to_end(ex, sent)
    done = client.get(fine)
    assert done["status"] == "ready" and done["flows"]["d"]["outputs"] == {"z": [21, 21]}


def test_a_supervisor_left_broken_is_rebuilt_never_reused(executor) -> None:
    """A zygote that died between tasks (killed, or taken down by a flow) is found before the
    next task claims anything: the Executor replaces its Supervisor and runs the task normally,
    never on the broken one."""
    client, ex, sent = executor
    broken = ex.supervisor
    os.kill(broken.zygote.proc.pid, signal.SIGKILL)
    wait_for(lambda: broken.zygote.proc.poll() is not None)
    first = client.submit(ECHO, inputs={"x": 1})
    run_to_end(ex, sent)
    assert isinstance(ex.supervisor, Supervisor) and ex.supervisor is not broken
    assert ex.supervisor.zygote.proc.poll() is None
    assert client.get(first)["status"] == "ready"
    fine = client.submit(ECHO, inputs={"x": 2})
    run_to_end(ex, sent)
    assert client.get(fine)["status"] == "ready"


@settings(
    max_examples=3,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(depth=st.integers(500, 800))
def test_poison_through_a_real_worker_never_disturbs_another_users_runs(cluster, depth) -> None:
    """Six well-formed runs of one user race poisoned runs of another through one worker of
    two pool processes: every poisoned run ends in error, every other run ends ready."""
    if not getattr(cluster, "worker", None):
        cluster.worker = cluster("w1", concurrency=2)  # type: ignore[attr-defined]
    good, bad = cluster.client, doorless(cluster.settings)
    poisoned: list[str] = []

    def submit_poison() -> None:
        for i in range(3):
            value = nested(depth + i, "dict" if i % 2 else "list")
            poisoned.append(bad.submit(ECHO, inputs={"x": value}))

    attacker = threading.Thread(target=submit_poison)
    attacker.start()
    runs = {good.submit(ECHO, inputs={"x": n}): n for n in range(6)}
    attacker.join()
    for run_id, n in runs.items():
        report = good.wait(run_id, timeout=60)
        assert report["status"] == "ready", report
        assert report["flows"]["d"]["outputs"] == {"z": [n, n]}
    for run_id in poisoned:
        report = good.wait(run_id, timeout=60)
        assert report["status"] == "error"
        assert "RecursionError" in report["flows"]["e"]["reason"]
    assert "already running" not in cluster.worker.log  # type: ignore[attr-defined]


DEEP_OUTPUT = package(
    {
        "make": {"code": "y = 0\nfor _ in range(300):\n    y = [y]", "outputs": ["y"]},
        "count": {
            "code": "v, z = dizest.input('y'), 0\nwhile isinstance(v, list):\n    v, z = v[0], z + 1",
            "inputs": ["y"],
            "outputs": ["z"],
        },
    },
    {"m": {"app": "make"}, "c": {"app": "count", "in": {"y": [("m", "y")]}}},
)


def test_an_output_preview_over_the_limits_is_replaced_and_the_value_kept(executor) -> None:
    """What a flow sends is held to the same limits in reports (the API must encode them
    again), while the value itself reaches the flows that read it untouched."""
    client, ex, sent = executor
    run_id = client.submit(DEEP_OUTPUT)
    run_to_end(ex, sent)
    report = client.get(run_id)
    assert report["status"] == "ready", report
    shown = report["flows"]["m"]["outputs"]["y"]
    assert shown["$type"] == "dizest.limits"
    assert shown["$repr"].startswith("preview omitted: output 'y' is nested deeper than 32")
    assert report["flows"]["c"]["outputs"] == {"z": 300}


def test_a_rerun_goes_through_the_same_door(executor) -> None:
    """A run stored before the limits (or under looser ones) cannot be rerun past them."""
    client, _, sent = executor
    poisoned = doorless(client.settings)
    poisoned._enqueue = client._enqueue
    run_id = poisoned.submit(ECHO, inputs={"e.x": nested(40, "list")})
    sent.clear()
    before = stored_keys(client)
    with pytest.raises(InputError) as caught:
        client.rerun(run_id, "e")
    assert caught.value.code == "input_too_deep" and "'e.x'" in str(caught.value)
    assert stored_keys(client) == before and not sent


NAMES = package(
    {
        "said": {"code": 'dizest.output("v\\ud800", 1)'},
        "forged": {"code": 'dizest._emit(("output", "v\\ud800", b"\\x80\\x04K\\x01.", 1))'},
        "fine": {"code": "z = 3", "outputs": ["z"]},
    },
    {"said": {"app": "said"}, "forged": {"app": "forged"}, "fine": {"app": "fine"}},
)


def test_an_output_named_with_a_lone_surrogate_is_that_flows_error(executor) -> None:
    """An output's name is a key of the run's state in Redis: a name with a lone surrogate
    made the worker's write raise (a traceback in its log, its Supervisor rebuilt, the flow
    requeued as lost and ended `worker lost` after three attempts though the package asked for
    no retry, a probe's find). Now the flow ends in error, once, said or forged; the worker
    goes on."""
    client, ex, sent = executor
    supervisor = ex.supervisor
    run_id = client.submit(NAMES)
    handled = run_to_end(ex, sent)
    assert sorted((t.flow_id, t.attempt) for t in handled) == [
        ("fine", 1), ("forged", 1), ("said", 1)
    ]  # fmt: skip
    flows = client.get(run_id)["flows"]
    assert flows["said"]["status"] == "error"
    assert flows["said"]["reason"] == (
        "OutputError: output name 'v\\ud800' is not valid text (a str without lone surrogates)"
    )
    assert flows["forged"]["status"] == "error"
    assert "malformed 'name'" in flows["forged"]["reason"]
    assert flows["fine"]["outputs"] == {"z": 3}
    assert ex.supervisor is supervisor and not supervisor.children
