"""Dispatch through workers, flow to flow: the hop between consecutive flows of a no-op chain
(event ts, the Redis clock), and makespan.py's 100-flow DAG on a worker configuration.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field

import makespan
from common import Target, fmt, fmt_known, med, pct, table
from gen_dag import make_sleep_dag
from makespan import MakespanRow, flow_times, run_span
from worker_cluster import Cluster, cpu_delta, cpu_snapshot
from worker_runs import check_report, make_chain, run_events, submit_wait

HOP_FLOWS = 100
HOP_P50 = Target(10.0, "ms")
HOP_P95 = Target(20.0, "ms")


@dataclass
class HopRow:
    config: str
    hops: list[float] = field(default_factory=list)  # ms, ready(i-1) -> ready(i)
    gaps: list[float] = field(default_factory=list)  # ms, ready(i-1) -> running(i)
    durations: list[float] = field(default_factory=list)  # ms, running(i) -> ready(i)
    times: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def bench_hop(cluster: Cluster, row: HopRow, repeat: int) -> None:
    client = cluster.client
    assert client is not None
    package, want = make_chain(HOP_FLOWS)
    ids = list(want)
    submit_wait(client, package)  # warm-up
    for i in range(repeat):
        run_id, elapsed, report = submit_wait(client, package)
        row.times.append(elapsed)
        row.failures += [f"run {i + 1}: {b}" for b in check_report(report, want)[:3]]
        running, ready = flow_times(run_events(client, run_id))
        for prev, cur in itertools.pairwise(ids):
            if prev in ready and cur in ready and cur in running:
                row.hops.append(1000 * (ready[cur] - ready[prev]))
                row.gaps.append(1000 * (running[cur] - ready[prev]))
                row.durations.append(1000 * (ready[cur] - running[cur]))


def bench_makespan(cluster: Cluster, row: MakespanRow, repeat: int) -> None:
    """makespan.py's DAG through the cluster: one warm-up, then `repeat` checked runs."""
    client = cluster.client
    assert client is not None
    dag = make_sleep_dag(makespan.FLOWS, makespan.SEED)
    row.critical_path_s, row.critical_path_flows = dag.critical_path_s, dag.critical_path_flows
    row.slots = sum(w.concurrency for w in cluster.config.workers) * cluster.config.slots
    row.load = (os.getloadavg()[0], 0.0)
    submit_wait(client, dag.package)  # warm-up
    before = cpu_snapshot(cluster)
    for i in range(repeat):
        run_id, elapsed, report = submit_wait(client, dag.package)
        row.times.append(elapsed)
        events = run_events(client, run_id)
        row.spans.append(run_span(events))
        row.failures += [f"run {i + 1}: {b}" for b in check_report(report, dag.values)[:3]]
        if not row.failures:
            makespan.account(row, dag, events)
    cpu = cpu_delta(before, cpu_snapshot(cluster))
    parts = {"engine": cpu["main"] + cpu["pool"], "zygote": cpu["zygote"], "flows": cpu["flows"]}
    parts["redis"] = cpu["redis"]
    row.cpu_ms = {k: 1000 * v / (repeat * makespan.FLOWS) for k, v in parts.items()}
    row.load = (row.load[0], os.getloadavg()[0])


def print_hops(rows: list[HopRow]) -> None:
    print(f"\n2. hop latency, {HOP_FLOWS}-flow no-op chain, from event ts (Redis TIME), ms")
    head = ["cfg", "hops", "p50", "p95", "max", "ready->running", "running->ready"]
    head += ["run s", "check", "target", "goal"]
    lines = []
    for r in rows:
        p50, p95 = pct(r.hops, 50), pct(r.hops, 95)
        t50, t95 = HOP_P50, HOP_P95
        lines.append(
            [
                r.config,
                str(len(r.hops)),
                fmt_known(p50, 1),
                fmt_known(p95, 1),
                fmt_known(max(r.hops) if r.hops else math.nan, 1),
                fmt_known(med(r.gaps), 1),
                fmt_known(med(r.durations), 1),
                fmt(med(r.times)),
                "FAILED" if r.failures else "ok",
                f"p50{t50.text()} p95{t95.text()}",
                f"{t50.verdict(p50)}/{t95.verdict(p95)}",
            ]
        )
    table(head, lines)
