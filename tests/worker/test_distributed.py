"""Runs through real `dizest worker` processes and Redis give the same reports as local runs,
share work between workers, and survive a dead worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from dizest_core.errors import DizestError, InvalidOptions, UnknownFlowError, ValidationError
from dizest_core.workflow import Workflow
from tests.conftest import DATA, package
from tests.worker.conftest import queued, slow_then_use

# Every sample package, so none can drift, but the 1,000-flow benchmark shapes: 2,000 sandboxed
# flows were a third of this file's CPU and its one test 64 s of the suite's ten minutes.
# tests/core/test_golden.py runs them locally against their expected outputs, and
# bench/bench_worker.py distributed (each run checked against the same expected outputs);
# dag100 is dag1000's shape here.
BENCHMARK_SIZED = {"dag1000", "wide1000"}
GOLDEN = sorted(p.stem for p in DATA.glob("*.dwp") if p.stem not in BENCHMARK_SIZED)


def comparable(report: dict) -> dict:
    """What must not drift between local and distributed runs (not timings or ids)."""
    return {
        f: {k: d[k] for k in ("status", "reason", "outputs", "log", "results")}
        for f, d in report["flows"].items()
    } | {"status": report["status"]}


def test_golden_workflows_match_local_mode(cluster, tmp_path: Path):
    cluster("w1", concurrency=2)
    client = cluster.client
    run_ids = {name: client.submit(DATA / f"{name}.dwp") for name in GOLDEN}
    for name, run_id in run_ids.items():
        remote = client.wait(run_id, timeout=120)
        with Workflow(DATA / f"{name}.dwp") as wf:
            local = wf.run(workdir=tmp_path)
        assert comparable(remote) == comparable(local), name
        assert sorted(d["index"] for d in remote["flows"].values()) == sorted(
            d["index"] for d in local["flows"].values()
        )


def test_inactive_flows_report_as_in_local_mode(cluster, tmp_path: Path):
    pkg = package(
        {
            "a": {"code": "v = 1", "outputs": ["v"]},
            "b": {"code": "v = dizest.input('x')", "inputs": ["x"], "outputs": ["v"]},
        },
        {
            "s": {"app": "a"},
            "off": {"app": "a", "active": False},
            "needs_off": {"app": "b", "in": {"x": [("off", "v")]}},
            "u": {"app": "b", "in": {"x": [("s", "v")]}},
        },
    )
    cluster("w1", concurrency=1)
    remote = cluster.client.wait(cluster.client.submit(pkg), timeout=60)
    with Workflow(pkg) as wf:
        local = wf.run(workdir=tmp_path)
    assert local["flows"]["off"]["reason"] == "inactive"
    assert comparable(remote) == comparable(local)


def test_event_stream_replays_then_ends_with_final_status(cluster):
    cluster("w1")
    client = cluster.client
    run_id = client.submit(DATA / "c03_fanout.dwp")
    events = list(client.events(run_id))
    assert events[-1].type == "workflow.status" and events[-1].data == {"status": "ready"}
    assert sum(e.final for e in events) == 1
    ids = [tuple(map(int, e.id.split("-"))) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # resume from the middle: exactly the rest
    middle = events[len(events) // 2]
    rest = list(client.events(run_id, after=middle.id))
    assert [e.id for e in rest] == [e.id for e in events[len(events) // 2 + 1 :]]


def test_validation_errors_are_raised_before_anything_is_enqueued(cluster):
    client = cluster.client
    bad = package(
        {"a": {"code": "v = 1", "inputs": ["x"], "outputs": ["v"]}},
        {"a1": {"app": "a", "in": {"x": [("a1", "v")]}}},
    )
    with pytest.raises(ValidationError, match="a1 -> a1"):
        client.submit(bad)
    with pytest.raises(UnknownFlowError):
        client.submit(DATA / "c03_fanout.dwp", flows=["nope"])
    with pytest.raises(ValueError, match="JSON"):
        client.submit(DATA / "c03_fanout.dwp", inputs={"x": object()})
    assert queued(client.redis, cluster.settings.queue) == 0
    assert not list(client.redis.scan_iter(match=f"{cluster.settings.prefix}:run:*"))


def test_bad_option_values_are_rejected_before_anything_is_stored(cluster):
    client, settings = cluster.client, cluster.settings
    too_long = settings.max_flow_timeout_s + 1
    cases = [
        ({}, {"flow_timeout": -1}, (None, None, "options.flow_timeout")),
        ({}, {"flow_timeout": too_long}, (None, None, "options.flow_timeout")),
        ({}, {"retries": 11}, (None, None, "options.retries")),
        ({}, {"retries": 1.5}, (None, None, "options.retries")),
        ({}, {"memory_limit_mb": 8}, (None, None, "options.memory_limit_mb")),
        ({"flow": {"timeout": "abc"}}, {}, ("s", None, "dizest.timeout")),
        ({"flow": {"retries": True}}, {}, ("s", None, "dizest.retries")),
        ({"flow": {"timout": 3}}, {}, ("s", None, "dizest.timout")),
        ({"flow": 5}, {}, ("s", None, "dizest")),
        ({"app": {"queue": ""}}, {}, (None, "use", "dizest.queue")),
        ({"app": {"memory_limit_mb": 10**12}}, {}, (None, "use", "dizest.memory_limit_mb")),
    ]
    for dizest, options, where in cases:
        pkg = slow_then_use(0)
        if "flow" in dizest:
            pkg["flow"]["s"]["dizest"] = dizest["flow"]
        if "app" in dizest:
            pkg["apps"]["use"]["dizest"] = dizest["app"]
        with pytest.raises(InvalidOptions) as caught:
            client.submit(pkg, options=options, idempotency_key="bad-options")
        assert isinstance(caught.value, ValueError) and isinstance(caught.value, DizestError)
        assert [(p.flow, p.app, p.field) for p in caught.value.problems] == [where], dizest
    assert queued(client.redis, settings.queue) == 0
    assert not list(client.redis.scan_iter(match=f"{settings.prefix}:*"))
    cluster("w1")  # the key was never taken: a good submit with it runs
    run_id = client.submit(
        slow_then_use(0, {"timeout": 5, "retries": 10}), idempotency_key="bad-options"
    )
    assert client.wait(run_id, timeout=60)["status"] == "ready"


def test_a_wait_leaves_the_run_s_end_to_expire_with_it(cluster):
    """`wait` (and the DIZEST-compatible run route, which waits with it) reads the run's end
    from its `done` list without remaking the key: it keeps the TTL its run's end gave it
    (BLPOP then LPUSH made it anew with none: it lived for ever)."""
    client = cluster.client
    cluster("w1")
    run_id = client.submit(package({"a": {"code": "v = 1", "outputs": ["v"]}}, {"f": {"app": "a"}}))
    for _ in range(2):  # the end as it is pushed, then as a later waiter finds it
        assert client.wait(run_id, timeout=60)["status"] == "ready"
        run_ttl = client.redis.pttl(client.runs.keys.run(run_id))
        done_ttl = client.redis.pttl(client.runs.keys.done(run_id))
        assert 0 < done_ttl <= run_ttl <= cluster.settings.ttl_s * 1000, (done_ttl, run_ttl)
        assert client.redis.lrange(client.runs.keys.done(run_id), 0, -1) == [b"ready"]


def test_idempotency_key_gives_one_run(cluster):
    client = cluster.client
    first = client.submit(DATA / "c03_fanout.dwp", idempotency_key="job-1")
    second = client.submit(DATA / "c03_fanout.dwp", idempotency_key="job-1")
    assert first == second
    assert queued(client.redis, cluster.settings.queue) == 1  # one root task, enqueued once
    cluster("w1")
    assert client.wait(first, timeout=60)["status"] == "ready"


def test_the_report_keeps_every_status_after_the_event_stream_is_trimmed(cluster, tmp_path):
    cluster("w1", env={"DIZEST_STREAM_MAXLEN": "10"})  # MAXLEN ~ drops whole nodes of 100
    client = cluster.client
    run_id = client.submit(DATA / "dag100.dwp")
    remote = client.wait(run_id, timeout=120)
    first = client.runs.events(run_id, count=1)[0]
    assert first.type != "workflow.status", "the stream was not trimmed: test proves nothing"
    with Workflow(DATA / "dag100.dwp") as wf:
        local = wf.run(workdir=tmp_path)
    keep = ("status", "reason", "outputs")
    assert {f: {k: d[k] for k in keep} for f, d in remote["flows"].items()} == {
        f: {k: d[k] for k in keep} for f, d in local["flows"].items()
    }
    assert sorted(d["index"] for d in remote["flows"].values()) == sorted(
        d["index"] for d in local["flows"].values()
    )
    assert all(d["duration_s"] is not None for d in remote["flows"].values())
    assert remote["status"] == "ready" and remote["started_at"] and remote["finished_at"]


def test_outputs_of_an_unknown_flow_is_an_error(cluster):
    cluster("w1")
    client = cluster.client
    run_id = client.submit(DATA / "c03_fanout.dwp")
    client.wait(run_id, timeout=60)
    with pytest.raises(UnknownFlowError) as caught:
        client.outputs(run_id, "nope")
    assert isinstance(caught.value, LookupError)
    with pytest.raises(UnknownFlowError):
        client.output_value(run_id, "nope", "v")


def test_a_submit_asking_more_network_than_the_server_allows_is_refused(redis_url, tmp_path):
    from dataclasses import replace

    from dizest_core.plugins import PluginRegistry
    from dizest_worker.client import Client, check_run_options
    from tests.worker.conftest import make_settings

    base = make_settings(redis_url, tmp_path)
    settings = replace(base, engine=replace(base.engine, network_max="egress"))
    pkg = slow_then_use(0)
    with pytest.raises(InvalidOptions) as caught:  # a run's options: a submit, a schedule's
        Client.validate(settings, PluginRegistry(), pkg, None, None, {"network": "full"})
    assert [p.field for p in caught.value.problems] == ["options.network"]
    with pytest.raises(InvalidOptions):
        check_run_options({"network": "full"}, settings)
    pkg["flow"]["s"]["dizest"] = {"network": "full"}  # a package's own
    with pytest.raises(InvalidOptions) as caught:
        Client.validate(settings, PluginRegistry(), pkg, None, None, None)
    assert [(p.flow, p.field) for p in caught.value.problems] == [("s", "dizest.network")]
    pkg["flow"]["s"]["dizest"] = {"network": "egress"}
    assert Client.validate(settings, PluginRegistry(), pkg, None, None, None).flows


def test_a_submit_asking_more_memory_than_the_server_allows_is_refused(redis_url, tmp_path):
    from dataclasses import replace

    from dizest_core.plugins import PluginRegistry
    from dizest_worker.client import Client, check_run_options
    from tests.worker.conftest import make_settings

    base = make_settings(redis_url, tmp_path)
    settings = replace(base, engine=replace(base.engine, memory_limit_mb_max=1024))
    pkg = slow_then_use(0)
    with pytest.raises(InvalidOptions) as caught:
        Client.validate(settings, PluginRegistry(), pkg, None, None, {"memory_limit_mb": 2048})
    assert [p.field for p in caught.value.problems] == ["options.memory_limit_mb"]
    with pytest.raises(InvalidOptions):  # a schedule's options
        check_run_options({"memory_limit_mb": 1025}, settings)
    pkg["flow"]["s"]["dizest"] = {"memory_limit_mb": 1 << 20}
    with pytest.raises(InvalidOptions) as caught:
        Client.validate(settings, PluginRegistry(), pkg, None, None, None)
    assert [(p.flow, p.field) for p in caught.value.problems] == [("s", "dizest.memory_limit_mb")]
    pkg["flow"]["s"]["dizest"] = {"memory_limit_mb": 1024}
    assert Client.validate(settings, PluginRegistry(), pkg, None, None, None).flows
