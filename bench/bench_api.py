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
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_fanout import bench_fanout, print_fanout
from api_server import raise_open_files, serving
from api_submits import bench_idle_submits, bench_submits, print_idle, print_submits
from common import load_change


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
        f"{load_change(load)}"
    )
    if "fanout" in results:
        print_fanout(results["fanout"], load)
        failed |= bool(results["fanout"]["failed_clients"])
    if "idle" in results:
        print_idle(results["idle"])
        failed |= bool(results["idle"]["failures"])
    if "submit" in results:
        print_submits(results["submit"])
        failed |= bool(results["submit"]["failures"])
    for part in ("idle", "submit"):
        for failure in results.get(part, {}).get("failures", [])[:10]:
            print(f"!!! {part}: {failure}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
