"""Poison input at the HTTP doors (issue 7, item 5): too deep, too large or unparsable bodies are
a 4xx with a JSON body naming the limit, store nothing, and the service keeps running runs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dizest_api.app import create_app
from dizest_api.settings import ApiSettings
from dizest_worker.memory_client import MemoryClient
from tests.api.test_runs import Live, create_workflow
from tests.conftest import package
from tests.worker.conftest import cleanup, make_settings

ECHO = package(
    {"echo": {"code": "y = dizest.input('x', 0)", "inputs": [("x", "variable", None)],
              "outputs": ["y"]}},
    {"e": {"app": "echo"}},
)  # fmt: skip
# DIZEST's mapping fills unconnected inputs of the output type
COMPAT = package(
    {"echo": {"code": "y = dizest.input('x', 0)", "inputs": ["x"], "outputs": ["y"]}},
    {"e": {"app": "echo"}},
)


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The app on an in-memory client: these limits are the service's, a worker adds nothing."""
    root = tmp_path_factory.mktemp("poison")
    worker = make_settings(redis_url, root, prefix=f"dzp{uuid.uuid4().hex[:10]}")
    client = MemoryClient(worker)
    settings = ApiSettings(
        secret_key="k" * 32, data_dir=str(root / "data"), bcrypt_rounds=4, worker=worker
    )
    app = create_app(settings, client=client)
    app.config["TESTING"] = True
    yield Live(app, app.test_client(), worker_settings=worker)
    client.close()
    cleanup(worker)


def nested_json(depth: int) -> str:
    return '{"k": ' * depth + "0" + "}" * depth


def with_x(x_json: str) -> str:
    return '{"x": ' + x_json + "}"


def post_raw(live: Live, path: str, headers: dict[str, str], body: str) -> Any:
    return live.http.post(path, headers=headers, data=body, content_type="application/json")


def run_count(live: Live, headers: dict[str, str]) -> int:
    return int(live.call("GET", "/runs", headers).json["total"])


def test_inputs_nested_500_deep_are_a_422_naming_the_limit(live: Live) -> None:
    alice = live.user("alice")
    before = run_count(live, alice)
    body = '{"package": ' + json.dumps(ECHO) + ', "inputs": ' + with_x(nested_json(500)) + "}"
    answer = post_raw(live, "/api/v1/runs", alice, body)
    assert answer.status_code == 422, answer.json
    error = answer.json["error"]
    assert error["code"] == "input_too_deep"
    assert error["message"] == "input 'x' is nested deeper than 32 levels (or contains itself)"
    assert error["details"] == {"name": "input 'x'", "limit": "max_input_depth", "max": 32}
    assert run_count(live, alice) == before  # nothing stored
    fine = live.call("POST", "/runs", alice, json={"package": ECHO, "inputs": {"x": 7}})
    assert fine.status_code == 201
    report = live.wait(fine.json["run_id"], alice)
    assert report["status"] == "ready" and report["flows"]["e"]["outputs"] == {"y": 7}


def test_a_body_too_deep_for_the_json_parser_is_a_400_not_a_500(live: Live) -> None:
    alice = live.user("alice")
    body = '{"inputs": ' + with_x(nested_json(50_000)) + "}"
    answer = post_raw(live, "/api/v1/runs", alice, body)
    assert answer.status_code == 400 and answer.json["error"]["code"] == "bad_request"


def test_deep_package_and_options_are_refused_too(live: Live) -> None:
    alice = live.user("alice")
    deep = json.loads(json.dumps(ECHO))
    deep["flow"]["e"]["data"] = json.loads(nested_json(200))
    answer = live.call("POST", "/runs", alice, json={"package": deep})
    assert answer.status_code == 422 and answer.json["error"]["code"] == "package_too_deep"


def test_compat_route_with_deeply_nested_json_is_a_4xx_json(live: Live) -> None:
    alice = live.user("alice")
    wf = create_workflow(live, alice, COMPAT)
    before = run_count(live, alice)
    unparsable = post_raw(live, f"/dizest/api/run/{wf}", alice, with_x(nested_json(50_000)))
    assert unparsable.status_code == 400, unparsable.data[:200]
    assert unparsable.json["error"]["code"] == "bad_request"
    parsable = post_raw(live, f"/dizest/api/run/{wf}", alice, with_x(nested_json(500)))
    assert parsable.status_code == 422, parsable.data[:200]
    assert parsable.json["error"]["code"] == "input_too_deep"
    assert parsable.json["error"]["details"]["limit"] == "max_input_depth"
    stream = post_raw(live, f"/dizest/api/stream/{wf}", alice, with_x(nested_json(500)))
    assert stream.status_code == 422 and stream.json["error"]["code"] == "input_too_deep"
    assert run_count(live, alice) == before
    fine = live.http.post(f"/dizest/api/run/{wf}", headers=alice, json={"x": [1, [2]]})
    assert fine.status_code == 200 and fine.json["outputs"] == {"e": {"y": [1, [2]]}}


def test_oversized_inputs_are_a_413_or_a_422_naming_the_limit(live: Live) -> None:
    alice = live.user("alice")
    before = run_count(live, alice)
    limit = live.services.settings.max_request_bytes
    huge = {"package": ECHO, "inputs": {"x": "a" * (limit + 1)}}
    over_body = live.call("POST", "/runs", alice, json=huge)
    assert over_body.status_code == 413 and over_body.json["error"]["code"]
    long = {"package": ECHO, "inputs": {"x": "a" * ((4 << 20) + 1)}}
    over_string = live.call("POST", "/runs", alice, json=long)
    assert over_string.status_code == 422
    assert over_string.json["error"]["code"] == "input_string_too_long"
    assert over_string.json["error"]["details"]["limit"] == "max_input_string"
    assert run_count(live, alice) == before


def test_an_operator_limit_on_input_size_is_a_422_naming_it(live: Live) -> None:
    """DIZEST_MAX_INPUT_BYTES below the request limit: all inputs of a run count together."""
    alice = live.user("alice")
    assert live.worker_settings is not None
    worker = live.worker_settings
    worker = replace(worker, engine=replace(worker.engine, max_input_bytes=1 << 20))
    app = create_app(
        ApiSettings(secret_key="k" * 32, data_dir=str(Path(worker.workdir_root).parent / "data"),
                    bcrypt_rounds=4, worker=worker),
        client=(memory := MemoryClient(worker)),
    )  # fmt: skip
    app.config["TESTING"] = True
    many = {"package": ECHO, "inputs": {f"x{n}": "b" * 300_000 for n in range(4)}}
    answer = app.test_client().post("/api/v1/runs", headers=alice, json=many)
    assert answer.status_code == 422 and answer.json["error"]["code"] == "input_too_large"
    assert answer.json["error"]["message"] == "input 'x3' takes the run over 1048576 bytes of JSON"
    assert answer.json["error"]["details"]["limit"] == "max_input_bytes"
    hub = app.extensions.get("dizest.events")
    if hub is not None:
        hub.close()
    memory.close()
