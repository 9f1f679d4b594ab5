"""Runs over HTTP against a real Redis and a real worker: submit, report, outputs, access, limits."""

from __future__ import annotations

import contextlib
import json
import pickle
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from dizest_api.app import create_app
from dizest_api.settings import ApiSettings
from dizest_core.job import Artifact
from dizest_worker.settings import WorkerSettings
from tests.api.conftest import Api
from tests.conftest import DATA, package
from tests.worker.conftest import WorkerProcess, cleanup, make_settings

FANOUT = json.loads((DATA / "c03_fanout.dwp").read_text())
EXPECTED = json.loads((DATA / "c03_fanout.expected.json").read_text())["expect"]["flows"]
FINAL = {"ready", "error", "cancelled"}
STATUS = {"done": "ready", "error": "error", "skipped": "idle"}  # expected.json -> flow status
CYCLE = package(
    {"inc": {"code": "", "inputs": ["x"], "outputs": ["y"]}},
    {
        "a": {"app": "inc", "in": {"x": [("b", "y")]}},
        "b": {"app": "inc", "in": {"x": [("a", "y")]}},
    },
)


def slow(seconds: float, steps: int = 1) -> dict[str, Any]:
    """A chain of `steps` flows, each printing and sleeping `seconds`."""
    code = f"import time\nprint('tick')\ntime.sleep({seconds})\ny = 1\n"
    flows: dict[str, dict[str, Any]] = {"s0": {"app": "step0"}}
    apps = {"step0": {"code": code, "outputs": ["y"]}}
    apps["step"] = {"code": code, "inputs": ["x"], "outputs": ["y"]}
    for i in range(1, steps):
        flows[f"s{i}"] = {"app": "step", "in": {"x": [(f"s{i - 1}", "y")]}}
    return package(apps, flows)


@dataclass
class Live(Api):
    """An Api on a real worker, also served over real HTTP at `base_url`."""

    base_url: str = ""
    worker_settings: WorkerSettings | None = None

    def wait(self, run_id: str, headers: dict[str, str], timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            answer = self.call("GET", f"/runs/{run_id}", headers)
            assert answer.status_code == 200, answer.json
            if answer.json["status"] in FINAL:
                return dict(answer.json)
            assert time.monotonic() < deadline, f"run {run_id} not done: {answer.json['status']}"
            time.sleep(0.05)

    def app_with(self, **overrides: Any) -> Api:
        """Another API process on the same cluster, with other settings (the API's own, or
        those it shares with the workers, such as max_runs_per_user)."""
        assert self.worker_settings is not None
        shared = {k: v for k, v in overrides.items() if k in WorkerSettings.__dataclass_fields__}
        settings = ApiSettings(
            secret_key="k" * 32,
            data_dir=str(Path(self.worker_settings.workdir_root).parent / "data"),
            bcrypt_rounds=4,
            worker=replace(self.worker_settings, **shared),
            **{k: v for k, v in overrides.items() if k not in shared},
        )
        app = create_app(settings)
        app.config["TESTING"] = True
        return Api(app, app.test_client())


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with serve_live(redis_url, tmp_path_factory.mktemp("live")) as found:
        yield found


@contextlib.contextmanager
def serve_live(redis_url: str, root: Path) -> Iterator[Live]:
    """One worker, the app on its settings, and that app served on 127.0.0.1 (a thread)."""
    worker_settings = make_settings(redis_url, root, prefix=f"dzr{uuid.uuid4().hex[:10]}")
    worker = WorkerProcess(worker_settings, "w1", concurrency=2)
    settings = ApiSettings(
        secret_key="k" * 32,
        data_dir=str(root / "data"),
        bcrypt_rounds=4,
        heartbeat_s=0.5,
        worker=worker_settings,
    )
    app = create_app(settings)
    app.config["TESTING"] = True
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Live(
            app,
            app.test_client(),
            base_url=f"http://127.0.0.1:{server.server_port}",
            worker_settings=worker_settings,
        )
    finally:
        server.shutdown()
        hub = app.extensions.get("dizest.events")
        if hub is not None:
            hub.close()
        worker.stop()
        cleanup(worker_settings)


def create_workflow(live: Live, headers: dict[str, str], pkg: dict[str, Any]) -> str:
    answer = live.call("POST", "/workflows", headers, json={"title": "t", "package": pkg})
    assert answer.status_code == 201, answer.json
    return str(answer.json["id"])


def check_fanout(report: dict[str, Any]) -> None:
    assert report["status"] == "ready", report
    for flow_id, want in EXPECTED.items():
        got = report["flows"][flow_id]
        assert got["status"] == STATUS[want["status"]], (flow_id, got)
        assert got["outputs"] == want["outputs"], (flow_id, got["outputs"])


def test_stored_and_inline_runs_give_the_expected_outputs(live: Live) -> None:
    alice = live.user("alice")
    wf_id = create_workflow(live, alice, FANOUT)
    stored = live.call("POST", "/runs", alice, json={"workflow_id": wf_id})
    assert stored.status_code == 201, stored.json
    assert stored.json["workflow_id"] == wf_id and stored.json["version"] == 1
    inline = live.call("POST", "/runs", alice, json={"package": FANOUT})
    assert inline.status_code == 201, inline.json
    for run_id in (stored.json["run_id"], inline.json["run_id"]):
        check_fanout(live.wait(run_id, alice))
        outputs = live.call("GET", f"/runs/{run_id}/flows/k3/outputs", alice)
        assert outputs.status_code == 200 and outputs.json["outputs"] == EXPECTED["k3"]["outputs"]
        # the stored bytes, only when asked (open formats: tests/api/test_outputs.py)
        raw = live.call("GET", f"/runs/{run_id}/flows/src/outputs/v?format=pickle", alice)
        assert raw.status_code == 200 and raw.mimetype == "application/x-python-pickle"
        assert "attachment" in raw.headers["Content-Disposition"]
        assert pickle.loads(raw.data) == [1, 2, 3]
        missing = live.call("GET", f"/runs/{run_id}/flows/src/outputs/nope", alice)
        assert missing.status_code == 404
    listed = live.call("GET", "/runs?limit=1", alice).json
    assert listed["total"] == 2 and [i["run_id"] for i in listed["items"]] == [
        inline.json["run_id"]
    ]
    assert live.call("GET", "/runs?status=ready", alice).json["total"] == 2
    # a status that does not exist (`failed` for `error`) listed nothing, silently
    typo = live.call("GET", "/runs?status=failed", alice)
    assert typo.status_code == 400 and "'failed'" in typo.json["error"]["message"], typo.json
    assert "error" in typo.json["error"]["details"]["statuses"]
    rerun = live.call("POST", f"/runs/{stored.json['run_id']}/flows/k3/rerun", alice)
    assert rerun.status_code == 201, rerun.json
    report = live.wait(rerun.json["run_id"], alice)
    assert report["status"] == "ready" and report["flows"]["k3"]["outputs"] == {"r": 30}
    bad = live.call("POST", f"/runs/{stored.json['run_id']}/flows/nope/rerun", alice)
    assert bad.status_code == 404 and bad.json["error"]["code"] == "not_found"  # the path names it
    none = live.call("GET", f"/runs/{stored.json['run_id']}/flows/nope/outputs", alice)
    assert none.status_code == 404 and "no flow 'nope'" in none.json["error"]["message"]


def test_idempotency_key_gives_the_same_run_per_user(live: Live) -> None:
    alice, bob = live.user("alice"), live.user("bob")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = live.call("POST", "/runs", {**alice, **key}, json={"package": FANOUT})
    again = live.call("POST", "/runs", {**alice, **key}, json={"package": FANOUT})
    assert first.status_code == 201 and again.status_code == 200
    assert first.json["run_id"] == again.json["run_id"]
    other = live.call("POST", "/runs", {**bob, **key}, json={"package": FANOUT})
    assert other.status_code == 201 and other.json["run_id"] != first.json["run_id"]
    live.wait(first.json["run_id"], alice)
    live.wait(other.json["run_id"], bob)


def test_an_artifact_reference_outside_the_artifact_dir_is_never_served(
    live: Live, tmp_path: Path
) -> None:
    alice = live.user("alice")
    run_id = live.call("POST", "/runs", alice, json={"package": FANOUT}).json["run_id"]
    live.wait(run_id, alice)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for you")
    store = live.services.client.store
    assert store.put(run_id, "src", {"v": Artifact(str(secret), 11)}, {"v": None}, attempt=99)
    answer = live.call("GET", f"/runs/{run_id}/flows/src/outputs/v", alice)
    assert answer.status_code == 404 and b"not for you" not in answer.data


def test_others_see_nothing_unless_granted_on_the_workflow(live: Live) -> None:
    alice, bob, carol = live.user("alice"), live.user("bob"), live.user("carol")
    eve = live.user("eve")
    admin = live.user("root", "admin")
    wf_id = create_workflow(live, alice, FANOUT)
    run_id = live.call("POST", "/runs", alice, json={"workflow_id": wf_id}).json["run_id"]
    inline_id = live.call("POST", "/runs", alice, json={"package": FANOUT}).json["run_id"]
    live.wait(run_id, alice)
    live.wait(inline_id, alice)
    paths = [
        ("GET", f"/runs/{run_id}"),
        ("GET", f"/runs/{run_id}/flows/k1/outputs"),
        ("GET", f"/runs/{run_id}/flows/k1/outputs/r"),
        ("GET", f"/runs/{run_id}/events"),
        ("POST", f"/runs/{run_id}/cancel"),
        ("POST", f"/runs/{run_id}/flows/k1/rerun"),
    ]
    for method, path in paths:
        assert live.call(method, path, bob).status_code == 404, (method, path)
    assert live.call("POST", "/runs", bob, json={"workflow_id": wf_id}).status_code == 404
    assert run_id not in {i["run_id"] for i in live.call("GET", "/runs", bob).json["items"]}
    owners = f"/runs?workflow_id={wf_id}&owner=alice"  # the owner's runs of a shared workflow
    assert live.call("GET", owners, bob).json["items"] == []
    grants = {"grants": {"bob": "viewer", "carol": "runner", "eve": "editor"}}
    assert live.call("PUT", f"/workflows/{wf_id}/grants", alice, json=grants).status_code == 200
    assert live.call("GET", f"/runs/{run_id}", bob).json["rights"] == ["read"]  # a viewer
    assert live.call("GET", f"/runs/{run_id}", alice).json["rights"] == ["read", "rerun", "cancel"]
    assert live.call("GET", f"/workflows/{wf_id}", bob).json["rights"] == ["read"]
    assert live.call("GET", f"/workflows/{wf_id}", eve).json["rights"] == ["read", "run", "write"]
    assert live.call("GET", f"/runs/{run_id}", carol).json["rights"] == ["read", "rerun"]
    listed = live.call("GET", owners, bob).json
    assert [i["run_id"] for i in listed["items"]] == [run_id] and listed["total"] == 1
    assert live.call("GET", "/runs?owner=alice", bob).json["items"] == []  # not all of hers
    assert live.call("GET", f"/runs?workflow_id={wf_id}&owner=eve", bob).json["items"] == []
    assert live.call("GET", f"/runs/{run_id}", bob).status_code == 200
    assert live.call("GET", f"/runs/{run_id}/flows/k1/outputs", bob).status_code == 200
    assert live.call("POST", f"/runs/{run_id}/cancel", bob).status_code == 403
    assert live.call("POST", f"/runs/{run_id}/flows/k1/rerun", bob).status_code == 403
    assert live.call("POST", "/runs", bob, json={"workflow_id": wf_id}).status_code == 403
    assert live.call("GET", f"/runs/{inline_id}", bob).status_code == 404
    assert live.call("POST", f"/runs/{run_id}/cancel", carol).status_code == 403
    assert live.call("POST", f"/runs/{run_id}/cancel", eve).status_code == 200
    # a grantee's own run of the workflow stays theirs: other grantees do not see it
    carols = live.call("POST", "/runs", carol, json={"workflow_id": wf_id})
    assert carols.status_code == 201, carols.json
    eves = live.call("POST", "/runs", eve, json={"workflow_id": wf_id})
    assert eves.status_code == 201, eves.json  # an editor may run
    live.wait(carols.json["run_id"], carol)
    for other in (bob, eve):
        assert live.call("GET", f"/runs/{carols.json['run_id']}", other).status_code == 404
    assert live.call("GET", f"/runs/{carols.json['run_id']}", alice).status_code == 404
    live.wait(eves.json["run_id"], eve)
    assert live.call("GET", f"/runs/{inline_id}", admin).status_code == 200
    everything = live.call("GET", "/runs?limit=200", admin).json["items"]
    assert {run_id, inline_id} <= {i["run_id"] for i in everything}
    assert live.call("GET", "/runs/nope", admin).status_code == 404


def test_a_run_is_its_owners_before_any_of_its_flows_is_sent(live: Live, monkeypatch) -> None:
    """A run of many flows takes a while to send (a probe's 100,000 took minutes): its owner
    sees, lists and may cancel it from the start, and it counts among their unfinished runs."""
    from dizest_api.data.run_index import RunIndex

    alice = live.user("alice")
    client, owners = live.services.client, []
    send = client._enqueue

    def enqueue(tasks: Any, countdown: float) -> None:  # the first flow message of the run
        run_id = tasks[0][0].run_id
        owners.append(RunIndex(live.services.redis, live.services.settings.worker).get(run_id))
        send(tasks, countdown)

    monkeypatch.setattr(client, "_enqueue", enqueue)
    answer = live.call("POST", "/runs", alice, json={"package": FANOUT})
    assert answer.status_code == 201, answer.json
    assert owners and owners[0] is not None and owners[0]["owner"] == "alice", owners
    assert live.wait(answer.json["run_id"], alice)["status"] == "ready"


def test_invalid_runs_are_refused_with_every_problem(live: Live) -> None:
    alice = live.user("alice")
    cyclic = live.call("POST", "/runs", alice, json={"package": CYCLE})
    assert cyclic.status_code == 422, cyclic.json
    assert cyclic.json["error"]["code"] == "invalid_workflow"
    assert isinstance(cyclic.json["error"]["details"], list) and cyclic.json["error"]["details"]
    unknown = live.call("POST", "/runs", alice, json={"package": FANOUT, "flows": ["zz"]})
    assert unknown.status_code == 422
    pathlike = package({"a": {"code": "v = 1"}}, {"x": {"app": "a"}, "x/1/d": {"app": "a"}})
    escape = live.call("POST", "/runs", alice, json={"package": pathlike})  # a probe's escape
    assert escape.status_code == 422, escape.json
    assert [d["code"] for d in escape.json["error"]["details"]] == ["bad_flow_id"]
    both = live.call("POST", "/runs", alice, json={"package": FANOUT, "workflow_id": "x"})
    assert both.status_code == 400
    before = live.call("GET", "/runs", alice).json["total"]
    # every bad run option is one 422 naming options.<name>, as a package's are (a probe got a
    # 400 for a wrong type, from a second list of the run options' types, and a 422 otherwise)
    mixed = {"x": 1, "network": 3, "cpus": "1", "retries": True, "flow_timeout": None}
    options = live.call("POST", "/runs", alice, json={"package": FANOUT, "options": mixed})
    assert options.status_code == 422, options.json
    assert options.json["error"]["code"] == "invalid_options"
    fields = sorted(d["field"] for d in options.json["error"]["details"])
    assert fields == ["options.cpus", "options.network", "options.retries", "options.x"], fields
    for bad in ({"retries": 10**400}, {"flow_timeout": -5}, {"memory_limit_mb": 1}, {"network": "moon"}, {"cpus": 0}):  # fmt: skip
        answer = live.call("POST", "/runs", alice, json={"package": FANOUT, "options": bad})
        assert answer.status_code == 422, (bad, answer.json)
        assert answer.json["error"]["code"] == "invalid_options" and answer.json["error"]["details"]
    huge = b'{"package": {}, "options": {"retries": 1' + b"0" * 5000 + b"}}"
    answer = live.call("POST", "/runs", alice, data=huge, content_type="application/json")
    assert answer.status_code == 400, answer.json  # past Python's int digit limit: bad JSON
    assert live.call("GET", "/runs", alice).json["total"] == before  # nothing stored
    # a run's network, as docs/security.md says (the API refused it as unknown before)
    sealed = live.call("POST", "/runs", alice, json={"package": FANOUT, "options": {"network": "none"}})  # fmt: skip
    assert sealed.status_code == 201, sealed.json


def test_a_packages_option_problems_are_listed_with_its_other_errors(live: Live) -> None:
    """A submit, a store and a validation named a package's `"dizest"` option problems only
    once it had no other error (a fix, then a second refusal); `dizest validate` lists all."""
    alice = live.user("alice")
    pkg = json.loads(json.dumps(CYCLE))
    pkg["flow"]["a"]["dizest"] = {"timeout": -1}
    errors = {("cycle", None), ("invalid_option", "dizest.timeout")}
    checked = live.call("POST", "/workflows/validate", alice, json={"package": pkg}).json
    assert {(p["code"], p["field"]) for p in checked["problems"]} >= errors, checked
    assert checked["valid"] is False
    stored = live.call("POST", "/workflows", alice, json={"package": pkg})
    assert stored.status_code == 422 and stored.json["error"]["code"] == "invalid_workflow"
    assert {(p["code"], p["field"]) for p in stored.json["error"]["details"]} >= errors
    body = {"package": pkg, "options": {"retries": 99}}
    submitted = live.call("POST", "/runs", alice, json=body)
    assert submitted.status_code == 422 and submitted.json["error"]["code"] == "invalid_workflow"
    found = {(p["code"], p["field"]) for p in submitted.json["error"]["details"]}
    assert found >= errors | {("invalid_option", "options.retries")}, found


def test_simultaneous_submits_cannot_pass_the_limit_together(live: Live) -> None:
    limited = live.app_with(max_runs_per_user=3)
    erin = limited.user("erin")
    barrier = threading.Barrier(10)

    def submit() -> tuple[int, str | None]:
        http = limited.app.test_client()
        barrier.wait()
        answer = http.post("/api/v1/runs", headers=erin, json={"package": slow(3)})
        return answer.status_code, (answer.json or {}).get("run_id")

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: submit(), range(10)))
    assert sorted(code for code, _ in answers) == [201] * 3 + [429] * 7
    for code, run_id in answers:
        if code == 201:
            limited.call("POST", f"/runs/{run_id}/cancel", erin)


def test_too_many_unfinished_runs_is_429(live: Live) -> None:
    limited = live.app_with(max_runs_per_user=1)
    dave = limited.user("dave")
    first = limited.call("POST", "/runs", dave, json={"package": slow(3)})
    assert first.status_code == 201, first.json
    second = limited.call("POST", "/runs", dave, json={"package": slow(3)})
    assert second.status_code == 429 and second.json["error"]["code"] == "too_many_runs"
    assert limited.call("POST", f"/runs/{first.json['run_id']}/cancel", dave).status_code == 200
    report = live.wait(first.json["run_id"], live.user("dave"))
    assert report["status"] == "cancelled"
    third = limited.call("POST", "/runs", dave, json={"package": FANOUT})
    assert third.status_code == 201, third.json
    live.wait(third.json["run_id"], live.user("dave"))
