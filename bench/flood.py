"""One user's flood of log lines against another user's live view on the same API process.

    .venv/bin/python bench/flood.py [--flows 2] [--lines 262000] [--watchers 2] [--repeat 2]

It starts `dizest serve` as bench_api.py does (one API process, embedded Redis, one worker
-c 2). Per pass: a quiet run printing a line every 20 ms, watched by 3 SSE clients, and a flood
run of `--flows` flows each writing `--lines` short lines as fast as it can (up to the log
budget), watched by `--watchers` clients (0: nobody watches it, the reference). Printed per
pass: the quiet run's live delivery latency (arrival - the event's Redis `TIME`) p50 / p99 /
max while the flood runs, whether each of its clients got its whole stream, and how many events
each flood watcher received against the flood run's stream (capped at the worker's
stream_maxlen) - a flooding run is caught up from its stream (`dizest_api.floods`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_fanout import Clients, gated_run
from api_server import call, replay, serving
from common import rank_pct
from gen_dag import app_dict, flow_dict, package_dict

FLOOD_CODE = """
import sys
n = int(lines)
write = sys.stdout.write
for i in range(n):
    write("x%d\\n" % i)
dizest.output("v", n)
"""


def one_pass(flows: int, lines: int, watchers: int) -> str:
    tmp = tempfile.TemporaryDirectory(prefix="dizest-bench-flood-")
    with tmp, serving(Path(tmp.name), 128, 2000) as server:
        quiet, gate = gated_run(server, lines=200, interval=0.02)
        app = app_dict("flood", FLOOD_CODE)
        app["inputs"] = [{"type": "variable", "name": "lines"}]
        nodes = {f"f{i}": flow_dict(f"f{i}", "flood", i) for i in range(flows)}
        package = package_dict("flood", "", {"flood": app}, nodes)
        viewers = Clients(server, f"/api/v1/runs/{quiet}/events", [server.admin], 3)
        body = {"package": package, "inputs": {"lines": lines}}
        status, run, _ = call(server.base, "POST", "/api/v1/runs", body, server.admin)
        if status != 201:
            raise RuntimeError(f"submit: {status} {run}")
        flood_path = f"/api/v1/runs/{run['run_id']}/events"
        flooders = Clients(server, flood_path, [server.admin], watchers) if watchers else None
        deadline = time.monotonic() + 60
        while not gate.parent.is_dir():  # the quiet run's flow has started
            if time.monotonic() > deadline:
                raise RuntimeError("the quiet run never started")
            time.sleep(0.01)
        gate.touch()
        started = time.time()
        viewers.thread.join(120)
        if flooders is not None:
            flooders.thread.join(300)
        for r in viewers.results + (flooders.results if flooders else []):
            r.parse()
        reference = replay(server, quiet, server.admin)
        ts = {e["id"]: float(e["ts"]) for e in reference}
        latency = [
            t - ts[i]
            for r in viewers.results
            for i, t in zip(r.ids, r.times, strict=False)
            if ts.get(i, 0) >= started
        ]
        whole = all(r.ids == [e["id"] for e in reference] for r in viewers.results)
        stream = len(replay(server, run["run_id"], server.admin))
        got = [len(r.ids) for r in flooders.results] if flooders else []
    return (
        f"flood watchers {watchers}: quiet run p50 {1000 * rank_pct(latency, 50):.1f} ms, "
        f"p99 {1000 * rank_pct(latency, 99):.1f} ms, max {1000 * max(latency):.1f} ms, "
        f"{len(latency)} deliveries, every stream whole: {whole}; flood stream holds {stream} "
        f"events, its watchers got {got}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--flows", type=int, default=2)
    ap.add_argument("--lines", type=int, default=262_000)
    ap.add_argument("--watchers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    for _ in range(args.repeat):
        for watchers in (0, args.watchers):
            load = os.getloadavg()[0]
            line = one_pass(args.flows, args.lines, watchers)
            print(f"{line}   load {load:.2f} -> {os.getloadavg()[0]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
