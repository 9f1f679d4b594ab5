"""A DIZEST-compatible run (`/dizest/api/run/<workflow>`) waits for its run's end in a server
thread, up to 10 minutes: against a real `dizest serve` with 16 threads, one user's 20 such
waits left no thread for anyone else (a probe: another user's `GET /auth/me` timed out). Each
wait now takes a place among its user's requests that keep a thread (8 here), before its run
starts: the rest are 429 and start nothing, and the other user is answered at once. A wait
whose request had a large body holds none of its user's body slots while it waits: that
thread waits on the run, not on the client."""

from __future__ import annotations

import json
import select
import socket
import time
from pathlib import Path

from tests.api.test_body_slots import BIG, held, save_body
from tests.api.test_hostile_serve import new_users
from tests.conftest import package, wait_for
from tests.serve_process import call, serving

WAITS = 20
HELD = 8  # `dizest serve --threads 16`: DIZEST_MAX_STREAM_THREADS 8, a user's share 8


def statuses(socks: list[socket.socket], wanted: int, timeout: float) -> list[int]:
    """The HTTP statuses answered on `socks` until `wanted` came or `timeout` passed."""
    found: list[int] = []
    waiting, deadline = list(socks), time.monotonic() + timeout
    while len(found) < wanted and waiting and time.monotonic() < deadline:
        ready, _, _ = select.select(waiting, [], [], max(0.0, deadline - time.monotonic()))
        for sock in ready:
            head = sock.recv(65536)
            found.append(int(head.split()[1]) if head else 0)
            waiting.remove(sock)
    return found


def test_one_users_compat_runs_leave_threads_for_others(tmp_path: Path) -> None:
    with serving(tmp_path, "--threads", "16") as served:
        base = served.base
        tokens = {
            name: {"Authorization": f"Bearer {made['token']}"}
            for name, made in new_users(base, "mallory", "bob").items()
        }
        sleeps = package({"a": {"code": "import time\ntime.sleep(60)\nv = 1", "outputs": ["v"]}}, {"f": {"app": "a"}})  # fmt: skip
        body = {"title": "t", "package": sleeps}
        wf = call(base, "POST", "/api/v1/workflows", body, tokens["mallory"])[1]
        host, port = base.removeprefix("http://").split(":")
        socks = []
        for _ in range(WAITS):
            sock = socket.create_connection((host, int(port)), timeout=30)
            auth = tokens["mallory"]["Authorization"]
            sock.sendall(f"GET /dizest/api/run/{wf['id']} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode())  # fmt: skip
            socks.append(sock)
        try:
            refused = statuses(socks, WAITS - HELD, timeout=30)
            assert refused == [429] * (WAITS - HELD), refused
            started = time.monotonic()
            assert call(base, "GET", "/api/v1/auth/me", None, tokens["bob"])[0] == 200
            assert time.monotonic() - started < 5
            mine = lambda: call(base, "GET", "/api/v1/runs", None, tokens["mallory"])[1]["items"]  # noqa: E731
            # a refused wait's run would exist before its 429: there would be more, at once
            wait_for(lambda: len(mine()) == HELD, timeout=20)
        finally:
            for sock in socks:
                sock.close()


def test_a_compat_wait_gives_its_body_slot_back_once_the_body_is_read(tmp_path: Path) -> None:
    """With one body slot a user, a run started with a large body and waited for (up to 10
    minutes) held it: every later upload or large save of hers was 429 meanwhile."""
    with serving(tmp_path, user_bodies="1") as served:
        base = served.base
        token = {"Authorization": f"Bearer {new_users(base, 'alice')['alice']['token']}"}
        sleeps = package({"a": {"code": "import time\ntime.sleep(60)\nv = 1", "inputs": ["x"], "outputs": ["v"]}}, {"f": {"app": "a"}})  # fmt: skip
        wf = call(base, "POST", "/api/v1/workflows", {"title": "t", "package": sleeps}, token)[1]
        body = json.dumps({"x": "y" * BIG}).encode()
        host, port = base.removeprefix("http://").split(":")
        sock = socket.create_connection((host, int(port)), timeout=30)
        try:
            head = f"POST /dizest/api/run/{wf['id']} HTTP/1.1\r\nHost: x\r\nAuthorization: {token['Authorization']}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"  # fmt: skip
            sock.sendall(head.encode() + body)
            runs = lambda: call(base, "GET", "/api/v1/runs", None, token)[1]["items"]  # noqa: E731
            wait_for(lambda: [r["status"] for r in runs()] == ["running"], timeout=30)
            assert held(served, "alice") == 0  # the wait goes on; its slot is free
            status, made, _ = call(base, "POST", "/api/v1/workflows", json.loads(save_body(BIG)), token)  # fmt: skip
            assert status == 201, made
            assert not select.select([sock], [], [], 0)[0]  # still waiting for its run
        finally:
            sock.close()
