"""`dizest serve`'s live streams end to end: SSE and WebSocket, resumes, a stalled client, many
clients on few threads, HTTP/1.0 streams that keep their thread, and their end on stop."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from simple_websocket import ConnectionClosed

from dizest_api.handover import GATE
from tests.serve_process import DATA, call, serving, sse_ids
from tests.ws_client import WsClient

SLOW = {
    "apps": {
        "nap": {
            "id": "nap",
            "title": "nap",
            "inputs": [],
            "outputs": [{"name": "v"}],
            "code": "import time\nprint('tick', flush=True)\ntime.sleep(60)\nv = 1",
        }
    },
    "flow": {"n": {"id": "n", "app_id": "nap", "active": True, "inputs": {}, "outputs": {}}},
}


def test_serve_streams_sse_and_websocket_and_ends_them_at_once_on_stop(tmp_path: Path) -> None:
    with serving(tmp_path) as served:
        status, run, _ = call(served.base, "POST", "/api/v1/runs", {"package": SLOW}, served.token)
        assert status == 201, run
        path = f"/api/v1/runs/{run['run_id']}"
        host, port = served.base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("GET", f"{path}/events", headers=served.token)
        sse = conn.getresponse()
        assert sse.status == 200 and sse.headers["X-Accel-Buffering"] == "no"
        while b"tick" not in sse.readline():
            pass
        # a second run, watched live (the hub writes to the socket itself under gunicorn):
        # exactly the events a replay gives, in order; a resume gets exactly the rest
        fanout = json.loads((DATA / "c03_fanout.dwp").read_text())
        status, other, _ = call(served.base, "POST", "/api/v1/runs", {"package": fanout}, served.token)  # fmt: skip
        assert status == 201, other
        events = f"/api/v1/runs/{other['run_id']}/events"
        live = sse_ids(host, int(port), events, served.token)
        assert live == sse_ids(host, int(port), events, served.token) and len(live) > 10
        resumed = sse_ids(host, int(port), events, {**served.token, "Last-Event-ID": live[4]})
        assert resumed == live[5:]
        ws = WsClient.connect(
            served.base.replace("http", "ws") + f"{path}/ws", headers=served.token
        )
        first = json.loads(ws.receive(timeout=15))
        assert first["run_id"] == run["run_id"]
        stopped = time.monotonic()
        os.killpg(served.pid, signal.SIGTERM)
        rest = sse.read()  # the stream ends (chunked: a clean last chunk), before the run does
        # the worker's drain first (2 s in tests, its flow sleeps on), then the API ends its
        # streams at once: not after its 10 s graceful timeout
        assert time.monotonic() - stopped < 8
        assert b"workflow.status" not in rest
        with pytest.raises(ConnectionClosed):
            while True:
                assert ws.receive(timeout=5) is not None


def test_a_client_that_stops_reading_never_slows_the_others(tmp_path: Path) -> None:
    noisy = json.loads(json.dumps(SLOW))
    noisy["apps"]["nap"]["code"] = "for i in range(4000):\n    print(i, 'x' * 2000)\nv = 1"
    with serving(tmp_path, heartbeat_s="0.5") as served:
        status, run, _ = call(served.base, "POST", "/api/v1/runs", {"package": noisy}, served.token)
        assert status == 201, run
        host, port = served.base.removeprefix("http://").split(":")
        path = f"/api/v1/runs/{run['run_id']}/events"
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once
        stalled.connect((host, int(port)))
        head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
        head += f"Authorization: {served.token['Authorization']}\r\n\r\n"
        stalled.sendall(head.encode())  # and never reads
        try:
            started = time.monotonic()
            ids = sse_ids(host, int(port), path, served.token)
            assert time.monotonic() - started < 30  # the stalled client held nobody up
            _, ended, _ = call(
                served.base, "GET", f"/api/v1/runs/{run['run_id']}", None, served.token
            )
            assert ended["status"] == "ready", ended  # 4000 prints, then the end
            assert len(ids) > 4000 and len(set(ids)) == len(ids)  # each event once, in order:
            assert ids == sse_ids(host, int(port), path, served.token)  # as a later replay
            # and the server gave up on it within two heartbeats of the send that blocked
            stalled.settimeout(10)
            with contextlib.suppress(ConnectionResetError):
                while stalled.recv(1 << 20):
                    pass  # what it had buffered, then the end
        finally:
            stalled.close()


def test_sse_streams_hold_no_server_thread(tmp_path: Path) -> None:
    """40 SSE clients of one run on an API process with 8 threads, of which 1 may hold a
    stream: each stream is handed to the event hub after its replay (a stream that kept its
    thread would be refused with 503), and every client gets exactly the run's events."""
    ticking = json.loads(json.dumps(SLOW))
    ticking["apps"]["nap"]["code"] = (
        "import time\nfor i in range(60):\n    print(i, flush=True)\n    time.sleep(0.05)\nv = 1"
    )
    with serving(tmp_path, "--threads", "8", "--connections", "400") as served:  # 40 a user
        status, run, _ = call(served.base, "POST", "/api/v1/runs", {"package": ticking}, served.token)  # fmt: skip
        assert status == 201, run
        host, port = served.base.removeprefix("http://").split(":")
        path = f"/api/v1/runs/{run['run_id']}/events"
        got: list[list[str]] = []
        errors: list[BaseException] = []

        def client() -> None:
            try:
                got.append(sse_ids(host, int(port), path, served.token))
            except BaseException as exc:  # reported below
                errors.append(exc)

        clients = [threading.Thread(target=client) for _ in range(40)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(timeout=60)
        assert not errors, errors[0]
        replay = sse_ids(host, int(port), path, served.token)
        assert len(got) == 40 and all(ids == replay for ids in got)


def test_streams_that_keep_their_thread_leave_the_setup_gate(tmp_path: Path) -> None:
    """An HTTP/1.0 SSE client keeps its server thread (no chunked response for the hub to
    write): such a stream leaves the gate that lets only `handover.GATE` streams set up at once,
    so more of them than that all stream, and a handed-over one still connects besides."""
    with serving(tmp_path) as served:
        status, run, _ = call(served.base, "POST", "/api/v1/runs", {"package": SLOW}, served.token)
        assert status == 201, run
        host, port = served.base.removeprefix("http://").split(":")
        path = f"/api/v1/runs/{run['run_id']}/events"
        head = f"GET {path} HTTP/1.0\r\nHost: {host}\r\n"
        head += f"Authorization: {served.token['Authorization']}\r\n\r\n"
        held = [socket.create_connection((host, int(port)), timeout=20) for _ in range(GATE + 2)]
        try:
            for sock in held:
                sock.sendall(head.encode())
            for sock in held:
                got = b""
                while b"tick" not in got:  # the run's events, live in this stream's thread
                    data = sock.recv(65536)
                    assert data, got
                    got += data
            conn = http.client.HTTPConnection(host, int(port), timeout=20)
            conn.request("GET", path, headers=served.token)
            sse = conn.getresponse()
            assert sse.status == 200
            while b"tick" not in sse.readline():
                pass
            conn.close()
        finally:
            for sock in held:
                sock.close()
