"""bench_core's figures beside the shape rows: peak memory of a fresh engine process, planning
time of a generated DAG, containment on vs off (sandbox_cost.py), each printed under the table.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import plan_scale
import sandbox_cost
from common import fmt
from gen_dag import make_dag
from local_shapes import TARGETS
from packages import RUN_TIMEOUT_S, expected, package_path, run_checked
from procfs import vm_hwm_mb

from dizest_core.settings import Settings
from dizest_core.workflow import Workflow

ENTRY = Path(__file__).resolve().with_name("bench_core.py")  # its --rss-only runs rss_child


def bench_sandbox(repeat: int) -> tuple[list[Any], dict[str, Any]]:
    """Containment on vs off (bench/sandbox_cost.py): the local shapes, then each layer."""
    rows = [sandbox_cost.bench_local(shape, repeat) for shape in sandbox_cost.LOCAL_SHAPES]
    return rows, sandbox_cost.run_layers_subprocess(sandbox_cost.LAYER_ITERATIONS)


def rss_child(name: str, preload: tuple[str, ...]) -> dict[str, Any]:
    """(--rss-only) Load and run one package once in this fresh process; memory in MB."""
    exp = expected(name)
    wf = Workflow(package_path(name), settings=Settings(preload=preload))
    elapsed, bad = run_checked(wf, exp)
    zygote_mb = None
    try:
        zygote_mb = vm_hwm_mb(wf.runner.supervisor.zygote.proc.pid)
    finally:
        wf.close()
    return {
        "shape": name,
        "engine_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "zygote_vmhwm_mb": zygote_mb,
        "run_s": elapsed,
        "failures": bad[:3],
    }


def bench_rss(name: str, preload: tuple[str, ...]) -> dict[str, Any]:
    me = str(ENTRY)
    proc = subprocess.run(
        [sys.executable, me, "--rss-only", name, "--preload", ",".join(preload)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S + 30,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"shape": name, "failures": [f"rss child failed: {proc.stderr.strip()[-500:]}"]}
    return json.loads(lines[-1])


def bench_plan(n: int, repeat: int) -> dict[str, Any]:
    """Median seconds of dwp.load(dict) + Graph.from_package + make_plan on an n-flow DAG."""
    steps: dict[str, list[float]] = {"load": [], "graph": [], "plan": [], "total": []}
    flows_planned = 0
    for _ in range(repeat):
        package_dict, _ = make_dag(n, seed=n)  # fresh each time: load gets an untouched dict
        flows_planned = plan_scale.time_plan(package_dict, steps)
    medians = {f"{k}_s": statistics.median(v) for k, v in steps.items()}
    return {"flows": n, "flows_planned": flows_planned, **medians}


def print_extras(rss: dict[str, Any] | None, plan: dict[str, Any] | None) -> None:
    if rss is not None:
        mb = rss.get("engine_maxrss_mb")
        target = TARGETS["rss"]
        zyg = rss.get("zygote_vmhwm_mb")
        print(
            f"peak RSS, engine process, {rss['shape']} (fresh process, 1 run): {fmt(mb, 1)} MB"
            f"   target {target.text()}  {target.verdict(mb)}"
            f"   | zygote VmHWM {fmt(zyg, 1)} MB | run {fmt(rss.get('run_s'))} s"
        )
    if plan is not None:
        print(
            f"plan {plan['flows']}-flow random DAG (dwp.load + Graph.from_package + make_plan), "
            f"median: {plan['total_s']:.3f} s  (load {plan['load_s']:.3f}, graph "
            f"{plan['graph_s']:.3f}, plan {plan['plan_s']:.3f}; {plan['flows_planned']} flows)"
        )
