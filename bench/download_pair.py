"""Answers' cost in two checkouts side by side: both `dizest serve`s up at once (`sse_pair.py`).

Per server: a drive file of `--mb` (written with `sendfile`), a stored workflow whose package is
as large (JSON, written with `sendall`: `tests/large_answers.py`), and small
answers (`GET /healthz`, a new connection each). Round after round (the order swapped every
round), each server is asked `--downloads` times for each large answer, read as fast as the
bench reads, and `--small` times for the small one; printed: per kind and server, the median
over the rounds of the wall time and the API CPU an answer takes.

    .venv/bin/python bench/download_pair.py /path/to/checkout-a /path/to/checkout-b
        [--rounds 6] [--downloads 5] [--small 300] [--mb 8]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from api_server import ROOT, Server, cpu_by_role
from sse_pair import serving_from

sys.path.insert(0, str(ROOT))
from tests.large_answers import large_answers


def fetch(server: Server, path: str, headers: dict[str, str]) -> int:
    """One GET on a new connection, read to its end; its body's length."""
    with socket.create_connection((server.host, server.port)) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{head}\r\n".encode())
        got = 0
        while data := sock.recv(1 << 20):
            got += len(data)
        return got


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("checkouts", nargs=2, type=Path)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--downloads", type=int, default=5, help="of each large answer, a round")
    ap.add_argument("--small", type=int, default=300, help="small answers a round")
    ap.add_argument("--mb", type=int, default=8, help="of each large answer")
    args = ap.parse_args()
    size = args.mb << 20
    kinds = ("file", "package", "small")
    wall: dict[tuple[Path, str], list[float]] = {}
    cpu: dict[tuple[Path, str], list[float]] = {}
    with contextlib.ExitStack() as stack:
        servers, paths = {}, {}
        for checkout in args.checkouts:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dizest-dl-")))
            servers[checkout] = stack.enter_context(serving_from(checkout.resolve(), tmp, 1000))
            paths[checkout] = large_answers(servers[checkout].base, servers[checkout].admin, size)
        load = os.getloadavg()[0]
        for i in range(args.rounds):
            for checkout in args.checkouts if i % 2 == 0 else args.checkouts[::-1]:
                server = servers[checkout]
                for kind in kinds:
                    path = "/healthz" if kind == "small" else paths[checkout][kind]
                    headers = {} if kind == "small" else server.admin
                    times = args.small if kind == "small" else args.downloads
                    before, t0 = cpu_by_role(server)["api"], time.perf_counter()
                    for _ in range(times):
                        fetch(server, path, headers)
                    took = time.perf_counter() - t0
                    wall.setdefault((checkout, kind), []).append(took / times)
                    used = cpu_by_role(server)["api"] - before
                    cpu.setdefault((checkout, kind), []).append(used / times)
        print(f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
        for kind in kinds:
            for checkout in args.checkouts:
                walls, cpus = wall[(checkout, kind)], cpu[(checkout, kind)]
                print(
                    f"{kind:8} {checkout}: wall {statistics.median(walls) * 1000:.2f} ms, "
                    f"API CPU {statistics.median(cpus) * 1000:.2f} ms an answer (rounds, wall: "
                    f"{' '.join(f'{w * 1000:.1f}' for w in walls)}; CPU: "
                    f"{' '.join(f'{c * 1000:.2f}' for c in cpus)})"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
