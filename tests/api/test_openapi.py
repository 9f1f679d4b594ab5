"""The OpenAPI document lists exactly the routes the app has, validates, and says what each
operation answers (tests/api/test_fuzz.py checks real answers against it)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from openapi_spec_validator import validate

from tests.api.conftest import Api


def test_openapi_paths_equal_the_url_map(api: Api) -> None:
    answer = api.call("GET", "/openapi.json", api.user("alice"))
    assert answer.status_code == 200
    document = answer.json
    assert document["openapi"].startswith("3.")
    documented = {
        (path, method.upper()) for path, ops in document["paths"].items() for method in ops
    }
    routed = {
        (re.sub(r"<(?:[a-z_]+:)?(\w+)>", r"{\1}", rule.rule), method)
        for rule in api.app.url_map.iter_rules()
        if not rule.endpoint.startswith("console.")  # HTML pages, not the API
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert documented == routed
    login = document["paths"]["/api/v1/auth/login"]["post"]
    assert login["security"] == []
    assert login["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "password",
        "username",
    ]


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


def test_the_document_is_valid_openapi(api: Api) -> None:
    document = api.call("GET", "/openapi.json", api.user("alice")).json
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises, naming the first problem


def test_every_operation_declares_its_success_answer(api: Api) -> None:
    document = api.call("GET", "/openapi.json", api.user("alice")).json
    undeclared = set()
    for method, path, op in _operations(document):
        if op.get("x-dizest-undeclared"):
            undeclared.add((method, path))
            continue
        success = {s: r for s, r in op["responses"].items() if s[0] == "2" or s == "101"}
        assert success, (method, path)
        for status, answer in success.items():
            if status in ("204", "101"):
                assert "content" not in answer, (method, path)  # no body
                continue
            for media, content in answer["content"].items():
                assert "schema" in content, (method, path, media)
    assert not undeclared, f"declare responses= on their @endpoint: {sorted(undeclared)}"


PAGES = {"/runs/{run_id}/flows/{flow_id}/ui"}  # its errors are pages, for the run page's frame


def test_error_answers_share_the_error_table_shape(api: Api) -> None:
    document = api.call("GET", "/openapi.json", api.user("alice")).json
    error = {"$ref": "#/components/schemas/Error"}
    for method, path, op in _operations(document):
        answers = op["responses"]
        assert answers["default"]["content"]["application/json"]["schema"] == error
        if op.get("security") != []:  # needs a principal
            for status in ("401", "403"):
                if path in PAGES:
                    assert list(answers[status]["content"]) == ["text/html"], (path, status)
                    continue
                assert answers[status]["content"]["application/json"]["schema"] == error
        if "{" in path:
            assert "404" in answers, (method, path)
    shape = document["components"]["schemas"]["Error"]["properties"]["error"]
    assert shape["required"] == ["code", "message", "details"]


def test_event_streams_are_described(api: Api) -> None:
    document = api.call("GET", "/openapi.json", api.user("alice")).json
    sse = document["paths"]["/api/v1/runs/{run_id}/events"]["get"]["responses"]["200"]
    assert list(sse["content"]) == ["text/event-stream"]
    for field in ("id: ", "event: ", "data: ", "Last-Event-ID", "workflow.status"):
        assert field in sse["description"], field
    event = document["components"]["schemas"]["Event"]
    assert event["required"] == ["data", "flow_id", "id", "run_id", "ts", "type"]
    assert "log.append" in event["properties"]["type"]["enum"]
    ws = document["paths"]["/api/v1/runs/{run_id}/ws"]["get"]
    assert "101" in ws["responses"] and "Event" in ws["description"]


def test_headers_read_and_errors_answered_are_in_the_document(api: Api) -> None:
    """The document left out Idempotency-Key (POST /runs) and Last-Event-ID (the event
    streams), gave the compatibility stream only 200/401/403/404 and the trigger no 400/422,
    though each reads or answers them."""
    paths = api.call("GET", "/openapi.json", api.user("alice")).json["paths"]

    def header(path: str, method: str, name: str) -> dict[str, Any]:
        params = paths[path][method]["parameters"]
        found = [p for p in params if p["in"] == "header" and p["name"] == name]
        assert found, (path, method, params)
        return found[0]

    key = header("/api/v1/runs", "post", "Idempotency-Key")
    assert key["schema"] == {"type": "string", "minLength": 1, "maxLength": 200}
    for path in ("/api/v1/runs/{run_id}/events", "/api/v1/runs/{run_id}/ws"):
        resume = header(path, "get", "Last-Event-ID")
        assert re.fullmatch(resume["schema"]["pattern"].strip("^$"), "1700000000000-0"), path
    for method in ("get", "post"):
        stream = paths["/dizest/api/stream/{wf_id}"][method]["responses"]
        assert {"400", "413", "422", "429", "503"} <= set(stream), (method, sorted(stream))
        run = paths["/dizest/api/run/{wf_id}"][method]["responses"]
        assert {"400", "413", "422", "429", "503", "504"} <= set(run), (method, sorted(run))
    trigger = paths["/api/v1/triggers/{secret}"]["post"]["responses"]
    assert {"400", "413", "422", "429"} <= set(trigger), sorted(trigger)
