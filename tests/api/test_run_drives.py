"""Which drive a run reads: that of the user it runs as, whichever door started it. A probe's
grantee reran a flow of the owner's run and read the owner's files; runs that schedules and
triggers start read no drive at all (docs/files.md says they read their owner's)."""

from __future__ import annotations

import json
import time
from typing import Any

from dizest_api.automation.runtime import Runtime
from dizest_api.automation.service import install
from dizest_api.automation.settings import AutomationSettings
from dizest_api.automation.tasks import run_tick
from dizest_api.drives import drive_path
from tests.api.conftest import Api, cluster_api, session_prefix  # noqa: F401
from tests.conftest import package

PKG = package({"a": {"code": "v = 1", "outputs": ["v"]}}, {"f": {"app": "a"}})


def drive_of(api: Api, run_id: str) -> Any:
    return json.loads(api.services.client.record(run_id)["drive"])


def test_every_door_gives_a_run_the_drive_of_the_user_it_runs_as(cluster_api: Api) -> None:  # noqa: F811
    api = cluster_api
    keys = api.services.library.keys  # a worker's beat an hour ahead: runs stay pending
    api.services.redis.hset(keys.workers, "drives", int(time.time() * 1000) + 3_600_000)
    auto = install(api.app, AutomationSettings())
    alice, bob = api.user("alice"), api.user("bob")
    root = api.services.settings.worker.drive_root
    wf = api.call("POST", "/workflows", alice, json={"title": "t", "package": PKG}).json["id"]
    grants = {"grants": {"bob": "runner"}}
    assert api.call("PUT", f"/workflows/{wf}/grants", alice, json=grants).status_code == 200
    first = api.call("POST", "/runs", alice, json={"workflow_id": wf}).json["run_id"]
    assert drive_of(api, first) == drive_path(root, "alice")

    rerun = api.call("POST", f"/runs/{first}/flows/f/rerun", bob)
    assert rerun.status_code == 201, rerun.json
    assert drive_of(api, rerun.json["run_id"]) == drive_path(root, "bob")  # not alice's

    made = api.call("POST", f"/workflows/{wf}/triggers", bob, json={}).json
    fired = api.http.post(f"/api/v1/triggers/{made['secret']}", json={})
    assert fired.status_code == 201, fired.json
    assert drive_of(api, fired.json["run_id"]) == drive_path(root, "bob")

    sid = api.call("POST", f"/workflows/{wf}/schedules", bob, json={"cron": "@daily"}).json["id"]
    tick = run_tick(Runtime.build(auto.celery), sid, "2026-12-03T00:00")
    assert "run_id" in tick, tick
    assert drive_of(api, tick["run_id"]) == drive_path(root, "bob")
