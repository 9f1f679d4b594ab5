"""API CPU per SSE connect of two checkouts side by side: both `dizest serve`s up at once.

On a shared 2-core VM the CPU a connect costs moves by a third within minutes (another tenant
on the other core), so two benches run one after the other compare two machines more than two
trees. This one starts one `dizest serve` from each checkout (as `sse_connect.py` does: one API
process, embedded Redis, the gated run every client replays), then sends `--clients` connects
to one, then the other, round after round (the order swapped every round), and prints each
server's API CPU per connect (median of the rounds, and each round's) and wall time per round.

    .venv/bin/python bench/sse_pair.py /path/to/checkout-a /path/to/checkout-b [--clients 500]
        [--rounds 8] [--one-at-a-time]

Each checkout needs its `.venv` only for the bench itself: the servers run `python -m
dizest_cli serve` with the checkout as working directory (its packages first on sys.path).
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
from collections.abc import Iterator
from pathlib import Path

import api_server
from api_fanout import gated_run, sse_request
from api_server import Server, cpu_by_role, raise_open_files, watchers
from sse_connect import connect


@contextlib.contextmanager
def serving_from(checkout: Path, tmp: Path, connections: int) -> Iterator[Server]:
    """`api_server.serving`, with `checkout` as the server's working directory."""
    root, api_server.ROOT = api_server.ROOT, checkout
    try:
        with api_server.serving(tmp, 128, connections) as server:
            api_server.ROOT = root
            yield server
    finally:
        api_server.ROOT = root


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("checkouts", nargs=2, type=Path)
    ap.add_argument("--clients", type=int, default=500, help="connects per round and server")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--one-at-a-time", action="store_true", help="not in a burst")
    args = ap.parse_args()
    connections = max(1000, args.rounds * args.clients + 256)
    raise_open_files(2 * connections + 512)
    cpu: dict[Path, list[float]] = {c: [] for c in args.checkouts}
    wall: dict[Path, list[float]] = {c: [] for c in args.checkouts}
    with contextlib.ExitStack() as stack:
        servers, requests, held = {}, {}, {}
        for checkout in args.checkouts:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dizest-pair-")))
            server = stack.enter_context(serving_from(checkout.resolve(), tmp, connections))
            run_id, _gate = gated_run(server, lines=1, interval=0.01)  # never opened
            path = f"/api/v1/runs/{run_id}/events"
            servers[checkout] = server
            requests[checkout] = [
                sse_request(server, path, h) for h in watchers(server, connections)
            ]
            held[checkout] = connect(server, requests[checkout], 10, False, 0)  # streamed here
            stack.callback(close_all, held[checkout])  # grows in place: all of them
        load = os.getloadavg()[0]
        for i in range(args.rounds):
            for checkout in args.checkouts if i % 2 == 0 else args.checkouts[::-1]:
                server, first = servers[checkout], len(held[checkout])
                before, t0 = cpu_by_role(server), time.perf_counter()
                held[checkout] += connect(
                    server, requests[checkout], args.clients, not args.one_at_a_time, first
                )
                wall[checkout].append(time.perf_counter() - t0)
                cpu[checkout].append((cpu_by_role(server)["api"] - before["api"]) / args.clients)
    mode = "one at a time" if args.one_at_a_time else "in a burst"
    print(
        f"{args.clients} connects {mode}, {args.rounds} rounds per server, "
        f"load avg {load:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    for checkout in args.checkouts:
        each = " ".join(f"{c * 1e3:.2f}" for c in cpu[checkout])
        print(
            f"{checkout}: API {statistics.median(cpu[checkout]) * 1e3:.2f} ms CPU a connect "
            f"(rounds: {each}), {statistics.median(wall[checkout]):.2f} s a round"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
