"""A run input no flow of the workflow reads is refused alike by a submit, a trigger and a
schedule (made, changed, and at its tick), against a real worker and a real `dizest beat`
(dizest_core.run_inputs): each took it and ran the workflow without the value meant for it,
silently. A flow reads an input its app declares or its code names (an undeclared global)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.automation.conftest import Stack
from tests.conftest import package, wait_for

PKG = package(
    {
        "a": {"code": "v = dizest.input('k', 0)", "inputs": [("k", "variable", None)],
              "outputs": ["v"]},
        "b": {"code": "v = seed * 2", "outputs": ["v"]},  # reads the undeclared global `seed`
    },
    {"f": {"app": "a"}, "g": {"app": "b"}},
)  # fmt: skip


def _refused(answer: Any, unknown: list[str]) -> None:
    assert answer.status_code == 400, answer.json
    error = answer.json["error"]
    assert error["code"] == "unknown_input"
    assert error["message"] == (
        f"no flow reads input(s) {', '.join(unknown)}; the workflow's flows declare: k"
    )
    assert error["details"]["unknown"] == unknown and error["details"]["inputs"] == ["k"]


def test_submit_trigger_and_schedule_refuse_inputs_no_flow_reads(stack: Stack) -> None:
    api, alice = stack.api, stack.api.user("alice")
    wf_id = api.call("POST", "/workflows", alice, json={"package": PKG}).json["id"]
    for inputs, unknown in (({"kk": 1, "seed": 2}, ["kk"]), ({"g.k": 1, "seed": 2}, ["g.k"])):
        submit = {"workflow_id": wf_id, "inputs": inputs}
        _refused(api.call("POST", "/runs", alice, json=submit), unknown)
    _refused(api.call("POST", "/runs", alice, json={"package": PKG, "inputs": {"kk": 1}}), ["kk"])
    trigger = api.call("POST", f"/workflows/{wf_id}/triggers", alice, json={}).json
    _refused(api.http.post(f"/api/v1/triggers/{trigger['secret']}", json={"kk": 1}), ["kk"])
    path = f"/workflows/{wf_id}/schedules"
    _refused(api.call("POST", path, alice, json={"cron": "@daily", "inputs": {"kk": 1}}), ["kk"])
    assert stack.auto.schedules.find("alice", wf_id) == []
    made = api.call("POST", path, alice, json={"cron": "@daily", "inputs": {"k": 1, "seed": 3}})
    assert made.status_code == 201, made.json
    changed = api.call("PATCH", f"/schedules/{made.json['id']}", alice, json={"inputs": {"kk": 1}})
    _refused(changed, ["kk"])
    assert stack.auto.schedules.get(made.json["id"]).inputs == {"k": 1, "seed": 3}
    assert api.call("GET", "/runs", alice).json["items"] == []  # nothing ran
    # what the flows read runs: a declared input, one flow's, an undeclared global
    inputs = {"k": 5, "f.k": 7, "seed": 4}
    ran = api.call("POST", "/runs", alice, json={"workflow_id": wf_id, "inputs": inputs})
    assert ran.status_code == 201, ran.json
    fired = api.http.post(f"/api/v1/triggers/{trigger['secret']}", json={"k": 1, "seed": 1})
    assert fired.status_code == 201, fired.json
    for run_id in (ran.json["run_id"], fired.json["run_id"]):
        assert api.services.client.wait(run_id, timeout=60)["status"] == "ready"
    flows = api.call("GET", f"/runs/{ran.json['run_id']}", alice).json["flows"]
    assert flows["f"]["outputs"] == {"v": 7} and flows["g"]["outputs"] == {"v": 8}


def test_a_tick_whose_inputs_the_workflow_no_longer_reads_is_recorded_not_run(
    stack: Stack,
) -> None:
    """The workflow changed after the schedule was made: its tick is refused with the same
    words, kept in the schedule's history (and the beat's log), and starts no run."""
    api, alice = stack.api, stack.api.user("alice")
    wf_id = api.call("POST", "/workflows", alice, json={"package": PKG}).json["id"]
    fired = datetime.now(UTC) - timedelta(minutes=5)
    body = {"cron": f"{fired.minute} {fired.hour} * * *", "inputs": {"k": 1}}
    made = api.call("POST", f"/workflows/{wf_id}/schedules", alice, json=body)
    assert made.status_code == 201, made.json
    stack.auto.schedules.entry(made.json["id"]).reschedule(last_run_at=fired - timedelta(days=1))
    reads_n = {"code": "v = dizest.input('n', 0)", "inputs": [("n", "variable", None)]}
    renamed = package({"a": {**reads_n, "outputs": ["v"]}}, {"f": {"app": "a"}})
    saved = api.call("PUT", f"/workflows/{wf_id}", alice, json={"package": renamed})
    assert saved.status_code == 200, saved.json
    stack.start_beat()
    history = wait_for(lambda: stack.auto.schedules.history(made.json["id"]), timeout=30)
    assert history[0]["error"] == (
        "UnknownInputError: no flow reads input(s) k; the workflow's flows declare: n"
    )
    assert api.call("GET", "/runs", alice).json["items"] == []
