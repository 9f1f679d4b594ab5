"""What fuzzing a real `dizest serve` against its OpenAPI document found (schemathesis, then
probes of what it cannot generate): each case here on a real worker and real HTTP."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
from typing import Any

from tests.api.test_conformance import V1, Checked
from tests.api.test_runs import Live, create_workflow
from tests.api.test_runs import live as live  # the fixture
from tests.conftest import package

LONE = package(
    {
        "prints": {"code": "print('a\\ud800b')\nv = 1", "outputs": ["v"]},
        "raises": {"code": "raise ValueError('bad \\ud800')", "outputs": ["v"]},
    },
    {"p": {"app": "prints"}, "r": {"app": "raises"}},
)


def submit(live: Live, headers: dict[str, str], pkg: dict[str, Any]) -> dict[str, Any]:
    answer = live.call("POST", "/runs", headers, json={"package": pkg})
    assert answer.status_code == 201, answer.json
    return live.wait(answer.json["run_id"], headers)


def test_a_flow_printing_or_raising_a_lone_surrogate_ends_as_it_did(live: Live) -> None:
    """A lone surrogate in what a flow printed, then in its error's message, ended the worker's
    task (UnicodeEncodeError counting the log budget, then writing the reason to Redis): the flow
    was retried three times and reported "worker lost" instead of its own outcome."""
    alice = live.user("alice")
    report = submit(live, alice, LONE)
    printed, raised = report["flows"]["p"], report["flows"]["r"]
    assert printed["status"] == "ready" and printed["outputs"] == {"v": 1}, printed
    assert printed["log"] == ["a\ud800b"]
    assert raised["status"] == "error", raised
    assert raised["reason"] == "ValueError: bad \ufffd", raised
    assert "ValueError: bad \ud800" in raised["log"][-1]


def test_a_drive_file_named_json_is_bytes_not_a_listing(live: Live) -> None:
    """A drive file was served as the type its name gives: `x.json` (any bytes) answered
    application/json, which the document (and a client) reads as a folder's listing."""
    alice = live.user("alice")
    call = Checked(live, alice)
    path = {"path": "x.json"}
    call("PUT", f"{V1}/files/{{path}}", 201, params=path, data=b"not JSON at all")
    got = call("GET", f"{V1}/files/{{path}}", 200, params=path)
    assert got.mimetype == "application/octet-stream" and got.data == b"not JSON at all"
    assert "x.json" in got.headers["Content-Disposition"]
    call("GET", f"{V1}/files", 200)  # a listing is still application/json


def test_recursive_is_checked_for_a_file_as_for_a_folder(live: Live) -> None:
    """`recursive` (a boolean) was checked for a folder only: a file took any value (200)."""
    alice = live.user("alice")
    live.call("PUT", "/files/r/f.txt", alice, data=b"x")
    for path in ("r", "r/f.txt"):
        got = live.call("GET", f"/files/{path}?recursive=null", alice)
        assert got.status_code == 400 and got.json["error"]["code"] == "bad_request", got.data
    assert live.call("GET", "/files/r/f.txt?recursive=true", alice).data == b"x"


API = "def ping():\n    return {'pong': 1}\n\ndef text():\n    dizest.response.send('hi')\n"


def test_an_api_functions_json_answer_is_what_the_document_declares(live: Live) -> None:
    """The document gave `*/*` answers the schema of bytes (`string`, `format: binary`), which
    a checker applies to a JSON answer too: an `api` function's JSON failed the document."""
    alice = live.user("alice")
    pkg = package({"src": {"code": "v = 1", "outputs": ["v"]}}, {"a": {"app": "src"}})
    pkg["apps"]["src"]["api"] = API
    run = submit(live, alice, pkg)
    assert run["status"] == "ready", run
    call = Checked(live, alice)
    where = {"run_id": run["run_id"], "flow_id": "a"}
    template = f"{V1}/runs/{{run_id}}/flows/{{flow_id}}/api/{{name}}"
    assert call("POST", template, 200, params={**where, "name": "ping"}).json == {"pong": 1}
    assert call("POST", template, 200, params={**where, "name": "text"}).data == b"hi"


def test_query_bounds_and_path_ids_are_the_ones_the_document_gives(live: Live) -> None:
    """The document gave every query integer `minimum: 0` and no maximum, and path ids no form:
    `limit=0` or `version=0` (valid by the document) were 400, and the fuzzer spent its cases
    on ids that could only be 404."""
    alice = live.user("alice")
    doc = live.http.get(f"{V1}/openapi.json").json
    for path in ("/runs", "/workflows"):
        params = {p["name"]: p for p in doc["paths"][V1 + path]["get"]["parameters"]}
        for name in ("offset", "limit"):
            low, high = params[name]["schema"]["minimum"], params[name]["schema"]["maximum"]
            for value, status in ((low, 200), (high, 200), (low - 1, 400), (high + 1, 400)):
                got = live.call("GET", f"{path}?{name}={value}", alice)
                assert got.status_code == status, (path, name, value, got.json)
    wf_id = create_workflow(live, alice, package({"s": {"code": "v = 1"}}, {"a": {"app": "s"}}))
    one = doc["paths"][f"{V1}/workflows/{{wf_id}}"]["get"]["parameters"]
    form = next(p["schema"]["pattern"] for p in one if p["name"] == "wf_id")
    assert re.fullmatch(form, wf_id)
    low = next(p["schema"]["minimum"] for p in one if p["name"] == "version")
    assert live.call("GET", f"/workflows/{wf_id}?version={low}", alice).status_code == 200
    assert live.call("GET", f"/workflows/{wf_id}?version={low - 1}", alice).status_code == 400


def test_an_app_ui_refused_is_a_page_as_the_document_says(live: Live) -> None:
    """Every error of an app's UI route is a page for the run page's frame: the document gave
    its 401 (no or ended credentials) and a 403 (a token without the read scope) as JSON."""
    alice = live.user("alice")
    run = submit(live, alice, package({"s": {"code": "v = 1"}}, {"a": {"app": "s"}}))
    where = {"run_id": run["run_id"], "flow_id": "a"}
    frame = {"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "same-origin"}
    template = "/runs/{run_id}/flows/{flow_id}/ui"
    for headers, status in (({}, 401), (live.user("alice", scopes=("run",)), 403)):
        call = Checked(live, headers)
        refused = call("GET", template, status, params=where, headers=frame)
        declared = call.document["paths"][template]["get"]["responses"][str(status)]["content"]
        assert refused.mimetype == "text/html" and list(declared) == ["text/html"], declared


def handshake(base_url: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body) of a WebSocket handshake with exactly `headers`."""
    host, port = base_url.split("://", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close, Upgrade"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = http.client.HTTPResponse(conn)
        answer.begin()
        return answer.status, dict(answer.getheaders()), json.loads(answer.read())


def test_a_websocket_handshake_wsproto_refuses_is_a_4xx_with_json(live: Live) -> None:
    """A handshake without Sec-WebSocket-Key, or of another version than 13, raised out of
    flask-sock (wsproto's RemoteProtocolError): a 500."""
    alice = live.user("alice")
    run = submit(live, alice, package({"s": {"code": "v = 1"}}, {"a": {"app": "s"}}))
    path = f"{V1}/runs/{run['run_id']}/ws"
    sent = {**alice, "Upgrade": "websocket"}
    key = {"Sec-WebSocket-Key": base64.b64encode(b"k" * 16).decode()}
    status, _, body = handshake(live.base_url, path, {**sent, "Sec-WebSocket-Version": "13"})
    assert (status, body["error"]["code"]) == (400, "bad_handshake"), body
    status, headers, body = handshake(live.base_url, path, {**sent, **key, "Sec-WebSocket-Version": "8"})  # fmt: skip
    assert (status, body["error"]["code"]) == (426, "bad_handshake"), body
    assert headers["Sec-WebSocket-Version"] == "13"
