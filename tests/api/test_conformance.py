"""Real answers against the served OpenAPI document, on the paths the fuzzer seldom gets past
(it mostly meets 4xx): a real worker runs a real workflow, and each answer on the way (run report,
outputs, files, tokens, triggers, errors...) must be what its operation declares, and every SSE
frame an `Event` whose `id` and `event` fields repeat its own."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from dizest_api.automation.service import install
from dizest_api.automation.settings import AutomationSettings
from tests.api.test_runs import Live, create_workflow
from tests.api.test_runs import live as live  # the fixture
from tests.conftest import package

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.core.failures import Failure, FailureGroup  # noqa: E402

WRONG = (Failure, FailureGroup)  # one failed check, or several

PKG = package(
    {"src": {"code": "print('hello')\ny = {'n': 1}", "outputs": ["y"]}},
    {"a": {"app": "src"}},
)
V1 = "/api/v1"


class Checked:
    """Calls through the app's test client, each answer checked against its operation."""

    def __init__(self, live: Live, headers: dict[str, str]) -> None:
        self.live, self.headers = live, headers
        self.document = live.http.get(f"{V1}/openapi.json").json
        self.schema = schemathesis.openapi.from_dict(self.document)
        self.seen: list[str] = []

    def __call__(self, method: str, template: str, status: int, **kw: Any) -> Any:
        """`method template` (its {params} filled from `kw.pop('params')`) must answer `status`
        with what the document declares for it."""
        params = kw.pop("params", {})
        headers = {**self.headers, **kw.pop("headers", {})}
        answer = self.live.http.open(
            template.format(**params), method=method, headers=headers, **kw
        )
        assert answer.status_code == status, (method, template, answer.status_code, answer.data)
        operation = self.schema[template][method]
        try:
            operation.validate_response(answer)
        except WRONG as exc:
            pytest.fail(f"{method} {template} -> {answer.status_code}: {exc}")
        self.seen.append(f"{method} {template} {status}")
        return answer

    def event_validator(self) -> Draft202012Validator:
        """The `Event` component, with the document's components to resolve its references."""
        root = {"components": self.document["components"], "$ref": "#/components/schemas/Event"}
        return Draft202012Validator(root)


def test_real_answers_are_what_the_document_declares(live: Live) -> None:
    try:
        walk(live)
    finally:  # the output download started the API process' converter zygote
        converter = live.app.extensions.pop("dizest_convert", None)
        if converter is not None:
            converter.close()


def walk(live: Live) -> None:
    admin = live.user("root", "admin")
    call = Checked(live, admin)
    call("GET", "/healthz", 200)
    call("GET", "/readyz", 200)
    call("GET", f"{V1}/auth/me", 200)
    token = call("POST", f"{V1}/tokens", 201, json={"name": "ci", "scopes": ["read"]}).json
    call("GET", f"{V1}/tokens", 200)
    call("DELETE", f"{V1}/tokens/{{token_id}}", 204, params={"token_id": token["id"]})
    call("POST", f"{V1}/users", 201, json={"username": "bob", "password": "long enough pw"})
    call("GET", f"{V1}/users", 200)
    call("GET", f"{V1}/apps", 200)
    workers = call("GET", f"{V1}/workers", 200).json["items"]
    assert [w["name"] for w in workers] == ["w1"] and workers[0]["slots"] == 2

    wf_id = create_workflow(live, admin, PKG)
    wf = {"wf_id": wf_id}
    call("GET", f"{V1}/workflows", 200)
    call("GET", f"{V1}/workflows/{{wf_id}}", 200, params=wf)
    call("PUT", f"{V1}/workflows/{{wf_id}}", 200, params=wf, json={"package": PKG})
    call("GET", f"{V1}/workflows/{{wf_id}}/dwp", 200, params=wf)
    call("PUT", f"{V1}/workflows/{{wf_id}}/grants", 200, params=wf, json={"grants": {"bob": "viewer"}})  # fmt: skip
    call("GET", f"{V1}/workflows/{{wf_id}}/grants", 200, params=wf)
    call("POST", f"{V1}/workflows/validate", 200, json={"package": PKG})

    run_id = call("POST", f"{V1}/runs", 201, json={"workflow_id": wf_id}).json["run_id"]
    assert live.wait(run_id, admin)["status"] == "ready"
    run = {"run_id": run_id, "flow_id": "a", "name": "y"}
    report = call("GET", f"{V1}/runs/{{run_id}}", 200, params=run).json
    assert report["flows"]["a"]["outputs"]["y"] is not None
    call("GET", f"{V1}/runs", 200)
    call("GET", f"{V1}/runs/{{run_id}}/dwp", 200, params=run)
    call("GET", f"{V1}/runs/{{run_id}}/flows/{{flow_id}}/outputs", 200, params=run)
    download = call("GET", f"{V1}/runs/{{run_id}}/flows/{{flow_id}}/outputs/{{name}}", 200, params=run)  # fmt: skip
    assert json.loads(download.data) == {"n": 1}
    rerun = call("POST", f"{V1}/runs/{{run_id}}/flows/{{flow_id}}/rerun", 201, params=run).json
    call("POST", f"{V1}/runs/{{run_id}}/cancel", 200, params={"run_id": rerun["run_id"]})

    events = call("GET", f"{V1}/runs/{{run_id}}/events", 200, params=run)
    frames = [f for f in events.data.decode().split("\n\n") if f and not f.startswith(":")]
    check = call.event_validator()
    for frame in frames:
        fields = dict(line.split(": ", 1) for line in frame.split("\n"))
        data = json.loads(fields["data"])
        check.validate(data)
        assert (fields["id"], fields["event"]) == (data["id"], data["type"])
    assert json.loads(fields["data"])["type"] == "workflow.status"  # the last frame

    path = {"path": "in/a.txt"}
    call("PUT", f"{V1}/files/{{path}}", 201, params=path, data=b"hello")
    call("GET", f"{V1}/files", 200)
    call("GET", f"{V1}/files/{{path}}", 200, params={"path": "in"})
    file = call("GET", f"{V1}/files/{{path}}", 200, params=path)
    assert file.data == b"hello"
    upload = {"data": {"f": (io.BytesIO(b"x,y\n1,2\n"), "t.csv")}}
    call("POST", f"{V1}/files", 201, content_type="multipart/form-data", **upload)
    call("PATCH", f"{V1}/files/{{path}}", 200, params=path, json={"to": "b.txt"})
    call("DELETE", f"{V1}/files/{{path}}", 204, params={"path": "b.txt"})

    install(live.app, AutomationSettings(webhook_allow_private=True))
    made = call("POST", f"{V1}/workflows/{{wf_id}}/schedules", 201, params=wf,
                json={"cron": "0 6 * * 1-5", "timezone": "Europe/Paris", "inputs": {}})  # fmt: skip
    sched = {"sid": made.json["id"]}
    call("GET", f"{V1}/workflows/{{wf_id}}/schedules", 200, params=wf)
    call("GET", f"{V1}/schedules", 200)
    call("GET", f"{V1}/schedules/{{sid}}", 200, params=sched)
    call("PATCH", f"{V1}/schedules/{{sid}}", 200, params=sched, json={"enabled": False})
    call("PATCH", f"{V1}/schedules/{{sid}}", 422, params=sched, json={"cron": "* * * * * *"})
    call("DELETE", f"{V1}/schedules/{{sid}}", 204, params=sched)
    hook = call("POST", f"{V1}/hooks", 201, json={"url": "http://127.0.0.1:9/h", "workflow_id": wf_id})  # fmt: skip
    call("GET", f"{V1}/hooks", 200)
    call("GET", f"{V1}/hooks/{{hook_id}}", 200, params={"hook_id": hook.json["id"]})
    call("DELETE", f"{V1}/hooks/{{hook_id}}", 204, params={"hook_id": hook.json["id"]})

    compat = {"wf_id": wf_id}
    spec = call("GET", f"{V1}/workflows/{{wf_id}}/spec", 200, params=wf).json
    assert spec["inputs"] == {} and spec["outputs"] == {"a": ["y"]}
    result = call("POST", "/dizest/api/run/{wf_id}", 200, params=compat, json={}).json
    assert result["status"] == "ready" and result["outputs"]["a"]["y"] == {"n": 1}
    streamed = call("POST", "/dizest/api/stream/{wf_id}", 200, params=compat, json={})
    assert b"event: workflow.status" in streamed.data

    trigger = call("POST", f"{V1}/workflows/{{wf_id}}/triggers", 201, params=wf, json={}).json
    tr = {"wf_id": wf_id, "trigger_id": trigger["id"]}
    call("GET", f"{V1}/workflows/{{wf_id}}/triggers", 200, params=wf)
    secret = call("POST", f"{V1}/workflows/{{wf_id}}/triggers/{{trigger_id}}/rotate", 200, params=tr).json["secret"]  # fmt: skip
    fired = call("POST", f"{V1}/triggers/{{secret}}", 201, params={"secret": secret}, json={})
    assert live.wait(fired.json["run_id"], admin)["status"] == "ready"
    call("DELETE", f"{V1}/workflows/{{wf_id}}/triggers/{{trigger_id}}", 204, params=tr)

    # errors: each the Error shape, under the status the document gives it
    call("GET", f"{V1}/runs/{{run_id}}", 404, params={"run_id": "nope"})
    call("POST", f"{V1}/workflows", 400, data="{", headers={"Content-Type": "application/json"})
    call("POST", f"{V1}/workflows", 422, json={"package": {"apps": {}, "flow": {"x": {}}}})
    call("GET", f"{V1}/auth/me", 401, headers={"Authorization": "Bearer nope"})
    call("GET", f"{V1}/users", 403, headers=live.user("carl"))
    call("GET", f"{V1}/workers", 403, headers=live.user("carl"))
    call("DELETE", f"{V1}/workflows/{{wf_id}}", 204, params=wf)
    assert len(call.seen) >= 40
    # and the check bites: an answer of one operation is not another's
    me = live.http.get(f"{V1}/auth/me", headers=admin)
    with pytest.raises(WRONG):
        call.schema[f"{V1}/tokens"]["GET"].validate_response(me)
