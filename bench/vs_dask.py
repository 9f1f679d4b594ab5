"""bench_worker's Dask distributed reference (issue 12): run it, check it, print us beside it.

With $DASK_REF_PYTHON set to a Python that has `dask[distributed]`, bench_worker runs
bench/ref_dask.py under it after its own configurations have stopped (never at the same time:
the machine's CPUs are what both measure), for the throughput shapes it ran (dag1000,
wide1000), on a LocalCluster of DASK_PROCESSES x DASK_THREADS: config A's shape, two slots
that each run one flow at a time. Dask's outputs are checked against the package's
`.expected.json` as ours are. Targets, per config row: our median <= Dask's median (warm),
and CPU per flow in the worker (main + pool + zygote + flows + reaper: every process of the
worker's tree, flow children included; not Redis, not the client) <= WORKER_CPU_MS.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from common import fmt, load_text, table, verdict
from packages import check_outputs, expected, package_path
from reference import run_result

HERE = Path(__file__).resolve().parent
DASK_PROCESSES = 2
DASK_THREADS = 1
WORKER_CPU_MS = 3.0
WORKER_PARTS = ("main", "pool", "zygote", "flows", "reaper")


class Row(Protocol):
    config: str
    shape: str
    flows: int
    times: list[float]
    cpu_s: dict[str, float]


def run_reference(python: str, shapes: Sequence[str], repeat: int) -> dict[str, Any]:
    """{"cluster", "versions", "shapes": {shape: {"times", "cpu_ms", "error"}}, "error"}."""
    doc: dict[str, Any] = {"shapes": {}, "error": None}
    by_output: dict[str, list[str]] = {}
    for shape in shapes:
        by_output.setdefault(expected(shape)["output_name"], []).append(shape)
    for output, group in by_output.items():
        paths = {str(package_path(s)): s for s in group}
        cmd = [python, str(HERE / "ref_dask.py"), *paths, "--output", output]
        cmd += ["--repeat", str(repeat)]
        cmd += ["--workers", str(DASK_PROCESSES), "--threads", str(DASK_THREADS)]
        result, error = run_result(cmd, 90 + 120 * repeat * len(paths))
        if result is None:
            doc["error"] = error
            continue
        doc["error"] = doc["error"] or result.get("error")
        doc["cluster"] = result.get("cluster")
        doc["versions"] = result.get("versions")
        for path, pkg in result["packages"].items():
            doc["shapes"][paths[path]] = checked(paths[path], pkg)
    return doc


def checked(shape: str, pkg: Mapping[str, Any]) -> dict[str, Any]:
    error = pkg.get("error")
    if not error:
        bad = check_outputs(expected(shape), pkg.get("outputs") or {})
        error = f"{len(bad)} wrong, e.g. {bad[0]}" if bad else None
    runs = len(pkg["times"]) * (pkg.get("flows") or 0)
    return {
        "times": pkg["times"],
        "build_s": pkg.get("build_s", []),
        "cpu_ms": 1000 * pkg["cpu_s"] / runs if runs else math.nan,
        "error": error,
    }


def worker_cpu_ms(row: Row) -> float:
    runs = len(row.times) * row.flows
    if not runs or not row.cpu_s:
        return math.nan
    return 1000 * sum(row.cpu_s.get(k, 0.0) for k in WORKER_PARTS) / runs


def failures(ref: Mapping[str, Any]) -> list[str]:
    out = [f"dask reference: {ref['error']}"] if ref.get("error") else []
    return out + [f"dask {s}: {r['error']}" for s, r in ref["shapes"].items() if r["error"]]


def print_comparison(rows: Sequence[Row], ref: Mapping[str, Any] | None, note: str) -> None:
    """Each throughput row beside Dask's warm median, with PASS/MISS, and the worker CPU."""
    if not rows:
        return
    print(
        f"\n5. issue 12, distributed: ours <= Dask distributed warm; worker CPU <= "
        f"{WORKER_CPU_MS:g} ms/flow ({load_text()})"
    )
    if ref is None:
        print(f"   Dask reference skipped: {note}")
    else:
        versions = ref.get("versions") or {}
        print(
            f"   Dask {versions.get('distributed', '?')}, {ref.get('cluster', '?')} (our config "
            f"A is the same 2 x 1), warm-up compute then fresh graphs; Dask s = build + compute "
            f"+ results; Dask CPU = client+scheduler+nannies+workers"
        )
    head = ["cfg", "shape", "ours s", "Dask s", "Dask min-max", "goal", "worker CPU ms/flow"]
    head += ["goal", "Dask CPU ms/flow", "Dask check"]
    lines = []
    for r in rows:
        d = (ref or {}).get("shapes", {}).get(r.shape)
        ours = statistics.median(r.times) if r.times else math.nan
        theirs = statistics.median(d["times"]) if d and d["times"] else math.nan
        cpu = worker_cpu_ms(r)
        lines.append(
            [
                r.config,
                r.shape,
                fmt(ours),
                fmt(theirs if d else None),
                f"{min(d['times']):.3f}-{max(d['times']):.3f}" if d and d["times"] else "-",
                verdict(ours, theirs),
                "-" if math.isnan(cpu) else f"{cpu:.2f}",
                verdict(cpu, WORKER_CPU_MS),
                f"{d['cpu_ms']:.2f}" if d and not math.isnan(d["cpu_ms"]) else "-",
                ("FAILED" if d["error"] else "ok") if d else "-",
            ]
        )
    table(head, lines)
    print("   worker CPU = " + " + ".join(WORKER_PARTS) + " of the CPU table, per flow run")


def from_env(shapes: Sequence[str], repeat: int) -> tuple[dict[str, Any] | None, str]:
    """The reference for `shapes` when $DASK_REF_PYTHON is set, else None and why not."""
    python = os.environ.get("DASK_REF_PYTHON")
    if not python:
        return None, "set DASK_REF_PYTHON to a Python with dask[distributed]"
    if not shapes:
        return None, "no throughput shape selected"
    print(f"dask reference: {', '.join(shapes)} ...", end="", flush=True, file=sys.stderr)
    t0 = time.perf_counter()
    ref = run_reference(python, shapes, repeat)
    print(f" {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return ref, ""
