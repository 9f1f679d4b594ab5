"""A real `dizest serve` for tests (embedded Redis, a worker, gunicorn, in a session of its
own): launched, waited for until healthy and ready, an admin token, JSON calls, its SSE
streams read to their end, and its stop with nothing of its session left behind."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]
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


def password_session(base: str, name: str, password: str) -> tuple[dict[str, str], str]:
    """`name` logged in with `password` (200, or the test fails): the Cookie and X-CSRF-Token
    headers of the session, and the Set-Cookie header that made it."""
    body = {"username": name, "password": password}
    status, login, answer = call(base, "POST", "/api/v1/auth/login", body)
    assert status == 200, login
    made = answer["Set-Cookie"]
    return {"Cookie": made.split(";")[0], "X-CSRF-Token": login["csrf_token"]}, made


def admin_token(base: str) -> dict[str, str]:
    """Bearer headers of a new admin token (logged in with the password)."""
    session = password_session(base, "admin", PASSWORD)[0]
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
