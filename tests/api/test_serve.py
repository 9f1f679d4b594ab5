"""`dizest serve` end to end: embedded Redis, a worker, gunicorn; a run over HTTP; malformed
requests; clean stop; the data dir hidden from flows (the serve: tests/serve_process.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.serve_process import DATA, call, serving


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
