"""bench_api's fan-out: one run's live events to many SSE clients on one API process, every
client's stream checked whole against a replay, latency = arrival - the event's ts.

The run's one flow waits for a gate file, then prints; the gate opens once /metrics counts every
client connected. The clients are plain sockets read by one selector loop in a thread, parsed
after the run: the bench must not be what limits the latency it measures.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api_server import Server, call, cpu_by_role, cpu_line, replay, stream_clients, watchers
from common import load_change, rank_pct
from gen_dag import app_dict, flow_dict, package_dict
from procfs import rss

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
    while not gate.parent.is_dir():  # the run's folder: made as its flow starts, not at submit
        if time.monotonic() > deadline:
            raise RuntimeError("the run's flow never started")
        time.sleep(0.05)
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
        "p50_ms": 1000 * rank_pct(latencies, 50),
        "p95_ms": 1000 * rank_pct(latencies, 95),
        "p99_ms": 1000 * rank_pct(latencies, 99),
        "max_ms": 1000 * max(latencies, default=float("nan")),
        "spread_p50_ms": 1000 * rank_pct([hi - lo for lo, hi in spread.values()], 50),
        "cpu_s": {k: after[k] - before.get(k, 0.0) for k in after},
        "connect_cpu_s": {k: subscribed[k] - before.get(k, 0.0) for k in subscribed},
        "live_cpu_s": {k: after[k] - subscribed.get(k, 0.0) for k in after},
        "rss_mb": {k: v / 1024 for k, v in rss_kb.items()},
        "api_kb_per_client": (rss_kb["api"] - api_rss_kb) / clients,
    }


def print_fanout(f: dict[str, Any], load: float) -> None:
    """The fan-out's figures, then its TARGET line; `load`: the 1-minute load at the start."""
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
        f"{load_change(load)}"
    )
