"""Removing a user (the API's DELETE /users/<name> and `dizest user remove`) deletes everything
of theirs and retires the name: a new user given it would inherit what is kept by owner name."""

from __future__ import annotations

import io
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dizest_api.automation.hooks import HookNotFound
from dizest_api.automation.schedules import ScheduleNotFound
from dizest_api.automation.service import Automation, install
from dizest_api.automation.settings import AutomationSettings
from dizest_api.cli import user
from dizest_api.data.library import WorkflowNotFound
from tests.api.conftest import PASSWORD, Api
from tests.conftest import package
from tests.core.test_tree import deep_path, legacy_tree  # noqa: F401

PKG = package({"a": {"code": "v = 1", "outputs": ["v"]}}, {"f": {"app": "a"}})
URL = "http://127.0.0.1:9/hook"


@pytest.fixture
def auto(api: Api) -> Automation:
    return install(api.app, AutomationSettings(webhook_allow_private=True))


@dataclass
class Traces:
    """What a user left: ids of their workflow, schedules, hooks, and trigger secrets."""

    workflow: str = ""
    schedules: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)


def created(answer: object) -> dict[str, str]:
    assert answer.status_code == 201, answer.json  # type: ignore[attr-defined]
    return dict(answer.json)  # type: ignore[attr-defined]


def leave_traces(api: Api, who: dict[str, str], admin: dict[str, str], shared: str) -> Traces:
    """A drive file, a workflow with a schedule, a trigger and hooks (one by an admin), a hook
    for all runs, and a schedule and a trigger on `shared` (another's workflow they may run)."""
    put = api.call("PUT", "/files/payroll.csv", who, data=b"name,salary\nalice,120000\n")
    assert put.status_code == 201, put.json
    found = Traces(created(api.call("POST", "/workflows", who, json={"package": PKG}))["id"])
    for wf_id in (found.workflow, shared):
        sched = api.call("POST", f"/workflows/{wf_id}/schedules", who, json={"cron": "@daily"})
        found.schedules.append(created(sched)["id"])
        trig = api.call("POST", f"/workflows/{wf_id}/triggers", who, json={})
        found.triggers.append(created(trig)["secret"])
    for headers, body in ((who, {"url": URL}), (who, {"url": URL, "workflow_id": found.workflow}),
                          (admin, {"url": URL, "workflow_id": found.workflow})):  # fmt: skip
        found.hooks.append(created(api.call("POST", "/hooks", headers, json=body))["id"])
    return found


def shared_workflow(api: Api, owner: dict[str, str], grantee: str) -> str:
    wf_id = created(api.call("POST", "/workflows", owner, json={"package": PKG}))["id"]
    grants = {"grants": {grantee: "runner"}}
    assert api.call("PUT", f"/workflows/{wf_id}/grants", owner, json=grants).status_code == 200
    return wf_id


def assert_gone(api: Api, auto: Automation, name: str, traces: Traces) -> None:
    drive = Path(api.services.settings.worker.drive_root) / name
    assert not drive.exists(), "the drive is still there"
    with pytest.raises(WorkflowNotFound):
        api.services.library.get(traces.workflow)
    for sid in traces.schedules:
        with pytest.raises(ScheduleNotFound):
            auto.schedules.get(sid)
        with pytest.raises(KeyError):
            auto.schedules.entry(sid)  # nothing left for the beat to fire
    for secret in traces.triggers:
        assert api.http.post(f"/api/v1/triggers/{secret}", json={}).status_code == 404
    for hook_id in traces.hooks:
        with pytest.raises(HookNotFound):
            auto.hooks.get(hook_id)
    assert auto.hooks.owned(name) == [] and auto.hooks.for_run(name, None) == []


def test_the_api_removes_everything_of_the_user_and_retires_the_name(
    api: Api, auto: Automation
) -> None:
    admin, alice, bob = api.user("root", "admin"), api.user("alice"), api.user("bob")
    bobs = shared_workflow(api, bob, "alice")
    bob_sched = created(api.call("POST", f"/workflows/{bobs}/schedules", bob, json={"cron": "@daily"}))  # fmt: skip
    traces = leave_traces(api, alice, admin, bobs)
    assert api.call("DELETE", "/users/alice", admin).status_code == 204
    assert_gone(api, auto, "alice", traces)
    assert api.call("GET", "/auth/me", alice).status_code == 401
    # bob's workflow and schedule stay; alice's grant on it does not
    assert api.call("GET", f"/workflows/{bobs}/grants", bob).json == {"grants": {}}
    assert auto.schedules.get(bob_sched["id"]).owner == "bob"
    again = api.call("POST", "/users", admin, json={"username": "alice", "password": "x" * 12})
    assert again.status_code == 409, again.json
    assert "belonged to a removed user" in again.json["error"]["message"]
    assert api.call("DELETE", "/users/alice", admin).status_code == 404
    assert "alice" not in {u["username"] for u in api.call("GET", "/users", admin).json["items"]}


def test_a_removal_cut_short_is_finished_by_the_next_one(api: Api, auto: Automation) -> None:
    from dizest_api.user_removal import retire

    admin, dave = api.user("root", "admin"), api.user("dave")
    traces = leave_traces(api, dave, admin, shared_workflow(api, admin, "dave"))
    retire(api.services.accounts, "dave")  # the account went, then the removal stopped
    assert api.call("GET", "/auth/me", dave).status_code == 401
    assert api.call("DELETE", "/users/dave", admin).status_code == 204
    assert_gone(api, auto, "dave", traces)
    assert api.call("DELETE", "/users/dave", admin).status_code == 404


def test_the_cli_removes_everything_of_the_user_and_retires_the_name(
    api: Api, auto: Automation, tmp_path: Path
) -> None:
    worker = api.services.settings.worker
    env = {
        "DIZEST_REDIS_URL": worker.redis_url,
        "DIZEST_PREFIX": worker.prefix,
        "DIZEST_DATA_DIR": str(tmp_path / "data"),
        "DIZEST_DRIVE_ROOT": worker.drive_root,
        "DIZEST_BCRYPT_ROUNDS": "4",
    }
    admin, carol = api.user("root", "admin"), api.user("carol")
    traces = leave_traces(api, carol, admin, shared_workflow(api, admin, "carol"))
    run = CliRunner().invoke
    removed = run(user, ["remove", "carol", "--yes"], env=env)
    assert removed.exit_code == 0, removed.output
    assert str(Path(worker.drive_root).resolve() / "carol") in removed.output
    assert_gone(api, auto, "carol", traces)
    assert api.call("GET", "/auth/me", carol).status_code == 401
    refused = run(user, ["add", "carol", "--password", PASSWORD], env=env)
    assert refused.exit_code == 1 and "belonged to a removed user" in refused.output
    answer = api.call("POST", "/users", admin, json={"username": "carol", "password": PASSWORD})
    assert answer.status_code == 409, answer.json
    assert run(user, ["remove", "carol", "--yes"], env=env).exit_code == 1
    assert json.loads(api.services.redis.hget(f"{worker.prefix}:users:retired", "carol"))["done"]


class HeldBody(io.BytesIO):
    """A request body that, once the view starts reading it, waits for `go`: the request is
    authenticated and in its view, and the test acts before its write."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reading, self.go = threading.Event(), threading.Event()

    def _held(self) -> None:
        self.reading.set()
        assert self.go.wait(30), "the test never let the body through"

    def read(self, size: int | None = -1) -> bytes:
        self._held()
        return super().read(size)

    def read1(self, size: int | None = -1) -> bytes:
        self._held()
        return super().read1(size)

    def readinto(self, buffer: Any) -> int:
        self._held()
        return super().readinto(buffer)


def test_a_request_in_flight_at_the_removal_leaves_nothing_under_the_name(
    api: Api, auto: Automation
) -> None:
    """The exact interleaving: erin's write requests authenticate, the admin removes erin while
    they read their bodies, then they write (a workflow, a drive file): what they wrote is
    cleared when they end, not kept under the retired name. A token's creation looks the user
    up after its body, and is refused."""
    admin, erin = api.user("root", "admin"), api.user("erin")
    workflow = json.dumps({"package": PKG, "title": "late"}).encode()
    writes = {
        "workflow": ("POST", "/workflows", "application/json", workflow),
        "file": ("PUT", "/files/late.csv", "application/octet-stream", b"a,b\n1,2\n"),
        "token": ("POST", "/tokens", "application/json", b'{"name": "late"}'),
    }
    bodies = {what: HeldBody(w[3]) for what, w in writes.items()}
    answers: dict[str, Any] = {}

    def send(what: str) -> None:
        method, path, kind, _ = writes[what]
        answers[what] = api.app.test_client().open(
            f"/api/v1{path}",
            method=method,
            headers={**erin, "Content-Type": kind},
            input_stream=bodies[what],
        )

    threads = [threading.Thread(target=send, args=(what,)) for what in writes]
    for thread in threads:
        thread.start()
    for body in bodies.values():
        assert body.reading.wait(30), "a request never reached its view"
    assert api.call("DELETE", "/users/erin", admin).status_code == 204
    for body in bodies.values():
        body.go.set()
    for thread in threads:
        thread.join(30)
    assert {what: a.status_code for what, a in answers.items()} == {
        "workflow": 201, "file": 201, "token": 404
    }, {what: a.json for what, a in answers.items()}  # fmt: skip
    # each was written after the removal's own clearing, and cleared at the end of its request
    with pytest.raises(WorkflowNotFound):
        api.services.library.get(answers["workflow"].json["id"])
    assert not (Path(api.services.settings.worker.drive_root) / "erin").exists()
    assert not api.services.redis.exists(api.services.library.keys.user_tokens("erin"))
    assert api.call("GET", "/workflows", admin).json["items"] == []


def test_start_up_finishes_the_deletion_of_a_removed_drive(api: Api, deep_path: Path) -> None:  # noqa: F811

    partial = Path(api.services.settings.worker.drive_root) / ".partial"
    legacy_tree(partial / "gone.removed.0123456789abcdef", 1100, "g")  # what a crash left
    legacy_tree(partial / "upload.0123456789abcdef", 1, "u")  # not a removal: kept
    assert api.services.bootstrap() is not None  # the first admin, and the leftovers
    assert sorted(os.listdir(partial)) == ["upload.0123456789abcdef"]
