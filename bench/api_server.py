"""The `dizest serve` the API benches run against: started in a session of its own (one API
process, its embedded Redis and one `dizest worker -c 2`, under a temporary data dir), its
admin's bearer token, JSON calls, the CPU of each of its parts, and its stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procfs import cmdline, cpu_s, session_members, sys_s

from dizest_api.event_hub import streams_per_user

ROOT = Path(__file__).resolve().parent.parent  # the server's working directory (sse_pair.py)
PASSWORD = secrets.token_urlsafe(16)


@dataclass
class Server:
    base: str
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    admin: dict[str, str] = field(default_factory=dict)
    data: Path | None = None  # its data dir (runs' working directories under runs/)
    connections: int = 1000  # its --connections: how many streams it takes

    def pids(self) -> dict[str, list[int]]:
        """API (the gunicorn master and workers), worker tree, Redis: by their command lines
        (flow children run in sessions of their own; their CPU shows in their zygote's)."""
        found: dict[str, list[int]] = {"api": [], "worker": [], "redis": []}
        for pid in session_members(self.proc.pid):
            cmd = cmdline(pid)
            if "valkey-server" in cmd or "redis-server" in cmd:
                found["redis"].append(pid)
            elif "gunicorn_app" in cmd or "dizest-api" in cmd:
                found["api"].append(pid)
            elif " serve " in cmd:
                continue  # the supervisor: it only waits
            else:
                found["worker"].append(pid)
        return found


def cpu_by_role(server: Server) -> dict[str, float]:
    pids = server.pids()
    usage = {role: sum(cpu_s(p) for p in found) for role, found in pids.items()}
    usage["api_sys"] = sum(sys_s(p) for p in pids["api"])
    usage["bench"] = time.process_time()
    return usage


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(
    base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            raw = answer.read()
            text = raw.decode()
            parsed = (
                json.loads(text)
                if answer.headers.get_content_type() == "application/json"
                else text
            )
            return answer.status, parsed, answer.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), exc.headers


@contextlib.contextmanager
def serving(
    tmp: Path, threads: int, connections: int, keep_log: Path | None = None
) -> Iterator[Server]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZEST_")}
    env.update(DIZEST_ADMIN_PASSWORD=PASSWORD, DIZEST_BCRYPT_ROUNDS="4")
    env["DIZEST_MAX_RUNS_PER_USER"] = "1000"
    log = (tmp / "serve.log").open("wb")
    command = [sys.executable, "-m", "dizest_cli", "serve", "--port", str(port), "--workers", "1"]
    command += ["--threads", str(threads), "--connections", str(connections)]
    proc = subprocess.Popen(
        [*command, "--data-dir", str(tmp / "data")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(f"http://127.0.0.1:{port}", "127.0.0.1", port, proc, data=tmp / "data")
    server.connections = connections
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if call(server.base, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dizest serve did not start; see {tmp / 'serve.log'}")
            time.sleep(0.2)
        server.admin = bearer(server.base, "admin", ("read", "run", "admin"))
        yield server
    finally:
        stop_serve(proc, 40)
        log.close()
        if keep_log:
            keep_log.write_bytes((tmp / "serve.log").read_bytes())


def stop_serve(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """Stop a `dizest serve` started in a session of its own: SIGTERM to its group, `grace_s` to
    exit, then SIGKILL to whatever of its session is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        print(f"dizest serve: no exit {grace_s:g} s after SIGTERM, SIGKILL", file=sys.stderr)
    for pid in session_members(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


def bearer(base: str, username: str, scopes: tuple[str, ...] = ("read", "run")) -> dict[str, str]:
    """Log `username` in and make a token with `scopes`."""
    status, login, headers = call(
        base, "POST", "/api/v1/auth/login", {"username": username, "password": PASSWORD}
    )
    if status != 200:
        raise RuntimeError(f"login {username}: {status} {login}")
    session = {"Cookie": headers["Set-Cookie"].split(";")[0], "X-CSRF-Token": login["csrf_token"]}
    status, made, _ = call(
        base, "POST", "/api/v1/tokens", {"name": "bench", "scopes": list(scopes)}, session
    )
    if status != 201:
        raise RuntimeError(f"token for {username}: {status} {made}")
    return {"Authorization": f"Bearer {made['token']}"}


def stream_clients(server: Server) -> int:
    status, text, _ = call(server.base, "GET", "/metrics", headers=server.admin)
    if status != 200:
        raise RuntimeError(f"/metrics: {status}")
    for line in str(text).splitlines():
        if line.startswith("dizest_stream_clients"):
            return int(float(line.split()[-1]))
    raise RuntimeError("/metrics has no dizest_stream_clients")


def replay(server: Server, run_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    from dizest_api.client import Client

    token = headers["Authorization"].split()[1]
    return list(Client(server.base, token).events(run_id))


def watchers(server: Server, clients: int) -> list[dict[str, str]]:
    """Bearer headers of enough admins (they may read the bench's run) for `clients` streams:
    one user may hold only a share of a process's streams (`event_hub.streams_per_user`)."""
    share = streams_per_user(server.connections)
    found = [server.admin]
    for i in range(1, -(-clients // share)):
        body = {"username": f"watch{i}", "password": PASSWORD, "role": "admin"}
        status, made, _ = call(server.base, "POST", "/api/v1/users", body, server.admin)
        if status != 201:
            raise RuntimeError(f"add user: {status} {made}")
        found.append(bearer(server.base, f"watch{i}", ("read", "run", "admin")))
    return found


def raise_open_files(wanted: int) -> None:
    """This process holds one socket per client: raise its soft RLIMIT_NOFILE (the server
    raises its own, see gunicorn_app.raise_open_files)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, top), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < wanted:
        raise SystemExit(f"RLIMIT_NOFILE: {wanted} open files needed, hard limit {hard}")


def cpu_line(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
