"""API benchmark: one run's live events fanned out to many SSE clients, and many users submitting.

    .venv/bin/python bench/bench_api.py                       # 1000 SSE clients; 100 runs, 10 users
    .venv/bin/python bench/bench_api.py --clients 200 --runs-per-user 5 --json out.json

It starts `dizest serve` itself (one API process, `--threads` per process, its embedded Redis and
one `dizest worker -c 2`, all on 127.0.0.1 under a temporary data dir) and stops it at the end.

1. **fan-out**: a run whose one flow waits for a gate file, then prints `--lines` lines
   `--interval` s apart. `--clients` SSE connections (asyncio, HTTP/1.1, bearer token) follow
   `/api/v1/runs/{id}/events`; once `/metrics` counts them all connected, the gate opens. Every
   client must receive the run's whole event stream (the same ids as a replay after the end,
   exactly once, in order, ending with the final `workflow.status`). Latency of a live event at a
   client = its arrival (`time.time()` after the read) - the event's `ts` (Redis `TIME` when it
   was emitted; one clock, the same machine). Target p99 <= 100 ms.
2. **submit**: `--users` users (made through the API) each submit `--runs-per-user` runs of a
   3-flow no-op chain at the same moment (one thread per run). Per run: the POST's latency, and
   submit -> its first `flow.status running` (that event's `ts` - the time just before the POST);
   every run must end `ready` with the right value. Before that, `--idle-runs` runs one at a time
   on the idle server give the unqueued submit -> first running.

CPU seconds of the API process, the worker's process tree, Redis and this process are printed
per part: on 2 cores they all compete, and the bench's own clients are not free.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_dag import app_dict, connect, flow_dict, package_dict

from dizest_api.event_hub import streams_per_user

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = secrets.token_urlsafe(16)
CLK_TCK = os.sysconf("SC_CLK_TCK")

GATE_CODE = """\
import os, time
deadline = time.time() + 300
while not os.path.exists(gate):
    if time.time() > deadline:
        raise TimeoutError("the bench never opened the gate")
    time.sleep(0.005)
for i in range(int(lines)):
    print("line", i, flush=True)
    time.sleep(float(interval))
dizest.output("v", int(lines))
"""


# ----------------------------------------------------------------------------- the server


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


def session_members(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid or int(fields[2]) == sid:  # session or process group
                pids.append(int(entry))
    return pids


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def cpu_s(pid: int) -> float:
    """utime + stime + reaped children's, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / CLK_TCK


def sys_s(pid: int) -> float:
    """stime alone (the kernel's share: sockets, futexes), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return int(fields[12]) / CLK_TCK


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


# ----------------------------------------------------------------------------- SSE clients


@dataclass
class Received:
    """One SSE client: the bytes it got with their arrival times, parsed after the run into
    event ids and times (parsing as they arrive cost this process ~10 us a delivery, more than
    the server spends: at 5000 clients the bench was what limited the latency it measured)."""

    ids: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    reads: list[tuple[float, bytes]] = field(default_factory=list)
    error: str | None = None
    ended: bool = False
    connected: bool = False
    head: bytes = b""

    def feed(self, data: bytes, now: float) -> None:
        """Bytes of the response as they arrive: the status line is checked at once, the rest
        kept. The response's last chunk (the server ends it after the final event) ends it."""
        if not self.connected:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            status, _, data = self.head.partition(b"\r\n\r\n")
            if b" 200 " not in status.split(b"\r\n", 1)[0]:
                raise RuntimeError(status.split(b"\r\n", 1)[0].decode(errors="replace"))
            self.connected = True
        self.reads.append((now, data))
        self.ended = data.endswith(LAST_CHUNK)

    def parse(self) -> None:
        """Every message sits whole in one chunk (the server writes one per event), so
        chunk-size lines never split one: only `id: ` lines and the final status need finding.
        An event's time is that of the read that completed it."""
        carry, final = b"", False
        for now, data in self.reads:
            *messages, carry = (carry + data).split(b"\n\n")
            for message in messages:
                at = message.find(b"id: ")
                if at < 0:
                    continue  # a comment (preamble, heartbeat) or chunk framing
                self.ids.append(message[at + 4 : message.index(b"\n", at)].decode())
                self.times.append(now)
                final = final or is_final(message)
        self.ended = final
        self.reads.clear()


LAST_CHUNK = b"0\r\n\r\n"
FINAL_STATUSES = tuple(f'"status":"{s}"'.encode() for s in ("ready", "error", "cancelled"))


def is_final(message: bytes) -> bool:
    return b"event: workflow.status" in message and any(s in message for s in FINAL_STATUSES)


class Clients:
    """N SSE connections read by one selector loop in a thread (much cheaper per message than
    asyncio streams: the bench must not be what limits the measured latency)."""

    def __init__(self, server: Server, path: str, users: list[dict[str, str]], n: int) -> None:
        requests = [sse_request(server, path, headers) for headers in users]
        self.results = [Received() for _ in range(n)]
        self.selector = selectors.DefaultSelector()
        for i, out in enumerate(self.results):
            sock = socket.create_connection((server.host, server.port), timeout=30)
            sock.sendall(requests[i % len(requests)])
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, out)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        open_ = len(self.results)
        # Read into one buffer, keep exact-size copies: a 256 kB recv() each is an mmap of its
        # own in glibc, and kept reads of 5000 clients ran out of mappings (vm.max_map_count).
        buffer = memoryview(bytearray(262144))
        while open_:
            for key, _ in self.selector.select(timeout=1.0):
                out: Received = key.data
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = bytes(buffer[: sock.recv_into(buffer)])
                    if data:
                        out.feed(data, time.time())
                    else:
                        out.error = out.error or ("closed early" if not out.ended else None)
                except Exception as exc:
                    out.error = f"{type(exc).__name__}: {exc}"
                if out.ended or out.error or not data:
                    self.selector.unregister(sock)
                    sock.close()
                    open_ -= 1

    def connected(self) -> int:
        return sum(r.connected or r.error is not None for r in self.results)


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def gated_run(server: Server, lines: int, interval: float) -> tuple[str, Path]:
    """Submit a run whose one flow waits for its gate file, then prints `lines` lines
    `interval` s apart; return the run id and the gate's path (touch it to open)."""
    # The gate is a file in the run's own working directory: a sandboxed flow sees nothing
    # else of the machine (its /tmp is its own).
    app = app_dict("gate", GATE_CODE)
    app["inputs"] = [{"type": "variable", "name": n} for n in ("gate", "lines", "interval")]
    package = package_dict("fan-out", "", {"gate": app}, {"g": flow_dict("g", "gate", 0)})
    inputs = {"gate": "open", "lines": lines, "interval": interval}
    status, run, _ = call(server.base, "POST", "/api/v1/runs", {"package": package, "inputs": inputs}, server.admin)  # fmt: skip
    if status != 201:
        raise RuntimeError(f"submit: {status} {run}")
    assert server.data is not None
    return run["run_id"], server.data / "runs" / run["run_id"] / "open"


def sse_request(server: Server, path: str, headers: dict[str, str]) -> bytes:
    """The bytes of a GET of an SSE stream (HTTP/1.1, as a browser's EventSource sends it)."""
    head = f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "Accept: text/event-stream\r\n\r\n").encode()


def bench_fanout(server: Server, clients: int, lines: int, interval: float) -> dict[str, Any]:
    run_id, gate = gated_run(server, lines, interval)
    path = f"/api/v1/runs/{run_id}/events"
    before = cpu_by_role(server)
    api_rss_kb = sum(rss(p) for p in server.pids()["api"])
    t0 = time.perf_counter()
    group = Clients(server, path, watchers(server, clients), clients)
    results = group.results
    deadline = time.monotonic() + 120
    while group.connected() < clients:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {group.connected()} of {clients} clients connected")
        time.sleep(0.05)
    connect_s = time.perf_counter() - t0
    while stream_clients(server) < clients - sum(r.error is not None for r in results):
        if time.monotonic() > deadline:
            raise RuntimeError("the server never counted every client")
        time.sleep(0.05)
    timing = {"connect_s": connect_s, "subscribed_s": time.perf_counter() - t0}
    subscribed = cpu_by_role(server)
    rss_kb = {role: sum(rss(p) for p in pids) for role, pids in server.pids().items()}
    timing["opened"] = time.time()
    gate.touch()
    group.thread.join(timeout=120 + lines * interval)
    timing["run_s"] = time.time() - timing["opened"]
    after = cpu_by_role(server)
    for r in results:
        r.parse()
    reference = replay(server, run_id, server.admin)
    ref_ids = [e["id"] for e in reference]
    ts = {e["id"]: float(e["ts"]) for e in reference}
    bad = [r for r in results if r.error or not r.ended or r.ids != ref_ids]
    latencies = []
    spread: dict[str, tuple[float, float]] = {}  # event id -> first and last delivery
    for r in results:
        for event_id, t in zip(r.ids, r.times, strict=False):
            if ts.get(event_id, 0) >= timing["opened"]:
                latencies.append(t - ts[event_id])
                lo, hi = spread.get(event_id, (t, t))
                spread[event_id] = (min(lo, t), max(hi, t))
    gate.unlink(missing_ok=True)
    return {
        "clients": clients,
        "events": len(ref_ids),
        "live_events": sum(1 for i in ref_ids if ts[i] >= timing["opened"]),
        "deliveries": len(latencies),
        "failed_clients": len(bad),
        "first_failure": next((f"{r.error} ended={r.ended} got={len(r.ids)}" for r in bad), None),
        "connect_s": timing["connect_s"],
        "subscribed_s": timing["subscribed_s"],
        "run_s": timing["run_s"],
        "p50_ms": 1000 * pct(latencies, 50),
        "p95_ms": 1000 * pct(latencies, 95),
        "p99_ms": 1000 * pct(latencies, 99),
        "max_ms": 1000 * max(latencies, default=float("nan")),
        "spread_p50_ms": 1000 * pct([hi - lo for lo, hi in spread.values()], 50),
        "cpu_s": {k: after[k] - before.get(k, 0.0) for k in after},
        "connect_cpu_s": {k: subscribed[k] - before.get(k, 0.0) for k in subscribed},
        "live_cpu_s": {k: after[k] - subscribed.get(k, 0.0) for k in after},
        "rss_mb": {k: v / 1024 for k, v in rss_kb.items()},
        "api_kb_per_client": (rss_kb["api"] - api_rss_kb) / clients,
    }


def rss(pid: int) -> int:
    """VmRSS in kB (0 if gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


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


# ----------------------------------------------------------------------------- submits


def chain_package(n: int = 3) -> dict[str, Any]:
    apps = {"src": app_dict("src", "v = 1"), "inc": app_dict("inc", "v = dizest.input('x') + 1", ["x"])}  # fmt: skip
    flows = {f"c{i}": flow_dict(f"c{i}", "inc" if i else "src", i, ["x"] if i else []) for i in range(n)}  # fmt: skip
    for i in range(1, n):
        connect(flows, f"c{i - 1}", f"c{i}")
    return package_dict("chain", "", apps, flows)


def first_running(events: list[dict[str, Any]]) -> float:
    return min(
        float(e["ts"])
        for e in events
        if e["type"] == "flow.status" and e["data"].get("status") == "running"
    )


def check_run(server: Server, run_id: str, headers: dict[str, str], n: int) -> str | None:
    status, report, _ = call(server.base, "GET", f"/api/v1/runs/{run_id}", headers=headers)
    if status != 200 or report["status"] != "ready":
        return f"{run_id}: {status} {report.get('status')}"
    if report["flows"][f"c{n - 1}"]["outputs"] != {"v": n}:
        return f"{run_id}: wrong output {report['flows'][f'c{n - 1}']['outputs']}"
    return None


def submit_one(server: Server, headers: dict[str, str], package: Any) -> tuple[str, float, float]:
    t0 = time.time()
    status, run, _ = call(server.base, "POST", "/api/v1/runs", {"package": package}, headers)
    t1 = time.time()
    if status != 201:
        raise RuntimeError(f"submit: {status} {run}")
    return run["run_id"], t0, t1


def bench_idle_submits(server: Server, runs: int) -> dict[str, Any]:
    package, failures, to_running, posts = chain_package(), [], [], []
    for _ in range(runs):
        run_id, t0, t1 = submit_one(server, server.admin, package)
        events = replay(server, run_id, server.admin)
        to_running.append(first_running(events) - t0)
        posts.append(t1 - t0)
        failures.append(check_run(server, run_id, server.admin, 3))
    return {
        "runs": runs,
        "post_p50_ms": 1000 * pct(posts, 50),
        "first_running_p50_ms": 1000 * pct(to_running, 50),
        "first_running_max_ms": 1000 * max(to_running),
        "failures": [f for f in failures if f],
    }


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


def bench_submits(server: Server, users: int, per_user: int) -> dict[str, Any]:
    tokens = []
    for i in range(users):
        name = f"bench{i}"
        body = {"username": name, "password": PASSWORD}
        status, made, _ = call(server.base, "POST", "/api/v1/users", body, server.admin)
        if status != 201:
            raise RuntimeError(f"add user: {status} {made}")
        tokens.append(bearer(server.base, name))
    package = chain_package()
    barrier = threading.Barrier(users * per_user)
    done: list[tuple[dict[str, str], str, float, float]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(headers: dict[str, str]) -> None:
        barrier.wait()
        try:
            run_id, t0, t1 = submit_one(server, headers, package)
        except Exception as exc:
            with lock:
                errors.append(str(exc))
            return
        with lock:
            done.append((headers, run_id, t0, t1))

    before = cpu_by_role(server)
    started = time.time()
    threads = [
        threading.Thread(target=one, args=(tokens[i % users],)) for i in range(users * per_user)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    to_running, last_final = [], 0.0
    for headers, run_id, t0, _ in done:
        events = replay(server, run_id, headers)
        to_running.append(first_running(events) - t0)
        last_final = max(last_final, float(events[-1]["ts"]))
        failure = check_run(server, run_id, headers, 3)
        if failure:
            errors.append(failure)
    after = cpu_by_role(server)
    posts = [t1 - t0 for _, _, t0, t1 in done]
    return {
        "users": users,
        "runs": users * per_user,
        "accepted": len(done),
        "post_p50_ms": 1000 * pct(posts, 50),
        "post_p95_ms": 1000 * pct(posts, 95),
        "post_max_ms": 1000 * max(posts, default=float("nan")),
        "first_running_p50_ms": 1000 * pct(to_running, 50),
        "first_running_p95_ms": 1000 * pct(to_running, 95),
        "first_running_max_ms": 1000 * max(to_running, default=float("nan")),
        "all_done_s": last_final - started,
        "failures": errors,
        "cpu_s": {k: after[k] - before.get(k, 0.0) for k in after},
    }


# ----------------------------------------------------------------------------- main


def cpu_line(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--clients", type=int, default=1000, help="SSE clients on one run")
    ap.add_argument("--lines", type=int, default=100, help="log lines the fan-out run prints")
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between those lines")
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--runs-per-user", type=int, default=10)
    ap.add_argument("--idle-runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=128, help="API threads (dizest serve's default)")
    ap.add_argument("--only", default="fanout,idle,submit")
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--keep-log", type=Path, help="copy the server's log here at the end")
    args = ap.parse_args(argv)
    parts = set(args.only.split(","))
    threads = args.threads
    connections = max(1000, args.clients + 256)  # --connections also caps streams per process
    raise_open_files(args.clients + 256)
    results: dict[str, Any] = {}
    failed = False
    load = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dizest-bench-api-")))
        server = stack.enter_context(serving(tmp, threads, connections, args.keep_log))
        if "fanout" in parts:
            print(f"fan-out: {args.clients} SSE clients ...", file=sys.stderr)
            results["fanout"] = bench_fanout(server, args.clients, args.lines, args.interval)
        if "idle" in parts:
            print(f"idle: {args.idle_runs} runs one at a time ...", file=sys.stderr)
            results["idle"] = bench_idle_submits(server, args.idle_runs)
        if "submit" in parts:
            print(f"submit: {args.users} users x {args.runs_per_user} runs ...", file=sys.stderr)
            results["submit"] = bench_submits(server, args.users, args.runs_per_user)
    print(
        f"\ndizest API benchmark - Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"one API process (gunicorn gthread, {threads} threads), embedded Redis, one worker -c 2, "
        f"load avg {load:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    if "fanout" in results:
        f = results["fanout"]
        goal = "PASS" if f["p99_ms"] <= 100 and not f["failed_clients"] else "MISS"
        connect_goal = "PASS" if f["connect_s"] <= 5 else "MISS"
        per_delivery = f["live_cpu_s"]["api"] / max(1, f["deliveries"]) * 1e6
        per_connect = f["connect_cpu_s"]["api"] / f["clients"] * 1e3
        print(
            f"\nfan-out: {f['clients']} SSE clients, {f['events']} events per client "
            f"({f['live_events']} live, {f['deliveries']} live deliveries)\n"
            f"  connect all {f['connect_s']:.2f} s, all subscribed {f['subscribed_s']:.2f} s, "
            f"run {f['run_s']:.2f} s\n"
            f"  latency ms: p50 {f['p50_ms']:.1f}  p95 {f['p95_ms']:.1f}  p99 {f['p99_ms']:.1f}  "
            f"max {f['max_ms']:.1f}   (first -> last client of an event, p50: "
            f"{f['spread_p50_ms']:.1f})   target p99 <= 100 ms  {goal}\n"
            f"  clients with a wrong or incomplete stream: {f['failed_clients']}"
            + (f" (first: {f['first_failure']})" if f["first_failure"] else "")
            + f"\n  CPU s: {cpu_line(f['cpu_s'])}"
            + f"\n  CPU s while connecting: {cpu_line(f['connect_cpu_s'])}"
            + f"\n  CPU s live: {cpu_line(f['live_cpu_s'])}"
            + f"\n  API: {per_connect:.2f} ms CPU per connect, {per_delivery:.1f} us CPU per live "
            f"delivery, {f['api_kb_per_client']:.0f} kB RSS per client; RSS MB with every "
            "client connected: " + ", ".join(f"{k} {v:.0f}" for k, v in f["rss_mb"].items())
        )
        print(
            f"\nTARGET SSE {f['clients']} clients on one API process: every event delivered "
            f"{'yes' if not f['failed_clients'] else 'NO'}, p99 {f['p99_ms']:.1f} ms (<= 100) "
            f"{goal}, connect all {f['connect_s']:.2f} s (<= 5) {connect_goal}   "
            f"load avg {load:.2f} -> {os.getloadavg()[0]:.2f}"
        )
        failed |= bool(f["failed_clients"])
    if "idle" in results:
        i = results["idle"]
        print(
            f"\nidle server, {i['runs']} runs one at a time: POST p50 {i['post_p50_ms']:.1f} ms, "
            f"submit -> first flow running p50 {i['first_running_p50_ms']:.1f} ms "
            f"(max {i['first_running_max_ms']:.1f})"
        )
        failed |= bool(i["failures"])
    if "submit" in results:
        s = results["submit"]
        print(
            f"\n{s['runs']} runs submitted at once by {s['users']} users "
            f"({s['accepted']} accepted, 3-flow chains):\n"
            f"  POST ms: p50 {s['post_p50_ms']:.0f}  p95 {s['post_p95_ms']:.0f}  "
            f"max {s['post_max_ms']:.0f}\n"
            f"  submit -> first flow running ms: p50 {s['first_running_p50_ms']:.0f}  "
            f"p95 {s['first_running_p95_ms']:.0f}  max {s['first_running_max_ms']:.0f}\n"
            f"  all {s['runs']} done {s['all_done_s']:.2f} s after the first POST\n"
            f"  CPU s: {cpu_line(s['cpu_s'])}"
        )
        failed |= bool(s["failures"])
    for part in ("idle", "submit"):
        for failure in results.get(part, {}).get("failures", [])[:10]:
            print(f"!!! {part}: {failure}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
