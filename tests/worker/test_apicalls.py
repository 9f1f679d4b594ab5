"""An app's `api` functions called through real `dizest worker` processes: queued through Celery
like flows, run in a sandboxed child with the flow's inputs and outputs, answered through Redis."""

from __future__ import annotations

import json

from dizest_worker import apicalls
from tests.conftest import package

API = """
import os

def add(a, b):
    return {"sum": a + b, "x": x, "v": dizest.output("v"), "k": k}

def legacy():
    dizest.response.json({"got": dizest.request.query("q", 0), "uri": dizest.request.uri()})

def required():
    dizest.request.query("must", True)

def whoami():
    return {"uid": os.getuid(), "pid": os.getpid()}

def boom():
    raise ValueError("bad value " + str(dizest.request.query("n")))

def blob():
    return b"\\x00\\x01binary"

def page():
    with open("page.html", "w") as fh:
        fh.write("<b>x</b>")
    dizest.response.download("page.html")

def slow():
    import time
    time.sleep(30)

def _private():
    return 1
"""


def api_package() -> dict:
    pkg = package(
        {
            "src": {"code": "v = 20", "outputs": ["v"]},
            "ui": {
                "code": "v = dizest.input('x') + 1",
                "inputs": ["x", ("k", "variable", "number")],
                "outputs": ["v"],
            },
        },
        {"s": {"app": "src"}, "u": {"app": "ui", "in": {"x": [("s", "v")]}, "data": {"k": "3"}}},
    )
    pkg["apps"]["ui"]["api"] = API
    return pkg


def call_task(run_id: str, name: str, timeout: float = 20.0, params=None) -> apicalls.CallTask:
    return apicalls.CallTask(apicalls.new_call_id(), run_id, "u", name, timeout, "POST", params or {}, None)  # fmt: skip


def call(cluster, run_id: str, name: str, params=None, body=None, timeout=20.0, flow="u"):
    task = apicalls.CallTask(
        apicalls.new_call_id(), run_id, flow, name, timeout, "POST", params or {}, body
    )
    return apicalls.call(cluster.client, task)


def test_api_function_gets_inputs_outputs_and_request_values(cluster):
    cluster("w1", concurrency=1)
    run_id = cluster.client.submit(api_package())
    assert cluster.client.wait(run_id, timeout=60)["status"] == "ready"
    answer = call(cluster, run_id, "add", {"a": 2, "b": 5})
    assert (answer.status, answer.media_type) == (200, "application/json")
    assert json.loads(answer.body) == {"sum": 7, "x": 20, "v": 21, "k": 3.0}
    legacy = call(cluster, run_id, "legacy", {"q": "hi"})
    assert json.loads(legacy.body) == {"got": "hi", "uri": ""}
    data = call(cluster, run_id, "blob")
    assert (data.media_type, data.body) == ("application/octet-stream", b"\x00\x01binary")
    page = call(cluster, run_id, "page")  # its media type guessed in the sandboxed child
    assert (page.status, page.media_type, page.body) == (200, "text/html", b"<b>x</b>")


def test_api_errors_are_4xx_with_the_traceback_as_text(cluster):
    cluster("w1", concurrency=1)
    run_id = cluster.client.submit(api_package())
    cluster.client.wait(run_id, timeout=60)
    boom = call(cluster, run_id, "boom", {"n": 7})
    assert boom.status == 422 and boom.media_type.startswith("text/plain")
    text = boom.body.decode()
    assert "ValueError: bad value 7" in text and "<api ui>" in text and "line 17, in boom" in text
    missing = call(cluster, run_id, "add", {"a": 1})
    assert missing.status == 400 and "'b'" in json.loads(missing.body)["error"]["message"]
    assert call(cluster, run_id, "required").status == 400
    for name in ("nope", "_private", "os"):
        assert call(cluster, run_id, name).status == 404, name
    assert call(cluster, run_id, "add", flow="s").status == 404  # app src has no api


def test_api_call_runs_sandboxed_and_is_killed_at_its_timeout(cluster):
    worker = cluster("w1", concurrency=1)
    run_id = cluster.client.submit(api_package())
    cluster.client.wait(run_id, timeout=60)
    who = json.loads(call(cluster, run_id, "whoami").body)
    assert who["uid"] != 0 and who["pid"] < 100  # its own uid, inside the zygote's PID namespace
    slow = call(cluster, run_id, "slow", timeout=1.0)
    assert slow.status == 504 and "timeout" in json.loads(slow.body)["error"]["message"]
    # the worker goes on answering
    assert call(cluster, run_id, "add", {"a": 1, "b": 1}).status == 200, worker.log


def test_a_user_runs_at_most_their_share_of_api_calls_at_once(cluster):
    """Each call holds a worker slot while it runs: a probe's two 40 s calls held another
    user's run back 38 s. Past DIZEST_USER_API_CALLS running (1 here) a caller's call is
    refused at once; another user's call still runs, and the slot is theirs again after."""
    import threading
    from dataclasses import replace

    import pytest

    from dizest_worker.client import Client
    from tests.conftest import wait_for

    cluster("w1", concurrency=3)  # calls may hold two slots of three
    client = Client(replace(cluster.settings, user_api_calls=1))
    run_id = client.submit(api_package())
    client.wait(run_id, timeout=60)

    answers = {}
    first = threading.Thread(target=lambda: answers.setdefault("slow", apicalls.call(client, call_task(run_id, "slow", 3.0), "alice")))  # fmt: skip
    first.start()
    calls = client.runs.keys.user_calls("alice")
    wait_for(lambda: client.redis.zcard(calls) == 1, timeout=10)
    with pytest.raises(apicalls.TooManyCalls, match="already have 1 api call"):
        apicalls.call(client, call_task(run_id, "add", params={"a": 1, "b": 2}), "alice")
    bobs = apicalls.call(client, call_task(run_id, "add", params={"a": 1, "b": 2}), "bob")
    assert bobs.status == 200 and json.loads(bobs.body)["sum"] == 3
    first.join(30)
    assert answers["slow"].status == 504 and client.redis.zcard(calls) == 0
    again = apicalls.call(client, call_task(run_id, "add", params={"a": 2, "b": 2}), "alice")
    assert again.status == 200 and json.loads(again.body)["sum"] == 4


def test_calls_leave_half_the_slots_to_flows(cluster):
    """A probe's four 120 s calls on a worker of two slots held another user's run back two
    minutes (each under the per-user cap): all users' calls together now hold half the live
    slots at most, so a run still starts while they last."""
    import threading

    import pytest

    from dizest_worker import liveness
    from tests.conftest import wait_for

    cluster("w1", concurrency=2)
    client = cluster.client
    wait_for(lambda: liveness.live_slots(client.redis, client.settings) == 2, timeout=20)
    run_id = client.submit(api_package())
    client.wait(run_id, timeout=60)

    answers = {}
    held = threading.Thread(target=lambda: answers.setdefault("slow", apicalls.call(client, call_task(run_id, "slow", 8.0), "mallory")))  # fmt: skip
    held.start()
    wait_for(lambda: client.redis.zcard(client.runs.keys.calls) == 1, timeout=10)
    with pytest.raises(apicalls.TooManyCalls, match="half its 2 worker slot"):
        apicalls.call(client, call_task(run_id, "add", params={"a": 1, "b": 2}), "mallory2")
    other = client.submit(package({"a": {"code": "v = 1", "outputs": ["v"]}}, {"f": {"app": "a"}}))  # fmt: skip
    report = client.wait(other, timeout=30)
    assert report["status"] == "ready" and "slow" not in answers  # while the call still runs
    held.join(30)
    assert client.redis.zcard(client.runs.keys.calls) == 0


def test_a_short_call_after_a_long_one_keeps_the_long_one_counted(cluster):
    """The set of a caller's running calls lives until its latest deadline: one that took its
    expiry from the newest call's deadline dropped a longer call still running."""
    import time

    client = cluster.client
    now = int(time.time() * 1000)
    assert apicalls.take_call(client, "carol", "long", now + 300_000)
    assert apicalls.take_call(client, "carol", "short", now + 2_000)
    key = client.runs.keys.user_calls("carol")
    assert client.redis.pttl(key) > 200_000
    assert client.redis.zrange(key, 0, -1) == [b"short", b"long"]
