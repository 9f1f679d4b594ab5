"""`dizest serve` end to end: embedded Redis, a worker, gunicorn; a run over HTTP; clean stop."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from simple_websocket import ConnectionClosed

from dizest_api.handover import GATE
from tests.redis_server import free_port
from tests.ws_client import WsClient

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
PASSWORD = "serve test password"


def call(
    base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, Any]:
    """(status, JSON body, response headers) of one request."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null"), answer.headers
    except urllib.error.HTTPError as exc:
        return exc.code, None, exc.headers


def wait_ok(base: str, path: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        assert proc.poll() is None, "dizest serve exited early"
        with contextlib.suppress(OSError):
            if call(base, "GET", path)[0] == 200:
                return
        time.sleep(0.05)  # each serve is waited for twice (healthy, ready)
    raise AssertionError(f"{path} never answered 200")


def session_members(sid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields[3]: session id
            found.append(int(entry.name))
    return found


@dataclass
class Served:
    base: str
    token: dict[str, str]  # admin bearer headers
    pid: int  # the `dizest serve` process (the supervisor), leader of its process group
    log: Path  # its output (and its children's)
    data: Path  # its data dir


def launch(
    tmp: Path, port: int, *args: str, log_name: str = "serve.log", **settings: str
) -> subprocess.Popen[bytes]:
    """Start `dizest serve` on `port` with data dir `tmp/data`, no DIZEST_* settings but the
    admin password (and `settings`, as DIZEST_<NAME> variables), in a session of its own. Its
    stop waits 0.5 s for running flows unless `args` say otherwise (tests/api/test_serve_stop.py
    tests that wait; elsewhere a test's slow flow would hold each stop 15 s). Even an idle
    worker's warm shutdown takes 2-4 s (Celery's pool, then the reaper): with 2 s, each stop
    waited out the 2 s and killed it all the same."""
    if "--stop-timeout" not in args:
        args = (*args, "--stop-timeout", "0.5")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZEST_")}
    env.update(DIZEST_ADMIN_PASSWORD=PASSWORD, DIZEST_BCRYPT_ROUNDS="4")
    env.update({f"DIZEST_{name.upper()}": value for name, value in settings.items()})
    command = [sys.executable, "-m", "dizest_cli", "serve", "--port", str(port), *args]
    with (tmp / log_name).open("ab") as log:
        return subprocess.Popen(
            [*command, "--workers", "1", "--data-dir", str(tmp / "data")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def admin_token(base: str) -> dict[str, str]:
    """Bearer headers of a new admin token (logged in with the password)."""
    status, login, answer = call(
        base, "POST", "/api/v1/auth/login", {"username": "admin", "password": PASSWORD}
    )
    assert status == 200, login
    cookie = answer["Set-Cookie"].split(";")[0]
    session = {"Cookie": cookie, "X-CSRF-Token": login["csrf_token"]}
    status, made, _ = call(base, "POST", "/api/v1/tokens", {"name": "t"}, session)
    assert status == 201, made
    return {"Authorization": f"Bearer {made['token']}"}


def stop_session(proc: subprocess.Popen[bytes]) -> list[int]:
    """SIGTERM the serve's group, wait, then SIGKILL whatever of its session is left;
    returns what was left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    left: list[int] = []
    try:
        proc.wait(timeout=30)
    finally:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            left = session_members(proc.pid)
            if not left:
                break
            time.sleep(0.2)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return left


@contextlib.contextmanager
def serving(
    tmp: Path, *args: str, ready: bool = True, port: int | None = None, **settings: str
) -> Iterator[Served]:
    """`dizest serve` (see `launch`) on `port` (default: a free one), healthy (and ready,
    unless not `ready`); stopped afterwards, and nothing of its session may be left."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    proc = launch(tmp, port, *args, **settings)
    left: list[int] = []
    try:
        deadline = time.monotonic() + 60
        wait_ok(base, "/healthz", proc, deadline)
        if ready:
            wait_ok(base, "/readyz", proc, deadline)
        yield Served(base, admin_token(base), proc.pid, tmp / "serve.log", tmp / "data")
    finally:
        left = stop_session(proc)
    assert not left, f"processes left behind: {left}"


def test_serve_runs_a_flow_and_stops_cleanly(tmp_path: Path) -> None:
    # two variables no setting reads (renamed; misspelt): said once, by the serve, not its worker
    with serving(tmp_path, user_uploads="3", redis_ulr="redis://x") as served:
        base, token = served.base, served.token
        assert call(base, "GET", "/metrics")[0] == 401
        package = json.loads((DATA / "c03_fanout.dwp").read_text())
        status, run, _ = call(base, "POST", "/api/v1/runs", {"package": package}, token)
        assert status == 201, run
        run_id = run["run_id"]
        deadline = time.monotonic() + 60
        while True:
            status, report, _ = call(base, "GET", f"/api/v1/runs/{run_id}", headers=token)
            assert status == 200
            if report["status"] not in {"running", "pending"}:
                break
            assert time.monotonic() < deadline, report
            time.sleep(0.05)
        expected = json.loads((DATA / "c03_fanout.expected.json").read_text())["expect"]
        assert report["status"] == "ready", report
        for flow_id, want in expected["flows"].items():
            assert report["flows"][flow_id]["status"] == "ready", (flow_id, report)
            assert report["flows"][flow_id]["outputs"] == want["outputs"], flow_id
        scrape = urllib.request.Request(base + "/metrics", headers=token)
        with urllib.request.urlopen(scrape, timeout=10) as answer:
            text = answer.read().decode()
        assert 'dizest_runs{status="ready"} 1' in text
        assert "dizest_workers_live 1" in text
        flows = len(expected["flows"])  # lifetime counters kept by the worker's scripts
        assert f"dizest_flows_started_total {flows}" in text
        assert f'dizest_flows_finished_total{{status="ready"}} {flows}' in text
        assert f'dizest_flow_duration_seconds_bucket{{le="+Inf"}} {flows}' in text
        assert f"dizest_flow_duration_seconds_count {flows}" in text
        malformed_requests_get_json_errors(base, token)
        log = served.log.read_text()
        assert "unhandled error" not in log
        renamed = (
            "DIZEST_USER_UPLOADS is not a dizest setting: ignored (it is DIZEST_USER_BODIES now)"
        )
        misspelt = (
            "DIZEST_REDIS_ULR is not a dizest setting: ignored (did you mean DIZEST_REDIS_URL?)"
        )
        assert log.count(renamed) == log.count(misspelt) == 1, log


def raw(base: str, request: bytes) -> tuple[int, str, dict[str, Any]]:
    """Status, content type and JSON body of a raw HTTP request's answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    kind = next(v for k, _, v in (h.partition(": ") for h in lines[1:]) if k.lower() == "content-type")  # fmt: skip
    return int(lines[0].split()[1]), kind, json.loads(body)


def malformed_requests_get_json_errors(base: str, token: dict[str, str]) -> None:
    """A broken chunked body read by a view is a 400, not a 500; what gunicorn refuses before
    the app (a request line over its limit, a control character in a header) answers JSON."""
    auth = f"Authorization: {token['Authorization']}\r\n".encode()
    chunked = (
        b"POST /api/v1/workflows HTTP/1.1\r\nHost: x\r\n"
        + auth
        + (
            b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\n\r\nzz\r\n"
        )
    )
    status, kind, body = raw(base, chunked)
    assert (status, kind, body["error"]["code"]) == (400, "application/json", "bad_request"), body
    assert "malformed request body" in body["error"]["message"]
    long_line = b"GET /api/v1/runs/" + b"A" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    status, kind, body = raw(base, long_line)
    assert (status, kind, body["error"]["code"]) == (414, "application/json", "uri_too_long")
    control = b"GET /api/v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dz_\x01\r\n\r\n"
    status, kind, body = raw(base, control)
    assert (status, kind, body["error"]["code"]) == (400, "application/json", "bad_request"), body
    too_large_bodies_get_their_413(base, auth)


def too_large_bodies_get_their_413(base: str, auth: bytes) -> None:
    """A body over the limit, sent whole before the answer is read (as urllib, requests and curl
    do): the server reads it to its end and the client hears the 413. The client's small send
    buffer keeps most of the body out of the kernel until the server reads it: a server that
    closes with the body unread (gunicorn drains 64 KB) resets the connection mid-send."""
    host, port = base.removeprefix("http://").split(":")
    size = 10 * 1024 * 1024 + 4096  # just over the default max_request_bytes (10 MiB)
    head = (
        b"POST /api/v1/workflows HTTP/1.1\r\nHost: x\r\n" + auth
        + b"Content-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {size}\r\n\r\n".encode()
    )  # fmt: skip
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        sock.settimeout(30)
        sock.connect((host, int(port)))
        sock.sendall(head)
        chunk = b" " * 65536
        for _ in range(size // len(chunk)):
            sock.sendall(chunk)
        sock.sendall(b" " * (size % len(chunk)))
        data = b""
        while part := sock.recv(65536):
            data += part
    status_line, _, rest = data.partition(b"\r\n")
    assert status_line.split()[1] == b"413", data[:300]
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_entity_too_large"


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


def sse_ids(host: str, port: int, path: str, headers: dict[str, str]) -> list[str]:
    """The event ids of a run's SSE stream up to its final workflow.status, resuming with
    Last-Event-ID when the server ends a response early, as EventSource does (a reader that
    falls a whole queue behind is dropped by design, then resumes and loses nothing)."""
    ids: list[str] = []
    for _ in range(20):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        resume = {"Last-Event-ID": ids[-1]} if ids else {}
        conn.request("GET", path, headers={**headers, **resume})
        answer = conn.getresponse()
        assert answer.status == 200
        body = answer.read().decode()
        conn.close()
        final = False
        for frame in body.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in frame.split("\n") if ": " in line)
            if "id" in fields:
                ids.append(fields["id"])
                final = final or (
                    fields.get("event") == "workflow.status"
                    and json.loads(fields.get("data", "{}")).get("data", {}).get("status")
                    in ("ready", "error", "cancelled")
                )
        if final:
            return ids
    raise AssertionError(f"the stream never reached its end ({len(ids)} events)")


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


PEEK = """
root = dizest.input('root')
mounts = [line.split()[4] for line in open('/proc/self/mountinfo')]
v = {'covered': root in mounts, 'own run bound back': any(m.startswith(root + '/') for m in mounts)}
"""


def test_flows_see_nothing_of_the_data_dir_wherever_it_is(tmp_path: Path) -> None:
    """The data dir outside every path the sandbox hides of itself (not in /tmp, /root or
    /home): the flow's view of it is an empty tmpfs with only its own run bound back (Landlock
    would stop most reads there too, but not where the data dir lies on the Python path), and
    the embedded Redis's files are root's alone."""
    if os.geteuid() != 0:
        pytest.skip("the sandbox is on in a root worker")
    outside = Path("/var/tmp") / f"dizest-serve-{uuid.uuid4().hex[:8]}"
    outside.mkdir()
    try:
        with serving(outside) as served:
            assert (served.data / "redis").stat().st_mode & 0o777 == 0o700
            app = {"id": "p", "title": "p", "code": PEEK, "outputs": [{"name": "v"}],
                   "inputs": [{"type": "variable", "name": "root"}]}  # fmt: skip
            flow = {"id": "f", "app_id": "p", "active": True, "data": {"root": str(served.data)},
                    "inputs": {}, "outputs": {}}  # fmt: skip
            package = {"apps": {"p": app}, "flow": {"f": flow}}
            status, run, _ = call(served.base, "POST", "/api/v1/runs", {"package": package}, served.token)  # fmt: skip
            assert status == 201, run
            report = wait_done(served.base, run["run_id"], served.token)
            assert report["flows"]["f"]["status"] == "ready", report
            found = report["flows"]["f"]["outputs"]["v"]
            assert found == {"covered": True, "own run bound back": True}
    finally:
        shutil.rmtree(outside)


def wait_done(base: str, run_id: str, token: dict[str, str]) -> dict:
    deadline = time.monotonic() + 60
    while True:
        status, report, _ = call(base, "GET", f"/api/v1/runs/{run_id}", headers=token)
        assert status == 200
        if report["status"] not in {"running", "pending"}:
            return report
        assert time.monotonic() < deadline, report
        time.sleep(0.05)
