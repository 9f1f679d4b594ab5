"""The DIZEST-compatible routes: DIZEST's input mapping, outputs keyed by flow, real statuses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.test_runs import Live, create_workflow, serve_live
from tests.conftest import package

GREET = "greeting = 'hello ' + str(dizest.input('name', 'world'))"
TWO_GREETERS = package(
    {
        "greet": {"code": GREET, "inputs": ["name"], "outputs": ["greeting"]},
        "loud": {"code": "greeting = 'HI'", "outputs": ["greeting"]},
    },
    {"f1": {"app": "greet"}, "f2": {"app": "loud"}},
)


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with serve_live(redis_url, tmp_path_factory.mktemp("compat")) as found:
        yield found


def compat(live: Live, method: str, path: str, headers: dict[str, str], **kw: Any) -> Any:
    return live.http.open(f"/dizest/api/{path}", method=method, headers=headers, **kw)


def test_run_maps_inputs_and_keys_outputs_by_flow(live: Live) -> None:
    alice = live.user("alice")
    wf = create_workflow(live, alice, TWO_GREETERS)
    posted = compat(live, "POST", f"run/{wf}", alice, json={"name": "ada"})
    assert posted.status_code == 200, posted.json
    assert posted.json["outputs"] == {"f1": {"greeting": "hello ada"}, "f2": {"greeting": "HI"}}
    got = compat(live, "GET", f"run/{wf}?name=bob", alice)
    assert got.json["outputs"]["f1"] == {"greeting": "hello bob"}
    default = compat(live, "POST", f"run/{wf}", alice, json={})  # left out: its default, not None
    assert default.json["outputs"]["f1"] == {"greeting": "hello world"}
    unknown = compat(live, "POST", f"run/{wf}", alice, json={"nmae": "x"})
    assert unknown.status_code == 400 and unknown.json["error"]["details"]["unknown"] == ["nmae"]
    # a value nested deeper than JSON's parser goes is text, as any value that is not JSON (a
    # query string or form of 2,000 '[' was a 500: its RecursionError escaped)
    deep = "[" * 2000
    for method, sent in (("GET", {"query_string": {"name": deep}}), ("POST", {"data": {"name": deep}})):  # fmt: skip
        kept = compat(live, method, f"run/{wf}", alice, **sent)
        assert kept.status_code == 200, kept.json
        assert kept.json["outputs"]["f1"] == {"greeting": f"hello {deep}"}


def test_spec_names_what_the_routes_take_and_give(live: Live) -> None:
    """Each input name with every flow input its value fills (here two flows' `name`, not the
    connected one), and each flow's final outputs: the console's API panel shows them."""
    alice, mallory = live.user("alice"), live.user("mallory")
    pkg = package(
        {
            "greet": {"code": GREET, "inputs": ["name"], "outputs": ["greeting"]},
            "loud": {"code": "greeting = 'HI'", "outputs": ["greeting"]},
        },
        {
            "f1": {"app": "greet"},
            "f2": {"app": "loud"},
            "f3": {"app": "greet"},
            "f4": {"app": "greet", "in": {"name": [("f2", "greeting")]}},
        },
    )
    wf = create_workflow(live, alice, pkg)
    spec = live.call("GET", f"/workflows/{wf}/spec", alice)
    assert spec.status_code == 200, spec.json
    assert spec.json == {
        "workflow_id": wf,
        "version": 1,
        "inputs": {"name": ["f1.name", "f3.name"]},
        "outputs": {"f1": ["greeting"], "f3": ["greeting"], "f4": ["greeting"]},
    }
    ran = compat(live, "POST", f"run/{wf}", alice, json={"name": "ada"})
    assert set(ran.json["outputs"]) == set(spec.json["outputs"])
    assert ran.json["outputs"]["f4"] == {"greeting": "hello HI"}  # a connected input: not filled
    assert live.call("GET", f"/workflows/{wf}/spec", mallory).status_code == 404


def test_a_run_s_end_still_expires_after_the_route_waited_for_it(live: Live) -> None:
    """The route waits for the run's end: its `done` key keeps the run's TTL (it had none)."""
    alice = live.user("alice")
    wf = create_workflow(live, alice, TWO_GREETERS)
    posted = compat(live, "POST", f"run/{wf}", alice, json={"name": "ada"})
    assert posted.status_code == 200, posted.json
    client = live.services.client
    assert client is not None
    keys, run_id = client.runs.keys, posted.json["run_id"]
    run_ttl, done_ttl = client.redis.pttl(keys.run(run_id)), client.redis.pttl(keys.done(run_id))
    assert 0 < done_ttl <= run_ttl, (done_ttl, run_ttl)


def test_real_status_codes(live: Live) -> None:
    alice, mallory = live.user("alice"), live.user("mallory")
    broken = package(
        {"bad": {"code": "raise ValueError('nope')", "outputs": ["v"]}}, {"b": {"app": "bad"}}
    )
    wf = create_workflow(live, alice, broken)
    failed = compat(live, "POST", f"run/{wf}", alice, json={})
    assert failed.status_code == 422 and failed.json["error"]["code"] == "run_failed"
    assert failed.json["error"]["details"]["flows"] == {"b": "ValueError: nope"}
    assert compat(live, "POST", f"run/{wf}", mallory, json={}).status_code == 404
    assert compat(live, "POST", "run/nope", alice, json={}).status_code == 404
    assert compat(live, "POST", f"run/{wf}", {}, json={}).status_code == 401


def test_a_cookie_session_cannot_start_runs_by_get(live: Live) -> None:
    live.user("carol")
    wf = create_workflow(live, live.user("carol"), TWO_GREETERS)
    live.login("carol")
    refused = compat(live, "GET", f"run/{wf}", {})
    assert refused.status_code == 403 and refused.json["error"]["details"]["reason"] == "csrf"
    before = len(live.call("GET", "/runs", live.user("carol")).json["items"])
    for path in (f"run/{wf}", f"stream/{wf}"):  # a probe started runs by HEAD, CSRF unchecked
        head = compat(live, "HEAD", path, {})
        assert head.status_code == 405 and head.headers["Allow"] == "GET, POST", path
    assert compat(live, "HEAD", f"run/{wf}", live.user("carol")).status_code == 405  # bearer too
    assert len(live.call("GET", "/runs", live.user("carol")).json["items"]) == before


def test_stream_is_real_server_sent_events(live: Live) -> None:
    alice = live.user("alice")
    wf = create_workflow(live, alice, TWO_GREETERS)
    answer = compat(live, "POST", f"stream/{wf}", alice, json={"name": "ada"})
    assert answer.status_code == 200 and answer.mimetype == "text/event-stream"
    text = answer.get_data(as_text=True)
    assert answer.headers["X-Dizest-Run-Id"] in text
    assert text.count("event: workflow.status") == 2  # running, then ready: the last event
    assert (
        text.rstrip().splitlines()[-1].startswith("data: ") and '"ready"' in text.splitlines()[-2]
    )


def test_a_reconnecting_stream_resumes_its_run_and_starts_no_other(live: Live) -> None:
    alice, bob = live.user("alice"), live.user("bob")
    wf = create_workflow(live, alice, TWO_GREETERS)
    first = compat(live, "POST", f"stream/{wf}", alice, json={"name": "ada"})
    run_id, text = first.headers["X-Dizest-Run-Id"], first.get_data(as_text=True)
    ids = [line[4:] for line in text.splitlines() if line.startswith("id: ")]
    assert len(ids) > 3

    def runs() -> int:
        return int(live.http.get("/api/v1/runs", headers=alice).json["total"])

    before = runs()
    listed = live.http.get("/api/v1/runs", headers=alice).json["items"]
    assert [r["version"] for r in listed if r["run_id"] == run_id] == [
        1
    ]  # (what the editor follows)
    # what an EventSource sends when the connection dropped after the second event
    again = compat(live, "POST", f"stream/{wf}", {**alice, "Last-Event-ID": ids[1]}, json={})
    assert again.status_code == 200 and again.headers["X-Dizest-Run-Id"] == run_id
    resumed = [line[4:] for line in again.get_data(as_text=True).splitlines() if line.startswith("id: ")]  # fmt: skip
    assert resumed == ids[2:] and runs() == before  # the rest of that run, and no new run
    for who, last, status, method in (
        (alice, "1-0", 404, "GET"), (bob, ids[1], 404, "GET"), (alice, "x", 400, "GET"),
        (alice, ids[1], 405, "HEAD"),
    ):  # fmt: skip
        refused = compat(live, method, f"stream/{wf}", {**who, "Last-Event-ID": last})
        assert (refused.status_code, refused.is_json) == (status, True), refused.get_data()
    assert runs() == before
