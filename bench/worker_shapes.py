"""bench_worker's shape rows: tests/data packages through one worker configuration, submit ->
`client.wait()` returned, checked; the run's own span on the Redis clock, the report read, and
the CPU of every component of the workers' trees per flow run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from common import Target, fmt, med, table
from makespan import run_span
from packages import expected, package_path
from worker_cluster import COMPONENTS, Cluster, cpu_delta, cpu_snapshot
from worker_runs import check_report, run_events, submit_wait, submit_wait_at

from dizest_worker.client import Client

THROUGHPUT_SHAPES = ("dag1000", "wide1000")
MIN_RUNS = 3
TARGETS = {"dag1000": Target(5.0, "s"), "wide1000": Target(5.0, "s")}


@dataclass
class ShapeRow:
    config: str
    shape: str
    flows: int = 0
    times: list[float] = field(default_factory=list)
    spans: list[float] = field(default_factory=list)  # first event -> final event (Redis)
    after_final: list[float] = field(default_factory=list)  # final event -> wait() returned
    ideal_s: float | None = None
    cpu_s: dict[str, float] = field(default_factory=dict)  # summed over the timed runs
    timed_wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    note: str = ""
    # CPU ms of Client.get of the last run, finished: folded afresh / read again (cached fold)
    report_ms: tuple[float, float] | None = None

    @property
    def median(self) -> float:
        return med(self.times)


def bench_shape(cluster: Cluster, row: ShapeRow, repeat: int, budget_s: float) -> None:
    client = cluster.client
    assert client is not None
    exp = expected(row.shape)
    row.flows = exp["flows"]
    want = exp.get("values") or exp["sinks"]
    path = str(package_path(row.shape))
    _, _, report = submit_wait(client, path)  # warm-up
    row.failures += [f"warm-up: {b}" for b in check_report(report, want, exp["output_name"])[:3]]
    before = cpu_snapshot(cluster)
    started = time.perf_counter()
    for i in range(repeat):
        if budget_s and i >= MIN_RUNS and time.perf_counter() - started > budget_s:
            row.note = f"{i} of {repeat} runs (row budget {budget_s:g} s)"
            break
        run_id, elapsed, returned, report = submit_wait_at(client, path)
        row.times.append(elapsed)
        events = run_events(client, run_id)
        row.spans.append(run_span(events))
        row.after_final.append(returned - events[-1].ts)
        bad = check_report(report, want, exp["output_name"])
        row.failures += [f"run {i + 1}: {b}" for b in bad[:3]]
    row.cpu_s = cpu_delta(before, cpu_snapshot(cluster))
    row.timed_wall_s = time.perf_counter() - started
    if row.times:
        row.report_ms = report_reads(client, run_id)
    row.ideal_s = exp.get("ideal_s") or None
    slots = sum(w.concurrency for w in cluster.config.workers)
    if row.shape == "fan5_sleep" and slots < 5:
        row.note = f"{slots}-slot ideal {exp.get(f'ideal_{slots}_workers_s')} s"


def report_reads(client: Client, run_id: str, n: int = 5) -> tuple[float, float]:
    """Median CPU ms of reading a finished run's report: folded afresh (what every read cost
    before dizest_worker.reports), then read again (the fold cached: what a poller pays)."""

    def cpu_ms(fresh: bool) -> float:
        if fresh:
            client.reports.forget(run_id)
        started = time.process_time()
        client.get(run_id)
        return 1000 * (time.process_time() - started)

    return med([cpu_ms(True) for _ in range(n)]), med([cpu_ms(False) for _ in range(n)])


def print_shapes(rows: list[ShapeRow]) -> None:
    print(
        "1. shapes: submit -> client.wait() returned, s; run s: first -> final event (Redis "
        "clock); get s: final event -> wait() returned (the report fold of Client.get)"
    )
    head = ["cfg", "shape", "runs", "median s", "min", "max", "run s", "get s", "ideal s"]
    head.append("ratio")
    head += ["flows/s", "check", "target", "goal", "note"]
    lines = []
    for r in rows:
        target = TARGETS.get(r.shape)
        ratio = r.median / r.ideal_s if r.ideal_s else None
        rate = r.flows / r.median if r.shape in THROUGHPUT_SHAPES and r.times else None
        lines.append(
            [
                r.config,
                r.shape,
                str(len(r.times)),
                fmt(r.median),
                fmt(min(r.times) if r.times else None),
                fmt(max(r.times) if r.times else None),
                fmt(med(r.spans)),
                fmt(med(r.after_final)),
                fmt(r.ideal_s),
                f"{ratio:.2f}x" if ratio else "-",
                f"{rate:.0f}" if rate else "-",
                "FAILED" if r.failures else "ok",
                target.text() if target else "",
                target.verdict(r.median) if target else "",
                r.note,
            ]
        )
    table(head, lines)
    reads = [
        f"{r.config} {r.shape} {r.report_ms[0]:.1f} / {r.report_ms[1]:.1f}"
        for r in rows
        if r.report_ms
    ]
    if reads:
        print(
            "   a finished run's report read, CPU ms, folded afresh / read again:", "; ".join(reads)
        )
    print("\n   CPU ms per flow run over the timed runs (all workers of the config):")
    head = ["cfg", "shape", *COMPONENTS, "total", "floor s", "other load"]
    lines = []
    for r in rows:
        runs = len(r.times) * r.flows
        if not runs or not r.cpu_s:
            continue
        per = {k: 1000 * r.cpu_s[k] / runs for k in COMPONENTS}
        total = sum(per.values())
        floor = total * r.flows / 1000 / (os.cpu_count() or 1)
        other = r.cpu_s["machine"] - sum(r.cpu_s[k] for k in COMPONENTS)
        capacity = r.timed_wall_s * (os.cpu_count() or 1)
        lines.append(
            [
                r.config,
                r.shape,
                *(f"{per[k]:.2f}" for k in COMPONENTS),
                f"{total:.2f}",
                f"{floor:.2f}",
                f"{100 * max(0.0, other) / capacity:.0f}%" if capacity else "-",
            ]
        )
    table(head, lines)
    print(
        "   flows: CPU of the flow children (reaped by the zygotes); redis: the server's INFO cpu "
        "(shared with anything else using it);\n   client: this process; floor: flows x total / "
        "CPUs, the least wall time this CPU allows; other load: CPU used by other processes "
        "of\n   the machine during the timed runs, % of all CPUs (above ~10 %, wall times are "
        "noisy)"
    )
