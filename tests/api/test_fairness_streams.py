"""One user's share of live streams: past it their next stream (SSE or WebSocket) is refused
with 429, other users still get theirs, and a stream that ends gives its place back. Against
the app served over real HTTP (streams keeping a thread) and a real `dizest serve` (SSE streams
handed to the event hub)."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from dizest_api.event_hub import hub_for
from tests.api.conftest import Api
from tests.api.test_runs import Live, serve_live, slow
from tests.conftest import wait_for
from tests.serve_process import PASSWORD, call, password_session, serving
from tests.ws_client import WsClient

UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with serve_live(redis_url, tmp_path_factory.mktemp("fair")) as found:
        yield found


@contextlib.contextmanager
def over_http(api: Api) -> Iterator[str]:
    """`api`'s app on 127.0.0.1 (the threaded dev server: every stream keeps its thread)."""
    server = make_server("127.0.0.1", 0, api.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        hub = api.app.extensions.get("dizest.events")
        if hub is not None:
            hub.close()


class Stream:
    """One SSE request over its own connection: its status and, if refused, its body."""

    def __init__(self, base: str, path: str, headers: dict[str, str]) -> None:
        url = urlsplit(base)
        self.conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=15)
        self.conn.request("GET", f"/api/v1{path}", headers=headers)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        if self.status == 200:
            assert self.resp.readline() == b": stream\n"  # the response has started
        else:
            self.body = json.loads(self.resp.read())
            self.close()

    def close(self) -> None:
        self.resp.close()
        self.conn.close()


@contextlib.contextmanager
def streaming(api: Api, *users: dict[str, str]) -> Iterator[tuple[list[str], list[Stream]]]:
    """A slow run of each of `users`, and a list for the streams the test holds: those are
    closed and the runs cancelled afterwards."""
    runs = [api.call("POST", "/runs", u, json={"package": slow(60)}).json["run_id"] for u in users]
    held: list[Stream] = []
    try:
        yield runs, held
    finally:
        for stream in held:
            stream.close()
        for run_id, user in zip(runs, users, strict=True):
            api.call("POST", f"/runs/{run_id}/cancel", user)


def refused_as_too_many(stream: Stream, limit: int) -> None:
    assert stream.status == 429, stream.status
    assert stream.resp.getheader("Content-Type") == "application/json"
    assert int(stream.resp.getheader("Retry-After") or 0) > 0
    error = stream.body["error"]
    assert error["code"] == "too_many_streams", error
    assert error["details"]["max_streams_per_user"] == limit


def opens_again(base: str, path: str, headers: dict[str, str], held: list[Stream]) -> bool:
    stream = Stream(base, path, headers)
    if stream.status == 200:
        held.append(stream)
    return stream.status == 200


def test_one_user_at_the_cap_is_refused_and_others_still_stream(live: Live) -> None:
    """SSE and WebSocket streams count together, per user; a stream that ends (the client
    left) gives its place back."""
    limited = live.app_with(max_streams=20, heartbeat_s=0.3)
    cap = 8  # max(8, max_streams // 10)
    alice, bob = limited.user("alice"), limited.user("bob")
    sockets: list[WsClient] = []
    with streaming(limited, alice, bob) as ((mine, theirs), held), over_http(limited) as base:
        try:
            path = f"/runs/{mine}/events"
            ws_url = base.replace("http://", "ws://") + f"/api/v1/runs/{mine}/ws"
            for _ in range(cap // 2):
                held.append(Stream(base, path, alice))
                sockets.append(WsClient.connect(ws_url, headers=alice))
            assert [s.status for s in held] == [200] * (cap // 2)
            refused_as_too_many(Stream(base, path, alice), cap)
            url = urlsplit(base)
            conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=15)
            conn.request("GET", f"/api/v1/runs/{mine}/ws", headers={**alice, **UPGRADE})
            answer = conn.getresponse()
            assert answer.status == 429, answer.status
            assert json.loads(answer.read())["error"]["code"] == "too_many_streams"
            conn.close()
            other = Stream(base, f"/runs/{theirs}/events", bob)
            assert other.status == 200  # bob is not held up by alice's streams
            held.append(other)
            held.pop(0).close()  # alice's SSE client leaves: her place comes back
            wait_for(lambda: opens_again(base, path, alice, held), timeout=15, interval=0.2)
            refused_as_too_many(Stream(base, path, alice), cap)
            sockets.pop().close()  # and a WebSocket's
            wait_for(lambda: opens_again(base, path, alice, held), timeout=15, interval=0.2)
        finally:
            for ws in sockets:
                ws.close()


def test_streams_that_keep_a_thread_have_a_smaller_share(live: Live) -> None:
    """A user's share of all streams (a tenth) was larger than the whole pool of threads that
    streams may hold: one user's WebSocket or HTTP/1.0 streams took every thread, and others'
    got 503. Those count against a tenth of the threads too, before the pool is looked at."""
    limited = live.app_with(max_streams=200, max_stream_threads=20, heartbeat_s=0.3)
    alice, bob = limited.user("alice"), limited.user("bob")
    with streaming(limited, alice, bob) as ((mine, theirs), held), over_http(limited) as base:
        # the dev server: every stream keeps its thread
        held += [Stream(base, f"/runs/{mine}/events", alice) for _ in range(8)]
        assert [s.status for s in held] == [200] * 8
        refused = Stream(base, f"/runs/{mine}/events", alice)
        refused_as_too_many(refused, 8)  # her share of threads, not of streams (20)
        assert "server thread" in refused.body["error"]["message"]
        other = Stream(base, f"/runs/{theirs}/events", bob)
        assert other.status == 200
        held.append(other)


def test_a_dizest_stream_call_at_the_cap_starts_no_run(live: Live) -> None:
    """DIZEST's stream route starts a run and streams it: refused, it must not have started
    one (each retry of the client would start another)."""
    limited = live.app_with(max_streams=20, heartbeat_s=0.3)
    alice = limited.user("alice")
    wf = limited.call("POST", "/workflows", alice, json={"title": "s", "package": slow(60)})
    with streaming(limited, alice) as ((mine,), held), over_http(limited) as base:
        held += [Stream(base, f"/runs/{mine}/events", alice) for _ in range(8)]
        assert [s.status for s in held] == [200] * 8
        before = limited.call("GET", "/runs", alice).json["total"]
        url = urlsplit(base)
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=15)
        conn.request("POST", f"/dizest/api/stream/{wf.json['id']}", body=b"{}",
                     headers={**alice, "Content-Type": "application/json"})  # fmt: skip
        answer = conn.getresponse()
        assert answer.status == 429, answer.status
        assert json.loads(answer.read())["error"]["code"] == "too_many_streams"
        conn.close()
        assert limited.call("GET", "/runs", alice).json["total"] == before


def test_a_stream_whose_body_is_never_read_gives_its_place_back(live: Live) -> None:
    """A response closed before its first byte (its events never started) frees its place."""
    limited = live.app_with(max_streams=20)
    cap = 8
    alice = limited.user("alice")
    run_id = limited.call("POST", "/runs", alice, json={"package": slow(60)}).json["run_id"]
    path = f"/api/v1/runs/{run_id}/events"
    unread = [limited.http.get(path, headers=alice, buffered=False) for _ in range(cap)]
    try:
        assert [r.status_code for r in unread] == [200] * cap
        refused = limited.http.get(path, headers=alice, buffered=False)
        assert refused.status_code == 429 and refused.json["error"]["code"] == "too_many_streams"
        unread.pop().close()
        again = limited.http.get(path, headers=alice, buffered=False)
        assert again.status_code == 200
        unread.append(again)
    finally:
        for response in unread:
            response.close()
        limited.call("POST", f"/runs/{run_id}/cancel", alice)
        hub_for(limited.app).close()


def session(base: str, name: str, password: str) -> dict[str, str]:
    return password_session(base, name, password)[0]


def user_token(base: str, name: str) -> dict[str, str]:
    """Bearer headers of a new user `name`, made by the admin (logged in with its password)."""
    password = "fairness test password"
    admin = session(base, "admin", PASSWORD)
    body = {"username": name, "password": password}
    status, made, _ = call(base, "POST", "/api/v1/users", body, admin)
    assert status == 201, made
    status, token, _ = call(base, "POST", "/api/v1/tokens", {"name": "t"}, session(base, name, password))  # fmt: skip
    assert status == 201, token
    return {"Authorization": f"Bearer {token['token']}"}


def test_streams_the_hub_owns_count_for_their_user_until_they_end(tmp_path: Path) -> None:
    """Under `dizest serve` an SSE stream holds no thread (the event hub owns its socket): it
    still holds its user's place, until its client leaves."""
    with serving(tmp_path, max_streams="20") as served:
        base = served.base
        alice, bob = user_token(base, "alice"), user_token(base, "bob")
        runs = {}
        for name, headers in (("alice", alice), ("bob", bob)):
            status, run, _ = call(base, "POST", "/api/v1/runs", {"package": slow(60)}, headers)
            assert status == 201, run
            runs[name] = run["run_id"]
        path = f"/runs/{runs['alice']}/events"
        held = [Stream(base, path, alice) for _ in range(7)]
        ws_url = base.replace("http://", "ws://") + f"/api/v1/runs/{runs['alice']}/ws"
        ws = WsClient.connect(ws_url, headers=alice)
        try:
            assert [s.status for s in held] == [200] * 7
            refused_as_too_many(Stream(base, path, alice), 8)
            other = Stream(base, f"/runs/{runs['bob']}/events", bob)
            assert other.status == 200
            held.append(other)
            held.pop(0).close()  # the hub sees its client leave: the place comes back
            wait_for(lambda: opens_again(base, path, alice, held), timeout=15, interval=0.2)
            refused_as_too_many(Stream(base, path, alice), 8)
        finally:
            ws.close()
            for stream in held:
                stream.close()
            call(base, "POST", f"/api/v1/runs/{runs['alice']}/cancel", None, alice)
            call(base, "POST", f"/api/v1/runs/{runs['bob']}/cancel", None, bob)
