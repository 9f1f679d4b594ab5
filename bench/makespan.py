"""Makespan of a 100-flow DAG at 8 slots (issue 12), what both benchmarks share.

The DAG: `gen_dag.make_sleep_dag(100, 100)` (dag100's shape, each flow sleeps a seeded 5-50 ms).
Makespan = the run's first event -> its final `workflow.status`; ratio = makespan / the critical
path (the longest sum of sleeps along a path). Per flow: `start wait` (last parent ready, or the
run's start -> its `running` event) and `overhead` (`running` -> `ready` minus its sleep: what
the engine adds to each flow). Targets: ratio <= 1.25x and overhead p50 <= 3 ms.
`bench_core.py --only makespan` runs it locally (`bench_local`: concurrency 8, containment on);
`bench_worker.py --only makespan` through workers. `list_schedule` is what an ideal dispatcher
reaches on the same DAG, for reading the measured ratio against.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from common import fmt_known, pct, table, verdict  # noqa: E402
from gen_dag import SleepDag, make_sleep_dag  # noqa: E402
from procfs import descendants_cpu_s  # noqa: E402

from dizest_core.events import FLOW_STATUS, WORKFLOW_STATUS, Event  # noqa: E402
from dizest_core.plan import Plan  # noqa: E402
from dizest_core.settings import Settings  # noqa: E402
from dizest_core.workflow import Workflow  # noqa: E402

FLOWS = 100
SEED = 100
SLOTS = 8
RATIO_LIMIT = 1.25  # makespan / critical path
OVERHEAD_LIMIT_MS = 3.0  # per flow, p50
RUN_TIMEOUT_S = 120.0


@dataclass
class MakespanRow:
    config: str
    slots: int = SLOTS
    spans: list[float] = field(default_factory=list)  # first event -> final event, s
    times: list[float] = field(default_factory=list)  # submit -> run returned, s
    critical_path_s: float = 0.0
    critical_path_flows: int = 0
    start_waits: list[float] = field(default_factory=list)  # ms, runnable -> running
    overheads: list[float] = field(default_factory=list)  # ms, running -> ready minus sleep
    waiting_s: float = 0.0  # flow-seconds runnable but not running ...
    waiting_free_s: float = 0.0  # ... of which while a slot was free
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before, after
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per flow run, by process kind
    failures: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def ratio(self) -> float:
        if not self.spans or not self.critical_path_s:
            return math.nan
        return statistics.median(self.spans) / self.critical_path_s

    @property
    def cpu_floor(self) -> float:
        """The makespan / critical path that the CPU alone allows: every flow's CPU spread
        evenly over every core of the machine, nothing else running."""
        cpus = os.cpu_count() or 1
        return FLOWS * sum(self.cpu_ms.values()) / 1000 / cpus / self.critical_path_s

    @property
    def overhead_ms(self) -> float:
        return pct(self.overheads, 50)


def flow_times(events: Sequence[Event]) -> tuple[dict[str, float], dict[str, float]]:
    """Per flow: ts of its (last) `running` and `ready` flow.status events."""
    running: dict[str, float] = {}
    ready: dict[str, float] = {}
    for e in events:
        if e.type == FLOW_STATUS and e.flow_id:
            if e.data.get("status") == "running":
                running[e.flow_id] = e.ts
            elif e.data.get("status") == "ready":
                ready[e.flow_id] = e.ts
    return running, ready


def run_span(events: Sequence[Event]) -> float:
    """Seconds between the run's first event (its creation) and its final workflow.status."""
    final = [e.ts for e in events if e.type == WORKFLOW_STATUS and e.final]
    return final[-1] - events[0].ts if final and events else math.nan


def check_values(dag: SleepDag, report: Mapping[str, Any]) -> list[str]:
    """Every flow ready with its expected `v`."""
    bad = [] if report["status"] == "ready" else [f"run status {report['status']}"]
    flows = report.get("flows", {})
    for flow_id, want in dag.values.items():
        got = flows.get(flow_id, {})
        value = got.get("outputs", {}).get("v")
        if got.get("status") != "ready" or value != want:
            bad.append(f"{flow_id}: {got.get('status')} v={value!r}, want {want}")
    return bad


def account(row: MakespanRow, dag: SleepDag, events: Sequence[Event]) -> None:
    """Where the time beyond the critical path goes: per flow, runnable (last parent ready, or
    run start) -> running, and running -> ready beyond its sleep; and the flow-seconds spent
    runnable-but-not-running while fewer than `row.slots` flows were running."""
    running, ready = flow_times(events)
    t0 = events[0].ts
    marks: list[tuple[float, int, int]] = []  # (ts, d waiting, d running)
    for f, sleep in dag.sleeps.items():
        runnable = max((ready[p] for p in dag.parents[f]), default=t0)
        row.start_waits.append(1000 * (running[f] - runnable))
        row.overheads.append(1000 * (ready[f] - running[f] - sleep))
        marks += [(runnable, 1, 0), (running[f], -1, 1), (ready[f], 0, -1)]
    marks.sort()
    waiting = busy = 0
    last = marks[0][0]
    for ts, d_wait, d_run in marks:
        row.waiting_s += waiting * (ts - last)
        if busy < row.slots:
            row.waiting_free_s += min(waiting, row.slots - busy) * (ts - last)
        last, waiting, busy = ts, waiting + d_wait, busy + d_run


def list_schedule(dag: SleepDag, slots: int, overhead_s: float, longest_first: bool) -> float:
    """The makespan an ideal dispatcher reaches with `slots` flows at a time: a flow starts the
    moment its parents are done and a slot is free (no dispatch delay), occupies its slot for
    its sleep + `overhead_s`; ready flows start in readiness order, or longest remaining path
    (by sleeps) first. A bound on what any dispatch can do here."""
    children: dict[str, list[str]] = {f: [] for f in dag.sleeps}
    for f, parents in dag.parents.items():
        for p in set(parents):
            children[p].append(f)
    rest: dict[str, float] = {}
    for f in reversed(list(dag.sleeps)):  # parents come before children
        rest[f] = dag.sleeps[f] + max((rest[c] for c in children[f]), default=0.0)
    waiting = {f: len(set(ps)) for f, ps in dag.parents.items()}
    ready: list[tuple[float, int, str]] = []
    counter = itertools.count()

    def push(f: str) -> None:
        heapq.heappush(ready, (-rest[f] if longest_first else 0.0, next(counter), f))

    for f in dag.sleeps:
        if not waiting[f]:
            push(f)
    running: list[tuple[float, str]] = []
    now = 0.0
    while ready or running:
        while ready and len(running) < slots:
            f = heapq.heappop(ready)[2]
            heapq.heappush(running, (now + dag.sleeps[f] + overhead_s, f))
        now, f = heapq.heappop(running)
        for c in children[f]:
            waiting[c] -= 1
            if not waiting[c]:
                push(c)
    return now


def overhead_budget_ms(dag: SleepDag, slots: int) -> float:
    """The largest per-flow overhead with which the ideal longest-first dispatch stays within
    RATIO_LIMIT (bisection on `list_schedule`; 0 when even no overhead does not)."""
    lo, hi = 0.0, 50.0
    if list_schedule(dag, slots, 0.0, True) > RATIO_LIMIT * dag.critical_path_s:
        return 0.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if list_schedule(dag, slots, mid / 1000, True) <= RATIO_LIMIT * dag.critical_path_s:
            lo = mid
        else:
            hi = mid
    return lo


def bench_local(
    repeat: int, sandbox: str = "on", orders: tuple[bool, ...] = (True, False)
) -> list[MakespanRow]:
    """The DAG through `Workflow.stream` at concurrency 8: one warm-up, then `repeat` runs per
    row, the rows' runs interleaved (both see the same load). A row per dispatch order in
    `orders`: True = Plan.rank; False = the order flows became ready (Plan.rank patched to a
    constant for its runs), the dispatch before issue 12."""
    dag = make_sleep_dag(FLOWS, SEED)
    rows = {
        by_rank: MakespanRow(f"local c={SLOTS} {_order_name(by_rank)} sandbox {sandbox}")
        for by_rank in orders
    }
    cpu = {by_rank: [0.0, 0.0] for by_rank in orders}  # engine, children
    for row in rows.values():
        row.critical_path_s, row.critical_path_flows = dag.critical_path_s, dag.critical_path_flows
        row.load = (os.getloadavg()[0], 0.0)
    settings = replace(Settings.from_env(), sandbox=sandbox, concurrency=SLOTS)
    rank = Plan.rank
    try:
        with Workflow(dag.package, settings=settings) as wf:
            list(wf.stream(timeout=RUN_TIMEOUT_S))  # warm-up: starts the zygote
            for i in range(repeat):
                for by_rank, row in rows.items():
                    Plan.rank = rank if by_rank else _arrival  # type: ignore[method-assign,assignment]
                    cpu0, kids0 = time.process_time(), descendants_cpu_s()
                    events = list(wf.stream(timeout=RUN_TIMEOUT_S))
                    cpu1, kids1 = time.process_time(), descendants_cpu_s()
                    bad = check_values(dag, wf.runner.report())
                    row.failures += [f"run {i + 1}: {b}" for b in bad[:3]]
                    if bad:
                        continue
                    cpu[by_rank][0] += cpu1 - cpu0
                    cpu[by_rank][1] += kids1 - kids0
                    row.spans.append(run_span(events))
                    row.times.append(events[-1].ts - events[0].ts)
                    account(row, dag, events)
    finally:
        Plan.rank = rank  # type: ignore[method-assign]
    for by_rank, row in rows.items():
        row.load = (row.load[0], os.getloadavg()[0])
        runs = FLOWS * max(1, len(row.spans))
        engine, children = cpu[by_rank]
        row.cpu_ms = {"engine": 1000 * engine / runs, "children": 1000 * children / runs}
    return list(rows.values())


def _arrival(plan: Plan, flow_id: str) -> tuple[int, int]:
    """A rank every flow shares: ReadyQueue then hands flows out in the order they came."""
    return 0, 0


def _order_name(by_rank: bool) -> str:
    return "rank" if by_rank else "arrival"


def print_makespan(rows: list[MakespanRow]) -> None:
    """The table (ratio and overhead beside their targets), then the ideal dispatch bounds."""
    if not rows:
        return
    cp = rows[0]
    print(
        f"\nmakespan, {FLOWS}-flow DAG (gen_dag.make_sleep_dag seed {SEED}), sleeps 5-50 ms; "
        f"critical path {cp.critical_path_s:.3f} s over {cp.critical_path_flows} flows; "
        "makespan = first -> final event"
    )
    head = ["config", "runs", "median s", "min", "max", "ratio", "target", "goal"]
    head += ["overhead p50 ms", "target", "goal", "start wait p50/p90 ms", "free-slot wait"]
    head += ["CPU ms/flow", "CPU floor", "load", "check"]
    lines = []
    for r in rows:
        free = r.waiting_free_s / r.waiting_s if r.waiting_s else math.nan
        over = r.overhead_ms
        lines.append(
            [
                r.config,
                str(len(r.spans)),
                fmt_known(statistics.median(r.spans) if r.spans else math.nan),
                fmt_known(min(r.spans, default=math.nan)),
                fmt_known(max(r.spans, default=math.nan)),
                f"{r.ratio:.2f}x",
                f"<={RATIO_LIMIT:g}x",
                verdict(r.ratio, RATIO_LIMIT),
                fmt_known(over, 1),
                f"<={OVERHEAD_LIMIT_MS:g}",
                verdict(over, OVERHEAD_LIMIT_MS),
                f"{fmt_known(pct(r.start_waits, 50), 1)}/{fmt_known(pct(r.start_waits, 90), 1)}",
                "-" if math.isnan(free) else f"{100 * free:.0f}%",
                " ".join(f"{k} {v:.1f}" for k, v in r.cpu_ms.items()) or "-",
                f"{r.cpu_floor:.2f}x" if r.cpu_ms else "-",
                f"{r.load[0]:.2f}->{r.load[1]:.2f}",
                "FAILED" if r.failures else "ok",
            ]
        )
    table(head, lines)
    dag = make_sleep_dag(FLOWS, SEED)
    measured = [v for r in rows for v in r.overheads]
    overhead_ms = statistics.median(measured) if measured else 0.0
    for slots in sorted({r.slots for r in rows}):
        bounds = []
        for extra in (0.0, overhead_ms / 1000):
            fifo = list_schedule(dag, slots, extra, False) / dag.critical_path_s
            longest = list_schedule(dag, slots, extra, True) / dag.critical_path_s
            bounds.append(f"{fifo:.2f}x / {longest:.2f}x")
        print(
            f"   ideal dispatch at {slots} slots (readiness order / longest path first): "
            f"{bounds[0]} with no per-flow overhead, {bounds[1]} with the measured "
            f"{overhead_ms:.1f} ms per flow"
        )
        budget = overhead_budget_ms(dag, slots)
        print(
            f"   at {slots} slots, longest path first reaches {RATIO_LIMIT:g}x with at most "
            f"{budget:.1f} ms per flow"
        )
    print(
        "   start wait: a flow's last parent ready (or run start) -> its running event; "
        "overhead: running -> ready minus its sleep;\n   free-slot wait: share of the "
        "flow-seconds spent runnable-but-not-running while fewer flows ran than there are "
        "slots; CPU ms/flow: per flow run, by process kind (local: engine = the run loop's\n"
        "   process, children = zygote, spares and flows; workers: engine = main + pool processes,"
        " flows = what the zygotes reaped);\n   CPU floor: flows x CPU ms/flow / CPUs, over the "
        "critical path (what the CPU alone allows on this machine); "
        "load: 1-minute load average before -> after"
    )
