"""What started a run, in the runs list and a run's own answer: a schedule, a trigger, a rerun
(by id), or nothing (its owner's submit). A user review's runs page filled with a per-minute
schedule's runs that looked exactly like the ones they had started."""

from __future__ import annotations

import time

from dizest_api.automation.runtime import Runtime
from dizest_api.automation.service import install
from dizest_api.automation.settings import AutomationSettings
from dizest_api.automation.tasks import run_tick
from tests.api.conftest import Api, cluster_api, session_prefix  # noqa: F401
from tests.conftest import package

PKG = package({"a": {"code": "v = 1", "outputs": ["v"]}}, {"f": {"app": "a"}})


def test_every_door_says_what_started_the_run(cluster_api: Api) -> None:  # noqa: F811
    api = cluster_api
    keys = api.services.library.keys  # a worker's beat an hour ahead: runs stay pending
    api.services.redis.hset(keys.workers, "origins", int(time.time() * 1000) + 3_600_000)
    auto = install(api.app, AutomationSettings())
    alice = api.user("alice")
    wf = api.call("POST", "/workflows", alice, json={"title": "t", "package": PKG}).json["id"]
    submitted = api.call("POST", "/runs", alice, json={"workflow_id": wf}).json
    assert submitted["origin"] is None, submitted
    rerun = api.call("POST", f"/runs/{submitted['run_id']}/flows/f/rerun", alice).json
    assert rerun["origin"] == {"kind": "rerun", "id": submitted["run_id"]}, rerun
    made = api.call("POST", f"/workflows/{wf}/triggers", alice, json={}).json
    fired = api.http.post(f"/api/v1/triggers/{made['secret']}", json={}).json
    sid = api.call("POST", f"/workflows/{wf}/schedules", alice, json={"cron": "@daily"}).json["id"]
    tick = run_tick(Runtime.build(auto.celery), sid, "2026-12-05T00:00")
    listed = api.call("GET", "/runs", alice).json["items"]
    origins = {run["run_id"]: run["origin"] for run in listed}
    assert origins == {
        submitted["run_id"]: None,
        rerun["run_id"]: {"kind": "rerun", "id": submitted["run_id"]},
        fired["run_id"]: {"kind": "trigger", "id": made["id"]},
        tick["run_id"]: {"kind": "schedule", "id": sid},
    }, origins
    shown = api.call("GET", f"/runs/{tick['run_id']}", alice).json
    assert shown["origin"] == {"kind": "schedule", "id": sid}, shown


def test_a_grantee_sees_what_started_a_run_but_not_the_owners_ids(cluster_api: Api) -> None:  # noqa: F811
    """A viewer of the workflow reads its owner's runs; the owner's schedules and triggers are
    not theirs to see (their APIs answer 404 and []), and a run's origin gave their ids away (a
    probe's find): the kind only, for anyone but the run's owner and admins."""
    api = cluster_api
    keys = api.services.library.keys  # a worker's beat an hour ahead: runs stay pending
    api.services.redis.hset(keys.workers, "origins", int(time.time() * 1000) + 3_600_000)
    auto = install(api.app, AutomationSettings())
    alice, carol = api.user("alice"), api.user("carol")
    root = api.user("root", "admin")
    wf = api.call("POST", "/workflows", alice, json={"title": "t", "package": PKG}).json["id"]
    grants = {"grants": {"carol": "viewer"}}
    assert api.call("PUT", f"/workflows/{wf}/grants", alice, json=grants).status_code == 200
    sid = api.call("POST", f"/workflows/{wf}/schedules", alice, json={"cron": "@daily"}).json["id"]
    tick = run_tick(Runtime.build(auto.celery), sid, "2026-12-05T00:00")
    path = f"/runs/{tick['run_id']}"
    assert api.call("GET", path, alice).json["origin"] == {"kind": "schedule", "id": sid}
    assert api.call("GET", path, root).json["origin"] == {"kind": "schedule", "id": sid}
    assert api.call("GET", path, carol).json["origin"] == {"kind": "schedule", "id": None}
    shared = api.call("GET", f"/runs?shared=1&workflow_id={wf}", carol).json["items"]
    assert [run["origin"] for run in shared] == [{"kind": "schedule", "id": None}], shared
    assert api.call("GET", f"/schedules/{sid}", carol).status_code == 404  # as before
