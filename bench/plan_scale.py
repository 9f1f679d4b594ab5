"""Scale of the plan (issue 12): read, validate and plan a 100,000-flow package in <= 2 s.

The package is the random DAG of gen_dag.py written to a temporary .dwp file (never kept), and
the clock covers what `dizest run` does with a file before the first flow starts: read and parse
the JSON, validate it (every rule, the syntax check of each app's code included), build the
graph and make the plan. Median of `repeat` runs in this process; the load average is printed
beside it because the machine is shared.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import tempfile
import time
from typing import Any

from gen_dag import make_dag

from dizest_core import dwp
from dizest_core.graph import Graph
from dizest_core.plan import make_plan

TARGET_S = 2.0


def time_plan(source: str | dict[str, Any], steps: dict[str, list[float]]) -> int:
    """Time one dwp.load(source) + Graph.from_package + make_plan after a gc; append the seconds
    of each to `steps` ("load", "graph", "plan", "total"); return how many flows the plan runs.
    One body for the dict (local_extras.bench_plan) and the file (bench_plan_file) variants, so
    their figures measure the same steps."""
    gc.collect()
    t0 = time.perf_counter()
    pkg = dwp.load(source)
    t1 = time.perf_counter()
    graph = Graph.from_package(pkg)
    t2 = time.perf_counter()
    plan = make_plan(pkg, graph)
    t3 = time.perf_counter()
    for key, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
        steps[key].append(value)
    return len(plan.run)


def bench_plan_file(n: int, repeat: int) -> dict[str, Any]:
    """Median seconds of dwp.load(path) + Graph.from_package + make_plan, and their parts."""
    package, _ = make_dag(n, seed=n)
    fd, path = tempfile.mkstemp(prefix=f"dag{n}.", suffix=".dwp")
    steps: dict[str, list[float]] = {"load": [], "graph": [], "plan": [], "total": []}
    load_before = os.getloadavg()[0]
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(package, fh, indent=1)
        size_mb = os.path.getsize(path) / 1e6
        del package
        planned = 0
        for _ in range(repeat):
            planned = time_plan(path, steps)
    finally:
        os.unlink(path)
    medians = {f"{k}_s": statistics.median(v) for k, v in steps.items()}
    return {
        "flows": n,
        "flows_planned": planned,
        "file_mb": round(size_mb, 1),
        "load_avg": [load_before, os.getloadavg()[0]],
        **medians,
    }


def print_plan_file(result: dict[str, Any]) -> None:
    total = result["total_s"]
    verdict = "PASS" if total <= TARGET_S else "MISS"
    la = result["load_avg"]
    print(
        f"plan{result['flows'] // 1000}k: {result['flows']}-flow .dwp file ({result['file_mb']} MB)"
        f" read + validated + graph + plan, median {total:.3f} s   target <={TARGET_S:g} s  "
        f"{verdict}   (load {result['load_s']:.3f} incl. validation, graph "
        f"{result['graph_s']:.3f}, plan {result['plan_s']:.3f}; {result['flows_planned']} flows;"
        f" load avg {la[0]:.2f} -> {la[1]:.2f})"
    )


if __name__ == "__main__":
    print_plan_file(bench_plan_file(100_000, 3))
