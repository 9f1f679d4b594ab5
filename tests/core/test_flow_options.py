"""A local run applies each flow's options by the rules the workers follow (`dizest_core.options`):
the flow's own `"dizest"` object, then its app's, then the run's, then the settings; bad values
refuse the run before anything starts; retries wait their backoff, doubled each time."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dizest_core import dwp
from dizest_core.errors import ConfigError, InvalidOptions
from dizest_core.options import UNBOUNDED, Bounds, for_flow, resolve, validate
from dizest_core.plan import ReadyQueue
from dizest_core.settings import Settings
from dizest_core.status import FlowStatus
from tests.conftest import package

BACKOFF_S = 0.2
# Fails until it has been tried `fails + 1` times, counting its tries in a file of the run's
# working directory (shared by every attempt).
FLAKY = """
import pathlib
tries = pathlib.Path('tries')
n = int(tries.read_text()) + 1 if tries.exists() else 1
tries.write_text(str(n))
if n <= int(dizest.input('fails')):
    raise RuntimeError(f'try {n} fails')
v = n
"""
SLEEPY = "import time\ntime.sleep(float(dizest.input('s')))\nv = 1"


def flaky(fails: int, **raw: object) -> dict:
    return package(
        {"a": {"code": FLAKY, "inputs": [("fails", "variable", "number")], "outputs": ["v"]}},
        {"f": {"app": "a", "data": {"fails": fails}, **raw}},
    )


def sleepy(seconds: float, **raw: object) -> dict:
    return package(
        {"a": {"code": SLEEPY, "inputs": [("s", "variable", "number")], "outputs": ["v"]}},
        {"f": {"app": "a", "data": {"s": seconds}, **raw}},
    )


def statuses(events: list) -> list[tuple[str, str | None, float]]:
    return [
        (e.data["status"], e.data.get("reason"), e.ts)
        for e in events
        if e.flow_id == "f" and e.type == "flow.status"
    ]


def test_a_flow_retries_as_its_dizest_object_says_waiting_a_doubling_backoff(
    make_workflow, tmp_path
):
    retries_with_backoff(make_workflow, tmp_path)


def test_a_retry_never_seems_to_start_before_its_backoff_when_the_engine_was_held(
    make_workflow, tmp_path, monkeypatch
):
    """The interleaving of a CI failure (a retry 'started' 0.196 s after its 0.2 s backoff
    began): the engine held (preempted) right after queuing the retry, before its events were
    stamped. They carry the time of the change now, taken before the backoff starts."""
    later = ReadyQueue.later

    def held(self: ReadyQueue[Any], items: Any, at: float) -> None:
        later(self, items, at)
        time.sleep(0.05)  # the engine's thread descheduled here (not a wait for a condition)

    monkeypatch.setattr(ReadyQueue, "later", held)
    retries_with_backoff(make_workflow, tmp_path)


def retries_with_backoff(make_workflow: Any, tmp_path: Path) -> None:
    wf = make_workflow(flaky(2, dizest={"retries": 2}), retry_backoff_s=BACKOFF_S)
    events = list(wf.stream(workdir=tmp_path))
    report = wf.runner.report()
    assert report["status"] == "ready", report["flows"]["f"]
    assert report["flows"]["f"]["outputs"] == {"v": 3}  # the third try
    seen = statuses(events)
    retrying = [(ts, why) for status, why, ts in seen if status == FlowStatus.PENDING and why]
    assert len(retrying) == 2 and all("try" in why for _, why in retrying), seen
    starts = [ts for status, _, ts in seen if status == FlowStatus.RUNNING]
    assert len(starts) == 3
    # each retry started no sooner than its backoff after the failure: 1x, then 2x
    assert starts[1] - retrying[0][0] >= BACKOFF_S
    assert starts[2] - retrying[1][0] >= 2 * BACKOFF_S


def test_out_of_retries_the_flow_fails_with_the_last_error(make_workflow, tmp_path):
    wf = make_workflow(flaky(5, dizest={"retries": 1}), retry_backoff_s=0)
    report = wf.run(workdir=tmp_path)
    assert report["status"] == "error"
    assert "try 2 fails" in json.dumps(report["flows"]["f"])
    assert (tmp_path / "tries").read_text() == "2"


def test_the_flows_own_option_beats_the_app_and_the_run(make_workflow, tmp_path):
    pkg = flaky(1)
    pkg["apps"]["a"]["dizest"] = {"retries": 1}  # the app would retry once
    wf = make_workflow(pkg, retry_backoff_s=0)
    assert wf.run(workdir=tmp_path, retries=0)["status"] == "ready"  # the app's beats the run's
    (tmp_path / "tries").unlink()
    pkg["flow"]["f"]["dizest"] = {"retries": 0}  # the flow's own beats its app's
    wf = make_workflow(pkg, retry_backoff_s=0)
    assert wf.run(workdir=tmp_path)["status"] == "error"


def test_a_flows_own_timeout_kills_it_when_the_run_sets_none(make_workflow, tmp_path):
    wf = make_workflow(sleepy(60, dizest={"timeout": 0.5}))
    report = wf.run(workdir=tmp_path, timeout=30)
    flow = report["flows"]["f"]
    assert flow["status"] == "error" and "timeout" in (flow["reason"] or ""), flow
    assert flow["duration_s"] < 10


def test_run_options_apply_where_the_package_says_nothing(make_workflow, tmp_path):
    wf = make_workflow(flaky(1), retry_backoff_s=0)
    assert wf.run(workdir=tmp_path, retries=1)["status"] == "ready"


@pytest.mark.parametrize(
    ("dizest", "field"),
    [({"retries": 11}, "dizest.retries"), ({"timeout": -1}, "dizest.timeout"),
     ({"memory_limit_mb": 1}, "dizest.memory_limit_mb"), ({"retires": 1}, "dizest.retires")],
)  # fmt: skip
def test_a_bad_option_refuses_the_run_before_anything_starts(
    make_workflow, tmp_path, dizest, field
):
    wf = make_workflow(flaky(0, dizest=dizest))
    with pytest.raises(InvalidOptions) as caught:
        wf.run(workdir=tmp_path)
    assert [(p.flow, p.field) for p in caught.value.problems] == [("f", field)]
    assert not (tmp_path / "tries").exists()
    with pytest.raises(InvalidOptions):
        make_workflow(flaky(0)).run(workdir=tmp_path, retries=-1)


def test_dizest_run_takes_retries_and_refuses_bad_options_with_exit_2(tmp_path):
    path = tmp_path / "flaky.dwp"
    path.write_text(json.dumps(flaky(1)))
    command = [sys.executable, "-m", "dizest_cli", "run", str(path), "--workdir", str(tmp_path)]
    env = {"DIZEST_RETRY_BACKOFF_S": "0", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([*command, "--retries", "1"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    path.write_text(json.dumps(flaky(0, dizest={"retries": 99})))
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "dizest.retries" in done.stderr and "Traceback" not in done.stderr
    assert Path(tmp_path / "tries").read_text() == "2"  # only the first command ran the flow


def test_a_package_or_run_asking_more_network_than_the_server_allows_is_refused(
    make_workflow, tmp_path
):
    wf = make_workflow(flaky(0, dizest={"network": "full"}), network_max="egress")
    with pytest.raises(InvalidOptions) as caught:
        wf.run(workdir=tmp_path)
    (problem,) = caught.value.problems
    assert (problem.flow, problem.field) == ("f", "dizest.network")
    assert problem.message == "'full' is more network than this server allows ('egress')"
    assert not (tmp_path / "tries").exists()
    with pytest.raises(InvalidOptions) as caught:  # a run's options (a submit's) too
        validate(dwp.load(flaky(0)), {"network": "egress"}, Bounds(network="none"))
    assert [p.field for p in caught.value.problems] == ["options.network"]
    within = make_workflow(flaky(0, dizest={"network": "none"}), network_max="egress")
    assert within.run(workdir=tmp_path)["status"] == "ready"


def test_a_flow_asking_more_than_a_lowered_ceiling_gets_the_ceiling():
    """A run queued before the operator lowered DIZEST_NETWORK_MAX reaches a worker unchecked:
    the worker gives its flows no more than the ceiling."""
    lowered = Settings(network="full", network_max="none")
    assert resolve([{"network": "full"}], lowered, "", UNBOUNDED).network == "none"
    assert resolve([{}], lowered, "", UNBOUNDED).network == "none"  # the default too
    assert resolve([{"network": "egress"}], Settings(), "", UNBOUNDED).network == "egress"


def test_a_package_or_run_asking_more_memory_than_the_server_allows_is_refused(
    make_workflow, tmp_path
):
    """DIZEST_MEMORY_LIMIT_MB_MAX: without it a package's `memory_limit_mb` could lift the
    operator's default limit as high as it liked."""
    wf = make_workflow(flaky(0, dizest={"memory_limit_mb": 4096}), memory_limit_mb_max=2048)
    with pytest.raises(InvalidOptions) as caught:
        wf.run(workdir=tmp_path)
    (problem,) = caught.value.problems
    assert (problem.flow, problem.field) == ("f", "dizest.memory_limit_mb")
    assert problem.message == "4096 MB is more memory than this server allows (2048 MB)"
    assert not (tmp_path / "tries").exists()
    raw = flaky(0)
    raw["apps"]["a"]["dizest"] = {"memory_limit_mb": 999}
    pkg = dwp.load(raw)
    with pytest.raises(InvalidOptions) as caught:  # an app's and a run's options too
        validate(pkg, {"memory_limit_mb": 513}, Bounds(memory_mb=512))
    assert sorted(p.field for p in caught.value.problems) == [
        "dizest.memory_limit_mb",
        "options.memory_limit_mb",
    ]
    validate(pkg, {"memory_limit_mb": 999}, Bounds(memory_mb=999))  # at the ceiling: taken


def test_the_memory_ceiling_bounds_every_flow_and_is_the_default_without_a_limit():
    capped = Settings(memory_limit_mb_max=1024)
    assert resolve([{"memory_limit_mb": 8192}], capped, "", UNBOUNDED).memory_limit_mb == 1024
    assert resolve([{}], capped, "", UNBOUNDED).memory_limit_mb == 1024  # no limit: the ceiling
    assert resolve([{"memory_limit_mb": 256}], capped, "", UNBOUNDED).memory_limit_mb == 256
    both = Settings(memory_limit_mb=512, memory_limit_mb_max=1024)
    assert resolve([{}], both, "", UNBOUNDED).memory_limit_mb == 512
    assert resolve([{}], Settings(), "", UNBOUNDED).memory_limit_mb is None
    with pytest.raises(ConfigError, match="not be above DIZEST_MEMORY_LIMIT_MB_MAX"):
        Settings(memory_limit_mb=2048, memory_limit_mb_max=1024)
    with pytest.raises(ConfigError, match="DIZEST_MEMORY_LIMIT_MB_MAX must be from 64 to"):
        Settings(memory_limit_mb_max=10)


def test_a_flow_without_a_limit_runs_within_the_memory_ceiling(make_workflow, tmp_path):
    """The ceiling reaches the flow process: with no limit asked, the flow gets the ceiling."""
    code = "b = bytearray(400 << 20)\nb[::4096] = b'x' * len(b[::4096])\nv = 1"
    pkg = package({"hog": {"code": code, "outputs": ["v"]}}, {"f": {"app": "hog"}})
    report = make_workflow(pkg, memory_limit_mb_max=128).run(workdir=tmp_path)
    assert report["flows"]["f"]["reason"] == "memory limit exceeded (128 MB)"


def test_every_run_option_of_a_submit_is_one_of_a_local_run_too(make_workflow, tmp_path):
    """A review found `network` checked for a local run yet no field of its request (a
    TypeError for Workflow.run(network=...)), and the in-memory client dropping three."""
    wf = make_workflow(flaky(0))
    with pytest.raises(InvalidOptions) as caught:
        wf.run(workdir=tmp_path, network="moon", cpus=0, retries=99)
    assert sorted(p.field for p in caught.value.problems) == [
        "options.cpus",
        "options.network",
        "options.retries",
    ]
    assert wf.run(workdir=tmp_path, network="none", cpus=1)["status"] == "ready"


def test_a_runs_network_is_the_most_its_flows_get():
    """A verification probe's runner asked network none for a workflow shared with them; the
    author's flow said egress, which came first, read the runner's drive and sent it out."""
    pkg = dwp.load(flaky(0, dizest={"network": "full"}))
    engine = Settings()
    assert for_flow(pkg, "f", {"network": "none"}, engine).network == "none"
    assert for_flow(pkg, "f", {"network": "egress"}, engine).network == "egress"
    assert for_flow(pkg, "f", {}, engine).network == "full"  # the author's, when the run says none
    mild = dwp.load(flaky(0, dizest={"network": "none"}))
    assert for_flow(mild, "f", {"network": "full"}, engine).network == "none"  # never widened


@pytest.mark.skipif(os.geteuid() != 0, reason="the network namespace needs a root engine")
def test_a_flow_asking_egress_in_a_run_of_none_cannot_connect(make_workflow, tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=5).close()\n"
        "    v = 'connected'\n"
        "except OSError as exc:\n"
        "    v = type(exc).__name__\n"
    )
    pkg = package({"a": {"code": code, "outputs": ["v"]}},
                  {"f": {"app": "a", "dizest": {"network": "egress"}}})  # fmt: skip
    wf = make_workflow(pkg, sandbox="on")
    try:
        sealed = wf.run(workdir=tmp_path, network="none")["flows"]["f"]["outputs"]["v"]
        opened = wf.run(workdir=tmp_path)["flows"]["f"]["outputs"]["v"]
    finally:
        listener.close()
    assert opened == "connected" and sealed != "connected", (sealed, opened)


def test_cpus_are_checked_bounded_and_defaulted_like_memory():
    pkg = flaky(0, dizest={"cpus": 8})
    with pytest.raises(InvalidOptions) as caught:
        validate(dwp.load(pkg), {"cpus": 0}, Bounds(cpus=4))
    assert sorted((p.field, p.message) for p in caught.value.problems) == [
        ("dizest.cpus", "asks for 8 CPUs, more than this server allows (4)"),
        ("options.cpus", "must be a number of CPUs from 0.01 to 4096, not 0"),
    ]
    validate(dwp.load(flaky(0, dizest={"cpus": 0.5})), {"cpus": 4}, Bounds(cpus=4))
    capped = Settings(flow_cpus=1, flow_cpus_max=2)
    assert resolve([{}], capped, "", UNBOUNDED).cpus == 1  # the server's default
    assert resolve([{"cpus": 1.5}], capped, "", UNBOUNDED).cpus == 1.5
    assert resolve([{"cpus": 64}], capped, "", UNBOUNDED).cpus == 2  # queued before the ceiling
    assert resolve([{}], Settings(flow_cpus_max=3), "", UNBOUNDED).cpus == 3
    assert resolve([{}], Settings(), "", UNBOUNDED).cpus is None
    with pytest.raises(
        ConfigError, match="DIZEST_FLOW_CPUS must not be above DIZEST_FLOW_CPUS_MAX"
    ):
        Settings(flow_cpus=4, flow_cpus_max=2)


@pytest.mark.parametrize("name", ["dz:leases", "dz:user:alice", "unacked", "unacked_index", "celery-task-meta-1", "a b", "", "dizest.automation", "team.automation"])  # fmt: skip
def test_a_queue_can_name_no_redis_key_but_a_queue(name):
    """A queue is a Redis list of that very name: one naming our keys (all have a ':') or
    kombu's own would turn them into lists and break every user's submits."""
    pkg = flaky(0, dizest={"queue": name})
    with pytest.raises(InvalidOptions) as caught:
        validate(dwp.load(pkg), {}, Bounds())
    assert [p.field for p in caught.value.problems] == ["dizest.queue"]


def test_ordinary_queue_names_are_taken():
    for name in ("gpu", "gpu-2", "team.a@host", "Q_1", "automation", "x.automation.y"):
        validate(dwp.load(flaky(0, dizest={"queue": name})), {}, Bounds())
