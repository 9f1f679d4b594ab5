"""Benchmark of an app's `api` call round trip on an idle cluster (issue 11: p50 <= 20 ms,
p95 <= 50 ms).

    .venv/bin/python bench/bench_apicall.py [--calls 200] [--warmup 20] [--json out.json]

It starts `dizest serve` itself (api_server.serving: one API process, its embedded Redis, one
`dizest worker -c 2` with the flow sandbox on), runs a one-flow workflow whose app has an `api`
function, then makes `--calls` calls one after the other, each measured from just before the
HTTP POST to the last byte of its answer:

    client -> API (auth, access check) -> Celery task on the flow's queue -> worker pool process
    -> zygote fork -> sandboxed child (api code exec'd, function called) -> answer over Redis
    (RPUSH / BLPOP) -> API -> client

Every answer is checked (the function adds its arguments to the flow's output). Printed: p50,
p95, p99 and max in ms, with the 1-minute load average before and after (the machine is
shared: a loaded machine shows in the figures, and in the load average). Also measured, for
scale: the same path without HTTP (`dizest_worker.apicalls.call` from this process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))

from api_server import call, serving  # noqa: E402
from common import rank_pct  # noqa: E402

API = """
def add(a, b):
    return {"sum": a + b + dizest.output("v")}
"""
TARGETS = {"p50": 20.0, "p95": 50.0}


def package() -> dict[str, Any]:
    app = {"id": "a", "title": "a", "code": "v = 1000", "inputs": [], "outputs": [{"name": "v"}],
           "api": API}  # fmt: skip
    flow = {"id": "f", "app_id": "a", "active": True, "data": {}, "inputs": {}, "outputs": {}}
    return {"apps": {"a": app}, "flow": {"f": flow}}


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": rank_pct(values, 50),
        "p95": rank_pct(values, 95),
        "p99": rank_pct(values, 99),
        "max": max(values),
        "n": len(values),
    }


def http_calls(base: str, headers: dict[str, str], run_id: str, n: int) -> list[float]:
    path = f"/api/v1/runs/{run_id}/flows/f/api/add"
    took = []
    for i in range(n):
        start = time.perf_counter()
        status, answer, _ = call(base, "POST", path, {"a": i, "b": 1}, headers)
        took.append((time.perf_counter() - start) * 1000)
        if status != 200 or answer != {"sum": i + 1001}:
            raise RuntimeError(f"call {i}: {status} {answer}")
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory() as tmp,
        serving(Path(tmp), threads=4, connections=64) as server,
    ):
        status, run, _ = call(server.base, "POST", "/api/v1/runs", {"package": package()}, server.admin)  # fmt: skip
        if status != 201:
            raise RuntimeError(f"submit: {status} {run}")
        run_id = run["run_id"]
        deadline = time.monotonic() + 60
        while call(server.base, "GET", f"/api/v1/runs/{run_id}", None, server.admin)[1]["status"] != "ready":  # fmt: skip
            if time.monotonic() > deadline:
                raise RuntimeError("the run did not finish")
            time.sleep(0.1)
        http_calls(server.base, server.admin, run_id, args.warmup)  # every pool process forks once
        load_before = os.getloadavg()[0]
        figures = summary(http_calls(server.base, server.admin, run_id, args.calls))
        load_after = os.getloadavg()[0]
    result = {
        "http": figures,
        "load_1m": [round(load_before, 2), round(load_after, 2)],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "targets_ms": TARGETS,
    }
    print(f"api call round trip over HTTP, {figures['n']} calls one after the other "
          f"(load average {load_before:.2f} -> {load_after:.2f}, {os.cpu_count()} CPUs)")  # fmt: skip
    for key in ("p50", "p95", "p99", "max"):
        target = TARGETS.get(key)
        verdict = "" if target is None else ("  ok" if figures[key] <= target else "  OVER")
        limit = "" if target is None else f" (target <= {target:g} ms)"
        print(f"  {key:>4} {figures[key]:7.1f} ms{limit}{verdict}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
