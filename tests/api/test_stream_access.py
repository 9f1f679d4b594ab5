"""A live stream ends once its reader may no longer read its run (`dizest_api.stream_access`),
against a real `dizest serve`: a viewer whose grant is taken away (an SSE stream the event hub
owns) and a token revoked (a WebSocket, which holds a thread) stop receiving the run's events
within a heartbeat period or two, while the run goes on and its owner's stream with it. A probe
found the viewer's stream went on with every log line until the run ended."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from simple_websocket import ConnectionClosed

from tests.api.test_hostile_serve import new_users
from tests.conftest import package
from tests.serve_process import call, serving
from tests.ws_client import WsClient

TALKS = "import time\nfor i in range(600):\n    print('line', i, flush=True)\n    time.sleep(0.1)\nv = 1"  # fmt: skip
ENDED_WITHIN_S = 10.0  # heartbeat 1 s: one round to see the refusal, one more to end a thread's


def open_sse(base: str, path: str, headers: dict[str, str]) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=ENDED_WITHIN_S)
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode())
    assert b"200 OK" in sock.recv(65536)
    return sock


def sse_ends(sock: socket.socket) -> bool:
    """Whether the stream ends (its last chunk, then EOF) within ENDED_WITHIN_S."""
    deadline, data = time.monotonic() + ENDED_WITHIN_S, b""
    while time.monotonic() < deadline:
        try:
            got = sock.recv(65536)
        except TimeoutError:
            return False
        if not got:
            return data.endswith(b"0\r\n\r\n")
        data = (data + got)[-16:]
    return False


def ws_ends(ws: WsClient) -> bool:
    deadline = time.monotonic() + ENDED_WITHIN_S
    try:
        while time.monotonic() < deadline:
            ws.receive(timeout=1)
    except ConnectionClosed:
        return True
    return False


def test_a_stream_ends_when_its_reader_loses_the_run(tmp_path: Path) -> None:
    with serving(tmp_path, heartbeat_s="1") as served:
        base = served.base
        tokens = new_users(base, "alice", "bob", "carol")
        alice, bob, carol = ({"Authorization": f"Bearer {t['token']}"} for t in tokens.values())
        pkg = package({"a": {"code": TALKS, "outputs": ["v"]}}, {"f": {"app": "a"}})
        wf = call(base, "POST", "/api/v1/workflows", {"title": "t", "package": pkg}, alice)[1]
        grants = {"grants": {"bob": "viewer", "carol": "viewer"}}
        assert call(base, "PUT", f"/api/v1/workflows/{wf['id']}/grants", grants, alice)[0] == 200
        status, run, _ = call(base, "POST", "/api/v1/runs", {"workflow_id": wf["id"]}, alice)
        assert status == 201, run
        events = f"/api/v1/runs/{run['run_id']}/events"
        owner, viewer = open_sse(base, events, alice), open_sse(base, events, bob)
        ws = WsClient.connect(base.replace("http", "ws") + events[:-6] + "ws", headers=carol)
        assert json.loads(ws.receive(timeout=15))["run_id"] == run["run_id"]

        grants = {"grants": {"carol": "viewer"}}
        assert call(base, "PUT", f"/api/v1/workflows/{wf['id']}/grants", grants, alice)[0] == 200
        assert sse_ends(viewer), "the viewer's stream went on after their grant was taken away"
        viewer.close()
        revoke = f"/api/v1/tokens/{tokens['carol']['id']}"
        assert call(base, "DELETE", revoke, None, carol)[0] == 204
        assert ws_ends(ws), "the WebSocket went on after its token was revoked"

        report = call(base, "GET", f"/api/v1/runs/{run['run_id']}", None, alice)[1]
        assert report["status"] == "running", report
        assert owner.recv(65536), "the owner's stream ended too"
        owner.close()
        assert call(base, "POST", f"/api/v1/runs/{run['run_id']}/cancel", None, alice)[0] == 200
