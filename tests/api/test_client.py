"""`dizest_api.client` and `dizest submit` against a real `dizest serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dizest_api.client import (
    BadRequest,
    Client,
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidOptions,
    InvalidPackageOptions,
    InvalidRequest,
    InvalidSchedule,
    InvalidUrl,
    InvalidWorkflow,
    RateLimited,
    Throttled,
    TooManyRuns,
    Unauthorized,
)
from tests.conftest import package
from tests.serve_process import DATA, serving

FANOUT = json.loads((DATA / "c03_fanout.dwp").read_text())
EXPECTED = json.loads((DATA / "c03_fanout.expected.json").read_text())["expect"]["flows"]
CYCLE = package(
    {"inc": {"code": "", "inputs": ["x"], "outputs": ["y"]}},
    {
        "a": {"app": "inc", "in": {"x": [("b", "y")]}},
        "b": {"app": "inc", "in": {"x": [("a", "y")]}},
    },
)


def _id(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, bearer token) of a `dizest serve`; stopped (and checked) afterwards."""
    with serving(tmp_path_factory.mktemp("client")) as served:
        yield served.base, served.token["Authorization"].removeprefix("Bearer ")


def test_submit_wait_events_and_outputs(server: tuple[str, str]) -> None:
    base, token = server
    client = Client(base, token)
    run_id = client.submit(FANOUT)
    report = client.wait(run_id, timeout=60)
    assert report["status"] == "ready", report
    for flow_id, want in EXPECTED.items():
        assert report["flows"][flow_id]["outputs"] == want["outputs"], flow_id
        assert client.outputs(run_id, flow_id) == want["outputs"], flow_id

    events = list(client.events(run_id))
    assert events[-1]["type"] == "workflow.status"
    assert events[-1]["data"]["status"] == "ready"
    ids = [_id(e["id"]) for e in events]
    assert ids == sorted(set(ids)), "event ids must strictly increase"
    resumed = list(client.events(run_id, after=events[2]["id"]))
    assert [e["id"] for e in resumed] == [e["id"] for e in events[3:]]


def test_submit_from_a_path_and_cancel(server: tuple[str, str], tmp_path: Path) -> None:
    base, token = server
    client = Client(base, token)
    path = tmp_path / "fanout.dwp"
    path.write_text(json.dumps(FANOUT))
    run_id = client.submit(path, idempotency_key="same")
    assert client.submit(path, idempotency_key="same") == run_id
    client.cancel(run_id)
    assert client.wait(run_id, timeout=60)["status"] in {"ready", "cancelled"}


def test_typed_errors(server: tuple[str, str]) -> None:
    base, token = server
    with pytest.raises(InvalidWorkflow) as invalid:
        Client(base, token).submit(CYCLE)
    assert invalid.value.status == 422 and invalid.value.code == "invalid_workflow"
    cycles = [p for p in invalid.value.problems if p.get("code") == "cycle"]
    assert cycles, invalid.value.problems
    assert any(path in cycles[0]["message"] for path in ("a -> b -> a", "b -> a -> b")), cycles
    with pytest.raises(Unauthorized) as unauthorized:
        Client(base, "not-a-token").get("nope")
    assert unauthorized.value.status == 401


def test_errors_are_typed_by_their_code(server: tuple[str, str]) -> None:
    """Every 422 raised InvalidWorkflow (a bad webhook URL, cron or input too) and every 429
    TooManyRuns (a throttled trigger too): the class follows the answer's code."""
    client = Client(*server)

    def refused(call: Any, kind: type[Exception]) -> Any:
        with pytest.raises(kind) as caught:
            call()
        return caught.value

    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    too_deep = refused(lambda: client.submit(FANOUT, inputs={"x": deep}), InvalidInput)
    assert too_deep.code == "input_too_deep" and not isinstance(too_deep, InvalidWorkflow)
    assert isinstance(too_deep, InvalidRequest) and too_deep.problems
    retries = refused(lambda: client.submit(FANOUT, options={"retries": 99}), InvalidOptions)
    assert retries.code == "invalid_options" and not isinstance(retries, InvalidWorkflow)
    bad_flow = json.loads(json.dumps(FANOUT))
    next(iter(bad_flow["flow"].values()))["dizest"] = {"retries": 99}
    of_package = refused(lambda: client.submit(bad_flow), InvalidPackageOptions)
    assert isinstance(of_package, InvalidWorkflow)  # the package is what is wrong
    wf_id = client.push_workflow(FANOUT, "typed errors")["id"]
    url = refused(lambda: client.add_hook("ftp://example.com/hook"), InvalidUrl)
    assert url.code == "invalid_url" and not isinstance(url, InvalidWorkflow)
    cron = refused(lambda: client.add_schedule(wf_id, "not a cron"), InvalidSchedule)
    assert cron.code == "invalid_schedule" and not isinstance(cron, InvalidWorkflow)
    trigger = client.add_trigger(wf_id, rate_per_min=1)
    client.fire_trigger(trigger["url"])
    throttled = refused(lambda: client.fire_trigger(trigger["url"]), RateLimited)
    assert throttled.code == "rate_limited" and not isinstance(throttled, TooManyRuns)
    assert isinstance(throttled, Throttled) and (throttled.retry_after or 0) > 0


def test_a_bad_request_a_refusal_and_a_conflict_each_have_a_class(server: tuple[str, str]) -> None:
    """400, 403 and 409 were a bare ApiError: a program could not tell a typo from a token
    without the right scope, nor a stale version from either."""
    client = Client(*server)
    with pytest.raises(BadRequest) as typo:
        client.runs(status="failed")
    assert typo.value.code == "bad_request"
    made = client.request("POST", "/tokens", {"name": "read only", "scopes": ["read"]})
    reader = Client(server[0], made["token"])
    with pytest.raises(Forbidden):
        reader.submit(FANOUT)
    wf_id = client.push_workflow(FANOUT, "versions")["id"]
    # version 2 (the same package again would store none)
    client.push_workflow({**FANOUT, "description": "v2"}, workflow_id=wf_id)
    stale = {"package": FANOUT, "base_version": 1}
    with pytest.raises(Conflict):
        client.request("PUT", f"/workflows/{wf_id}", stale)


def test_dizest_submit_wait_json(server: tuple[str, str], tmp_path: Path) -> None:
    base, token = server
    path = tmp_path / "fanout.dwp"
    path.write_text(json.dumps(FANOUT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZEST_")}
    command = [sys.executable, "-m", "dizest_cli", "submit", str(path), "--server", base]
    missing = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "DIZEST_TOKEN" in missing.stderr
    env["DIZEST_TOKEN"] = token
    done = subprocess.run(
        [*command, "--wait", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "ready"
    assert report["flows"]["k1"]["outputs"] == EXPECTED["k1"]["outputs"]
    cyclic = tmp_path / "cycle.dwp"
    cyclic.write_text(json.dumps(CYCLE))
    bad = subprocess.run(
        [sys.executable, "-m", "dizest_cli", "submit", str(cyclic), "--server", base],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "cycle" in bad.stderr, bad.stderr


def test_idempotency_key_for_files_and_the_cli(server: tuple[str, str], tmp_path: Path) -> None:
    """submit_files took no key and `dizest submit`/`workflows run` had no --idempotency-key,
    though POST /runs takes one: a retried submit started a second run."""
    base, token = server
    client = Client(base, token)
    attached = tmp_path / "data.txt"
    attached.write_text("hello")
    body = {"package": FANOUT}
    first = client.submit_files(body, {"data.txt": attached}, idempotency_key="files-once")
    again = client.submit_files(body, {"data.txt": attached}, idempotency_key="files-once")
    assert again["run_id"] == first["run_id"]
    assert client.submit_files(body, {"data.txt": attached})["run_id"] != first["run_id"]

    path = tmp_path / "fanout.dwp"
    path.write_text(json.dumps(FANOUT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZEST_")}
    env["DIZEST_TOKEN"] = token
    wf_id = client.push_workflow(FANOUT, "keyed")["id"]

    def run_id(*args: str) -> str:
        command = [sys.executable, "-m", "dizest_cli", *args, "--server", base, "--json"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return str(json.loads(done.stdout)["run_id"])

    for args in (
        ("submit", str(path), "--idempotency-key", "cli-once"),
        ("submit", str(path), "--file", f"data.txt={attached}", "--idempotency-key", "cli-file"),
        ("workflows", "run", wf_id, "--idempotency-key", "cli-stored"),
    ):
        assert run_id(*args) == run_id(*args), args


def test_a_bad_run_option_is_said_to_be_one(server: tuple[str, str], tmp_path: Path) -> None:
    """Run options alone wrong answered "invalid workflow: 1 problem(s)", and the CLI printed
    "invalid: invalid workflow": neither said what was wrong."""
    base, token = server
    with pytest.raises(InvalidOptions) as caught:
        Client(base, token).submit(FANOUT, options={"retries": 99})
    message = caught.value.message
    assert message.startswith("invalid run options: retries: "), message
    assert "99" in message and "workflow" not in message
    path = tmp_path / "fanout.dwp"
    path.write_text(json.dumps(FANOUT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZEST_")}
    env["DIZEST_TOKEN"] = token
    command = [sys.executable, "-m", "dizest_cli", "submit", str(path), "--server", base]
    done = subprocess.run(
        [*command, "--flow-timeout", "99999999"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"{path}: invalid run options: flow_timeout: "), done.stderr
    assert "workflow" not in done.stderr
