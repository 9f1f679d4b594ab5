"""bench_core's shape rows: one package at one concurrency, run by one local `Workflow` (a cold
first run, then warm runs), checked, timed and set beside its issue target.

Each row's runs are checked against the package's .expected.json; the CPU shapes interleave a
plain-CPython run of the same loop after each engine run (their ideal: the median of those).
"""

from __future__ import annotations

import gc
import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from common import fmt, table
from packages import expected, package_path, run_checked
from procfs import descendants_cpu_s

from dizest_core.settings import Settings
from dizest_core.workflow import Workflow

SLEEP_SHAPES = ("chain10_sleep", "fan5_sleep")
ALSO_AT_8 = ("dag1000", "wide1000")
MIN_RUNS = 3


@dataclass(frozen=True)
class Target:
    """A goal from the issue: median seconds (or ratio to ideal, or MB) at most `limit`."""

    limit: float
    unit: str  # "s", "x" (median / ideal) or "MB"
    dizest: str

    def text(self) -> str:
        return f"<={self.limit:g}{self.unit} (DIZEST {self.dizest})"

    def verdict(self, value: float | None) -> str:
        if value is None:
            return "?"
        return "PASS" if value <= self.limit else "MISS"


TARGETS = {  # issue 12's where it set one (fan5_sleep, cpu_loop, cpu2_parallel), else earlier
    "chain10_sleep": Target(1.08, "s", "1.41"),
    "fan5_sleep": Target(1.06, "s", "1.11"),
    "dag1000": Target(3.0, "s", "14.5"),
    "wide1000": Target(3.0, "s", "15.0"),
    "cpu2_parallel": Target(1.1, "x", "1.14 s"),  # x the one-loop time: two loops, two cores
    "cpu_loop": Target(1.05, "x", "4.2x"),
    "rss": Target(120.0, "MB", "115"),
}
AT_MOST_DIZEST = ("chain10_noop",)  # issue 12: at least as fast as DIZEST, measured beside it


@dataclass
class Row:
    """One shape at one concurrency."""

    shape: str
    concurrency: int | None  # None: the default (admission by measured CPU)
    times: list[float] = field(default_factory=list)
    load_s: float = 0.0
    cold_s: float = 0.0
    ideal_s: float | None = None
    failures: list[str] = field(default_factory=list)
    plain_times: list[float] = field(default_factory=list)
    engine_cpu_ms: float | None = None  # per flow run, warm runs, this process
    child_cpu_ms: float | None = None  # per flow run, warm runs, flow processes (user + sys)
    ref_times: list[float] = field(default_factory=list)
    ref_error: str | None = None
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else math.nan

    @property
    def ratio(self) -> float | None:
        return self.median / self.ideal_s if self.ideal_s else None

    @property
    def ref_median(self) -> float | None:
        return statistics.median(self.ref_times) if self.ref_times else None

    @property
    def conc(self) -> str:
        return "auto" if self.concurrency is None else str(self.concurrency)

    def verdict(self) -> str:
        if self.shape in AT_MOST_DIZEST:
            ref = self.ref_median
            return (
                "?" if ref is None or self.ref_error else "PASS" if self.median <= ref else "MISS"
            )
        target = TARGETS.get(self.shape)
        if target is None:
            return ""
        return target.verdict(self.ratio if target.unit == "x" else self.median)


class PlainLoop:
    """cpu_loop's code minus its dizest.output line, run by plain CPython in this process.

    The CPU shapes interleave one plain run after each engine run, so both see the same load
    from whatever else the machine is doing; their ideal is the median of those plain runs.
    """

    def __init__(self) -> None:
        with open(package_path("cpu_loop"), encoding="utf-8") as fp:
            (app,) = json.load(fp)["apps"].values()
        lines = app["code"].splitlines(keepends=True)
        code = "".join(line for line in lines if "dizest.output(" not in line)
        self.compiled = compile(code, "cpu_loop", "exec")
        self.want = expected("cpu_loop")["values"]["cpu1"]

    def __call__(self) -> tuple[float, list[str]]:
        env: dict[str, Any] = {}
        t0 = time.perf_counter()
        exec(self.compiled, env)
        elapsed = time.perf_counter() - t0
        bad = [] if env.get("t") == self.want else [f"plain loop: t={env.get('t')!r}"]
        return elapsed, bad

    def pair(self) -> float:
        """Two plain loops at once, each in a process forked from this one: what two cores of
        this machine give two loops, with no engine (cpu2_parallel's floor here)."""
        t0 = time.perf_counter()
        pids = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                try:
                    exec(self.compiled, {})
                finally:
                    os._exit(0)  # never back into the bench (its workflow, its zygote socket)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        return time.perf_counter() - t0


def bench_row(
    row: Row, repeat: int, budget_s: float, preload: tuple[str, ...], sandbox: str
) -> None:
    """Cold run, then `repeat` warm runs, or at least MIN_RUNS when they exceed `budget_s`."""
    exp = expected(row.shape)
    plain = PlainLoop() if row.shape.startswith("cpu") else None
    settings = Settings(concurrency=row.concurrency, preload=preload, sandbox=sandbox)
    t0 = time.perf_counter()
    wf = Workflow(package_path(row.shape), settings=settings)
    row.load_s = time.perf_counter() - t0
    try:
        row.cold_s, bad = run_checked(wf, exp)
        row.failures += [f"cold run: {b}" for b in bad[:3]]
        if plain is not None:
            plain()  # warm-up, like the engine's cold run
        kids_before = descendants_cpu_s()  # zygote, spares, flows: any namespace
        pairs: list[float] = []
        engine_cpu = 0.0
        warm_start = time.perf_counter()
        for i in range(repeat):
            over = budget_s and time.perf_counter() - warm_start > budget_s
            if over and i >= MIN_RUNS:
                row.note = f"{i} of {repeat} runs (row budget {budget_s:g} s)"
                break
            gc.collect()
            cpu0 = time.process_time()
            elapsed, bad = run_checked(wf, exp)
            engine_cpu += time.process_time() - cpu0
            row.times.append(elapsed)
            row.failures += [f"run {i + 1}: {b}" for b in bad[:3]]
            if plain is not None:
                elapsed, bad = plain()
                row.plain_times.append(elapsed)
                row.failures += bad
                if row.shape == "cpu2_parallel":
                    pairs.append(plain.pair())
        flow_runs = len(row.times) * exp["flows"]
        row.engine_cpu_ms = 1000 * engine_cpu / flow_runs
        kids_after = descendants_cpu_s()  # the pairs' loops are not in it (ours)
        row.child_cpu_ms = 1000 * (kids_after - kids_before) / flow_runs
    finally:
        wf.close()
    row.ideal_s = statistics.median(row.plain_times) if plain is not None else exp.get("ideal_s")
    notes = [row.note] if row.note else []
    if row.shape == "cpu2_parallel":
        notes.append("ideal: one plain loop (two loops on two cores)")
        if pairs and row.ideal_s:
            floor = statistics.median(pairs)
            notes.append(
                f"two plain forked loops at once: {floor:.3f} s = {floor / row.ideal_s:.2f}x"
                f" (ours {row.median / floor:.2f}x that)"
            )
    if row.shape == "fan5_sleep" and row.concurrency is not None and row.concurrency < 5:
        two = exp.get(f"ideal_{row.concurrency}_workers_s")
        notes.append(f"{row.concurrency}-worker ideal {two}s")
    row.note = "; ".join(notes)


def print_table(rows: list[Row], with_ref: bool) -> None:
    head = ["shape", "conc", "runs", "median s", "min", "max", "cold s", "ideal s", "ratio"]
    head += ["check", "CPU ms/flow"]
    head += ["target", "goal"]
    if with_ref:
        head += ["DIZEST s", "speedup"]
    head.append("note")
    lines = []
    for r in rows:
        target = TARGETS.get(r.shape)
        lo, hi = (min(r.times), max(r.times)) if r.times else (None, None)
        cells = [r.shape, r.conc, str(len(r.times)), fmt(r.median), fmt(lo), fmt(hi)]
        cells += [fmt(r.cold_s), fmt(r.ideal_s), fmt(r.ratio, 2) + ("x" if r.ratio else "")]
        cpu = f"{fmt(r.engine_cpu_ms, 2)}+{fmt(r.child_cpu_ms, 1)}"
        cells += [
            "FAILED" if r.failures else "ok",
            cpu,
            "<=DIZEST" if r.shape in AT_MOST_DIZEST else target.text() if target else "",
            r.verdict(),
        ]
        if with_ref:
            ref = r.ref_median
            cells += [
                fmt(ref) if r.ref_error is None else "ERR",
                f"{ref / r.median:.1f}x" if ref and r.ref_error is None else "-",
            ]
        cells.append(r.note)
        lines.append(cells)
    table(head, lines)


def make_rows(names: list[str]) -> list[Row]:
    rows = []
    for name in names:
        levels: list[int | None] = [None, 8] if name in (*SLEEP_SHAPES, *ALSO_AT_8) else [None]
        rows += [Row(name, c) for c in levels]
    return rows
