"""API CPU per SSE connect: one client at a time, and in a burst (issue 12's connect target).

`bench_api.py --only fanout` times 5,000 clients connecting at once; this script asks why one
connect costs what it does. It starts `dizest serve` as bench_api does (one API process,
embedded Redis, one worker), submits the gated run (its flow waits, so every client replays the
same few events and stays connected), then opens `--clients` SSE streams:

- `one at a time`: each client sends its request and reads the response head before the next
  connects: no two requests in the API at once, so no lock, GIL or thread-pool contention;
- `burst`: every request sent first, then every response read (the fan-out bench's way);
- `one at a time` again, to show the drift of a noisy machine.

For each: wall time, the API process's CPU per connect with its kernel share, and Redis's. Then,
in this process, what one Redis call costs from Python against a pipeline of the three reads a
connect makes after auth (run record, run index, replay), as three calls and as one
pipeline: what merging them would save.

    .venv/bin/python bench/sse_connect.py [--clients 1000]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis
from api_fanout import gated_run, sse_request
from api_server import Server, cpu_by_role, raise_open_files, serving, watchers

from dizest_api import embedded_redis


def connect(
    server: Server, requests: list[bytes], n: int, burst: bool, first: int
) -> list[socket.socket]:
    """`n` SSE clients on the run (client i sends `requests[i % len]`, counting from `first`);
    returns once each has its response head (200)."""
    socks = []
    for i in range(first, first + n):
        sock = socket.create_connection((server.host, server.port), timeout=60)
        sock.sendall(requests[i % len(requests)])
        socks.append(sock)
        if not burst:
            expect_ok(sock)
    if burst:
        for sock in socks:
            expect_ok(sock)
    return socks


def expect_ok(sock: socket.socket) -> None:
    head = sock.recv(65536)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"stream refused: {head[:200]!r}")


def redis_costs(url: str, calls: int = 3000) -> tuple[float, float]:
    """Microseconds of this process's CPU for the three reads a connect makes after auth (two
    hashes and a stream range) as three calls, and as one pipeline, against the server's Redis;
    alternated, medians of 5 blocks (the machine is noisy)."""
    client = redis.Redis.from_url(url)
    key = "bench:sse_connect"
    client.hset(key, mapping={"status": "running", "owner": "admin"})

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def separate() -> None:
        client.hgetall(key)
        client.hgetall(key)
        client.xrange(f"{key}:events", count=10)

    def pipelined() -> None:
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.hgetall(key)
        pipe.xrange(f"{key}:events", count=10)
        pipe.execute()

    spent: dict[str, list[float]] = {"separate": [], "pipelined": []}
    try:
        for _ in range(5):
            for name, step in (("separate", separate), ("pipelined", pipelined)):
                start = cpu()
                for _ in range(calls // 5):
                    step()
                spent[name].append((cpu() - start) / (calls // 5) * 1e6)
    finally:
        client.delete(key)
    return statistics.median(spent["separate"]), statistics.median(spent["pipelined"])


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--clients", type=int, default=1000, help="clients per pass")
    args = ap.parse_args()
    passes = (("one at a time", False), ("burst", True), ("one at a time", False))
    wanted = len(passes) * args.clients + 256
    raise_open_files(wanted)
    load = os.getloadavg()[0]
    tmp = tempfile.TemporaryDirectory(prefix="dizest-bench-sse-")
    with tmp, serving(Path(tmp.name), 128, max(1000, wanted)) as server:
        run_id, _gate = gated_run(server, lines=1, interval=0.01)  # never opened
        path = f"/api/v1/runs/{run_id}/events"
        users = watchers(server, wanted)  # one user may hold only a share of the streams
        requests = [sse_request(server, path, headers) for headers in users]
        held: list[socket.socket] = []
        try:
            for label, burst in passes:
                before, t0 = cpu_by_role(server), time.perf_counter()
                held += connect(server, requests, args.clients, burst, len(held))
                wall, after = time.perf_counter() - t0, cpu_by_role(server)
                per = {k: (after[k] - before[k]) / args.clients * 1e3 for k in after}
                print(
                    f"{label:>13}: {args.clients} connects in {wall:.2f} s; API "
                    f"{per['api']:.2f} ms CPU a connect (kernel {per['api_sys']:.2f}), "
                    f"Redis {per['redis']:.2f} ms"
                )
        finally:
            for sock in held:
                sock.close()
        url = embedded_redis.locate(Path(tmp.name) / "data")
        separate, pipelined = redis_costs(url) if url else (float("nan"), float("nan"))
    print(
        f"Redis from Python, CPU of the calling process: a connect's three reads after auth as "
        f"three calls {separate:.0f} us, as one pipeline {pipelined:.0f} us   "
        f"load avg {load:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
