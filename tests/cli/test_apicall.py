"""`dizest api-call` and `Client.api_call` against a real `dizest serve` (embedded Redis, a
worker): the answer of an app's `api` function as JSON, text or bytes; an error of the function
is its traceback, exit 1; a body that is not JSON is a usage error, exit 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dizest_api.client import ApiError, Client
from tests.cli.helpers import dizest
from tests.conftest import package
from tests.serve_process import Served, serving

API = """
def add(a, b):
    return {"sum": a + b + v}

def hello(name="world"):
    dizest.response.send("hello " + name)

def raw():
    return bytes(range(4))

def boom():
    raise KeyError("nope")
"""


def secret(served: Served) -> str:
    return served.token["Authorization"].removeprefix("Bearer ")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("serve")) as found:
        yield found


@pytest.fixture(scope="module")
def run_id(served: Served) -> str:
    pkg = package({"a": {"code": "v = 100", "outputs": ["v"], "inputs": []}}, {"f": {"app": "a"}})
    pkg["apps"]["a"]["api"] = API.replace("+ v}", "+ dizest.output('v')}")
    client = Client(served.base, secret(served))
    run = client.submit(pkg)
    assert client.wait(run, timeout=60)["status"] == "ready"
    return run


def test_client_api_call_answers_json_text_and_bytes(served: Served, run_id: str) -> None:
    client = Client(served.base, secret(served))
    assert client.api_call(run_id, "f", "add", {"a": 1, "b": 2}) == {"sum": 103}
    assert client.api_call(run_id, "f", "hello", params={"name": "you"}) == "hello you"
    assert client.api_call(run_id, "f", "raw") == b"\x00\x01\x02\x03"
    with pytest.raises(ApiError) as info:
        client.api_call(run_id, "f", "boom")
    assert info.value.status == 422 and "KeyError: 'nope'" in info.value.message
    with pytest.raises(ApiError) as info:
        client.api_call(run_id, "f", "missing")
    assert info.value.status == 404


def test_cli_api_call(served: Served, run_id: str, tmp_path: Path) -> None:
    env = {"DIZEST_SERVER": served.base, "DIZEST_TOKEN": secret(served)}
    done = dizest(tmp_path, "api-call", run_id, "f", "add", "--json", '{"a": 5, "b": 6}', **env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"sum": 111}
    done = dizest(tmp_path, "api-call", run_id, "f", "hello", "-p", "name=cli", **env)
    assert (done.returncode, done.stdout) == (0, "hello cli\n")
    out = tmp_path / "raw.bin"
    done = dizest(tmp_path, "api-call", run_id, "f", "raw", "-o", str(out), **env)
    assert done.returncode == 0 and out.read_bytes() == b"\x00\x01\x02\x03"
    failed = dizest(tmp_path, "api-call", run_id, "f", "boom", **env)
    assert failed.returncode == 1 and "KeyError: 'nope'" in failed.stderr
    assert "Traceback" in failed.stderr
    bad = dizest(tmp_path, "api-call", run_id, "f", "add", "--json", "{nope", **env)
    assert bad.returncode == 2 and "not JSON" in bad.stderr
