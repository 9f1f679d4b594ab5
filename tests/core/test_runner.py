"""Scheduling, events, run control and reuse, through the public Workflow API."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dizest_core import dwp
from dizest_core.errors import UnknownFlowError
from dizest_core.runner import POLL_STEP, LocalRunner, RunRequest, _Run
from dizest_core.workflow import Workflow
from tests.conftest import chain_and_leaves, package

COUNT = (
    "n = int(dizest.drive().read('count.' + dizest.flow.id(), '0')) + 1\n"
    "dizest.drive().write('count.' + dizest.flow.id(), str(n))\n"
)


def diamond() -> dict:
    """a -> b, a -> c, (b, c) -> d; every flow counts its executions in the working directory."""
    return package(
        {
            "src": {"code": COUNT + "v = 1", "outputs": ["v"]},
            "inc": {"code": COUNT + "v = dizest.input('x') + 1", "inputs": ["x"], "outputs": ["v"]},
            "sum": {
                "code": COUNT + "v = sum(dizest.inputs('x'))",
                "inputs": ["x"],
                "outputs": ["v"],
            },
        },
        {
            "a": {"app": "src"},
            "b": {"app": "inc", "in": {"x": [("a", "v")]}},
            "c": {"app": "inc", "in": {"x": [("a", "v")]}},
            "d": {"app": "sum", "in": {"x": [("b", "v"), ("c", "v")]}},
        },
    )


def runs(tmp_path: Path, flow_id: str) -> int:
    path = tmp_path / f"count.{flow_id}"
    return int(path.read_text()) if path.exists() else 0


def test_event_shape_order_and_final_event(make_workflow, tmp_path):
    events = list(make_workflow(diamond()).stream(workdir=tmp_path))
    assert all(
        set(e.to_dict()) == {"id", "run_id", "type", "flow_id", "data", "ts"} for e in events
    )
    assert [int(e.id) for e in events] == list(range(1, len(events) + 1))
    assert len({e.run_id for e in events}) == 1
    assert events[0].type == "workflow.status" and events[0].data == {"status": "running"}
    assert events[-1].type == "workflow.status" and events[-1].data == {"status": "ready"}
    assert sum(e.final for e in events) == 1
    d = [(e.type, e.data.get("status")) for e in events if e.flow_id == "d"]
    assert d == [
        ("flow.status", "pending"),
        ("flow.status", "running"),
        ("log.clear", None),
        ("flow.status", "ready"),
        ("flow.index", None),
    ]


def test_a_flow_starts_only_after_all_its_parents(make_workflow, tmp_path):
    events = list(make_workflow(diamond()).stream(workdir=tmp_path))
    pos = {
        (e.flow_id, e.data.get("status")): i
        for i, e in enumerate(events)
        if e.type == "flow.status"
    }
    assert pos[("d", "pending")] > max(pos[("b", "ready")], pos[("c", "ready")])
    assert pos[("b", "pending")] > pos[("a", "ready")]


def test_concurrency_cap_is_respected(make_workflow, tmp_path):
    apps = {"s": {"code": "import time\ntime.sleep(0.05)\nv = 1", "outputs": ["v"]}}
    pkg = package(apps, {f"f{i}": {"app": "s"} for i in range(6)})
    running = peak = 0
    for event in make_workflow(pkg).stream(workdir=tmp_path, concurrency=2):
        if event.type == "flow.status" and event.data["status"] == "running":
            running += 1
            peak = max(peak, running)
        elif event.type == "flow.status" and event.data["status"] in ("ready", "error"):
            running -= 1
    assert peak == 2


def test_targeted_run_runs_only_the_needed_upstream(make_workflow, tmp_path):
    report = make_workflow(diamond()).run(flows=["b"], workdir=tmp_path)
    assert {f: d["status"] for f, d in report["flows"].items()} == {
        "a": "ready",
        "b": "ready",
        "c": "idle",
        "d": "idle",
    }
    assert runs(tmp_path, "c") == 0


def test_unknown_target_is_a_lookup_error(make_workflow, tmp_path):
    with pytest.raises(UnknownFlowError):
        make_workflow(diamond()).run(flows=["nope"], workdir=tmp_path)


def test_rerun_reuses_upstream_outputs(make_workflow, tmp_path):
    wf = make_workflow(diamond())
    first = wf.run(workdir=tmp_path)
    again = wf.rerun("d", workdir=tmp_path)
    assert again["run_id"] != first["run_id"]
    assert again["flows"]["d"]["outputs"] == {"v": 4}
    assert again["flows"]["b"]["reason"] == "reused from previous run"
    assert [runs(tmp_path, f) for f in "abcd"] == [1, 1, 1, 2]


def test_cache_across_runs(make_workflow, tmp_path):
    wf = make_workflow(diamond(), cache_dir=str(tmp_path / "cache"))
    first = wf.run(workdir=tmp_path, cache=True)
    second = wf.run(workdir=tmp_path, cache=True)
    assert [runs(tmp_path, f) for f in "abcd"] == [1, 1, 1, 1]
    assert {d["reason"] for d in second["flows"].values()} == {"cached"}
    assert second["flows"]["d"]["outputs"] == first["flows"]["d"]["outputs"] == {"v": 4}
    # a different run input changes the key of every flow that receives it
    third = wf.run(inputs={"extra": 1}, workdir=tmp_path, cache=True)
    assert third["status"] == "ready" and runs(tmp_path, "d") == 2


def test_failed_flow_skips_descendants_and_independent_branch_finishes(make_workflow, tmp_path):
    pkg = diamond()
    pkg["apps"]["boom"] = {
        "id": "boom",
        "code": "raise RuntimeError('no')",
        "inputs": [{"type": "output", "name": "x"}],
        "outputs": [{"name": "v"}],
    }
    pkg["flow"]["b"]["app_id"] = "boom"
    pkg["flow"]["e"] = {
        "id": "e",
        "app_id": "inc",
        "data": {},
        "inputs": {"x": {"connections": [{"node": "c", "input": "v"}]}},
    }
    report = make_workflow(pkg).run(workdir=tmp_path)
    flows = report["flows"]
    assert report["status"] == "error"
    assert (flows["b"]["status"], flows["b"]["index"]) == ("error", -1)
    assert (flows["d"]["status"], flows["d"]["reason"], flows["d"]["index"]) == (
        "idle",
        "upstream failed: b",
        -2,
    )
    assert flows["e"]["outputs"] == {"v": 3}
    assert runs(tmp_path, "d") == 0


def test_inactive_flows(make_workflow, tmp_path):
    pkg = diamond()
    del pkg["flow"]["b"]["active"]
    pkg["flow"]["b"]["inactive"] = True  # DIZEST 3.x flag
    report = make_workflow(pkg).run(workdir=tmp_path)
    assert (report["flows"]["b"]["status"], report["flows"]["b"]["reason"]) == ("idle", "inactive")
    assert report["flows"]["d"]["reason"] == "needs output of inactive flow b, which has none"
    assert report["flows"]["c"]["status"] == "ready" and runs(tmp_path, "b") == 0
    assert report["status"] == "ready"


def test_run_timeout_stops_everything(make_workflow, tmp_path):
    pkg = package(
        {
            "slow": {"code": "import time\ntime.sleep(60)", "outputs": ["v"]},
            "after": {"code": "v = 1", "inputs": ["x"], "outputs": ["v"]},
        },
        {"s": {"app": "slow"}, "a": {"app": "after", "in": {"x": [("s", "v")]}}},
    )
    report = make_workflow(pkg).run(workdir=tmp_path, timeout=0.5)
    assert report["status"] == "error"
    assert report["flows"]["s"]["reason"] == "run timeout after 0.5 s"
    # a never started: the timeout stops it before s (killed) ends, so s cannot skip it
    assert report["flows"]["a"]["status"] == "idle"
    assert report["flows"]["a"]["reason"] == "run timeout after 0.5 s"


def test_after_the_run_timeout_the_loop_waits_instead_of_spinning():
    pkg = dwp.load(diamond())
    run = _Run(LocalRunner(), pkg, RunRequest(timeout=5), "r1", None, None)
    assert 0 < run._poll_timeout() <= POLL_STEP
    run.deadline = time.monotonic() - 1  # the deadline has just passed
    assert run._poll_timeout() == 0  # once, so that the loop notices now
    list(run._check_stop())
    assert run.timed_out
    # killed children still have to report: wait for them, do not poll in a busy loop
    assert run._poll_timeout() == POLL_STEP
    untimed = _Run(LocalRunner(), pkg, RunRequest(), "r2", None, None)
    assert untimed._poll_timeout() == POLL_STEP


def test_cancel_from_a_callback(make_workflow, tmp_path):
    pkg = package(
        {
            "slow": {
                "code": "print('started', flush=True)\nimport time\ntime.sleep(60)",
                "outputs": ["v"],
            },
            "after": {"code": "v = 1", "inputs": ["x"], "outputs": ["v"]},
        },
        {"s": {"app": "slow"}, "a": {"app": "after", "in": {"x": [("s", "v")]}}},
    )
    wf = make_workflow(pkg)
    wf.on("log.append", lambda e: wf.cancel())
    report = wf.run(workdir=tmp_path, timeout=30)
    assert report["status"] == "cancelled"
    assert report["flows"]["s"]["reason"] == "cancelled"
    assert report["flows"]["a"]["status"] == "idle"


def test_callbacks_many_per_type_and_a_raising_one_is_harmless(make_workflow, tmp_path, caplog):
    wf = make_workflow(diamond())
    seen: list[str] = []
    wf.on("flow.status", lambda e: seen.append("one"))
    wf.on("flow.status", lambda e: seen.append("two"))
    wf.on("*", lambda e: 1 / 0)
    report = wf.run(workdir=tmp_path)
    assert report["status"] == "ready"
    assert seen.count("one") == seen.count("two") == 12  # pending, running, ready x 4 flows
    assert "event callback" in caplog.text
    with pytest.raises(ValueError, match="unknown event type"):
        wf.on("flow.stauts", print)


def test_spec_reports_free_inputs_and_final_outputs(make_workflow):
    pkg = diamond()
    pkg["apps"]["inc"]["inputs"].append({"type": "output", "name": "free"})
    wf = make_workflow(pkg)
    requested, outputs = wf.spec()
    assert requested == {"b": {"free": None}, "c": {"free": None}}
    assert outputs == {"d": ["v"]}
    assert wf.spec(target_flows=["b"]) == ({"b": {"free": None}}, {"b": ["v"]})


def test_report_is_json_and_has_the_documented_shape(make_workflow, tmp_path):
    report = make_workflow(diamond()).run(workdir=tmp_path)
    assert json.loads(json.dumps(report)) == report
    assert set(report) == {"run_id", "status", "started_at", "finished_at", "flows"}
    assert set(report["flows"]["d"]) == {
        "status",
        "reason",
        "index",
        "duration_s",
        "outputs",
        "log",
        "results",
    }
    assert report["started_at"] <= report["finished_at"]


def test_abandoned_stream_kills_running_children(make_workflow, tmp_path):
    pkg = package(
        {"slow": {"code": "print('up', flush=True)\nimport time\ntime.sleep(60)"}},
        {"s": {"app": "slow"}},
    )
    wf = make_workflow(pkg)
    for event in wf.stream(workdir=tmp_path):
        if event.type == "log.append":
            break  # the generator is closed here; the leak check proves the child is gone
    assert wf.run(workdir=tmp_path, timeout=0.3)["status"] == "error"  # the runner is reusable


def test_large_outputs_travel_as_files_not_through_the_engine(make_workflow, tmp_path):
    pkg = package(
        {
            "big": {"code": "v = b'x' * (5 * 1024 * 1024)", "outputs": ["v"]},
            "use": {"code": "v = len(dizest.input('x'))", "inputs": ["x"], "outputs": ["v"]},
        },
        {"b": {"app": "big"}, "u": {"app": "use", "in": {"x": [("b", "v")]}}},
    )
    wf = make_workflow(pkg, inline_max_bytes=1024)
    report = wf.run(workdir=tmp_path)
    assert report["flows"]["u"]["outputs"] == {"v": 5 * 1024 * 1024}
    stored = wf.runner.store.get(report["run_id"], "b", "v")
    assert stored is not None and not isinstance(stored, bytes)  # an Artifact reference
    assert Path(stored.path).stat().st_size == stored.size > 5 * 1024 * 1024
    root = Path(wf.runner.artifact_dir)
    first_dir = root / report["run_id"]
    wf.run(workdir=tmp_path)
    last = wf.run(workdir=tmp_path)
    # only the last runs' files are kept; older ones are deleted off the next run's path
    deadline = time.monotonic() + 10
    while first_dir.exists():
        assert time.monotonic() < deadline, "a forgotten run's artifacts were never deleted"
        time.sleep(0.01)  # polling a condition with a deadline, not waiting out a race
    assert (root / last["run_id"]).is_dir()
    wf.close()
    assert not root.exists()  # close waits for the deletions, then removes the root


def test_closing_right_after_a_run_is_quiet(tmp_path, capfd):
    # The engine may close while exit notices of finished children are still unread; the
    # zygote must take that as a normal end, not print a traceback.
    pkg = package(
        {"a": {"code": "v = 1", "outputs": ["v"]}}, {f"f{i}": {"app": "a"} for i in range(8)}
    )
    for _ in range(5):
        wf = Workflow(pkg)
        assert wf.run(workdir=tmp_path)["status"] == "ready"
        wf.close()
    assert "Traceback" not in capfd.readouterr().err


def test_ready_flows_start_longest_remaining_path_first(make_workflow, tmp_path):
    """One slot, five leaves and the head of a 3-flow chain ready at once: the chain's head
    goes first and its next link as soon as it is ready; the last link ties with the leaves
    (one flow ahead each), which come first in package order."""
    pkg, chain, leaves = chain_and_leaves()
    events = list(make_workflow(pkg, concurrency=1).stream(workdir=tmp_path))
    started = [e.flow_id for e in events if e.flow_id and e.data.get("status") == "running"]
    assert started == [*chain[:-1], *leaves, chain[-1]]
    assert events[-1].data == {"status": "ready"}


def test_a_reruns_inputs_are_its_runs_joined_again() -> None:
    """A rerun submits its run's inputs again: `join_inputs` undoes `split_inputs`, the inputs
    of one flow (`f.k`) included."""
    from dizest_core.run_inputs import join_inputs, split_inputs

    flows = {"f": {"app": "a"}, "g": {"app": "a"}, "table.read_csv-17": {"app": "a"}}
    pkg = dwp.load(package({"a": {"code": "v = 1", "inputs": ["k"]}}, flows))
    given = {"k": 1, "f.k": [2], "g.k": None, "other": "x", "table.read_csv-17.k": 3, "f.": 4}
    common, per_flow = split_inputs(given, pkg)
    assert (common, per_flow) == (
        {"k": 1, "other": "x", "f.": 4},
        {"f": {"k": [2]}, "g": {"k": None}, "table.read_csv-17": {"k": 3}},
    )
    assert join_inputs(common, per_flow) == given
