"""Benchmark of local-mode dizest on the DIZEST benchmark packages in tests/data/.

For every shape: one Workflow, a cold first run (zygote start included), then `--repeat` warm
runs of `wf.run()` timed by wall clock; every run's outputs are checked against the package's
.expected.json. Also: peak RSS of a fresh engine process running dag1000, planning time of a
generated 10,000-flow package, 100 MB between two flows against the file floor
(bench/large_values.py), and (with $DIZEST_REF_PYTHON) the same packages through
original DIZEST 4.0.15; `--only startup`: wall of `dizest --help` and a one-flow `dizest run`
(bench/startup_cost.py); `--only makespan`: a 100-flow sleep DAG at concurrency 8 with containment
on, makespan / critical path and per-flow overhead (bench/makespan.py). Exit status 1 when any
output check failed.

    .venv/bin/python bench/bench_core.py [--repeat 5] [--only dag1000,rss] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # a clone run without `pip install -e .`

import large_values  # noqa: E402
import makespan  # noqa: E402
import plan_scale  # noqa: E402
import sandbox_cost  # noqa: E402
import sandbox_layers  # noqa: E402
import startup_cost  # noqa: E402
from common import load_change, print_failures, timed  # noqa: E402
from local_extras import bench_plan, bench_rss, bench_sandbox, print_extras, rss_child  # noqa: E402
from local_shapes import MIN_RUNS, Row, bench_row, make_rows, print_table  # noqa: E402
from packages import SHAPES  # noqa: E402
from reference import dizest_times  # noqa: E402

from dizest_core.settings import Settings  # noqa: E402

EXTRAS = ("rss", "plan10k", "plan100k", "sandbox", "startup", "large", "makespan")
# local makespan rows (containment, dispatch orders; Plan.rank is True): the target's beside
# the order before issue 12, run interleaved, then containment's share of the overhead
MAKESPAN_ROWS: tuple[tuple[str, tuple[bool, ...]], ...] = (("on", (True, False)), ("off", (True,)))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="warm runs per row (default 5)")
    ap.add_argument("--ref-repeat", type=int, default=3, help="DIZEST runs per shape (default 3)")
    ap.add_argument("--only", default="", help=f"comma list of {', '.join(SHAPES + EXTRAS)}")
    ap.add_argument("--json", dest="json_out", help="also write the results as JSON here")
    ap.add_argument(
        "--row-budget",
        type=float,
        default=20.0,
        help=f"stop a row's warm runs after this many seconds, once {MIN_RUNS} ran (0: never)",
    )
    ap.add_argument("--preload", default="", help="modules the zygote imports (Settings.preload)")
    ap.add_argument("--plan-flows", type=int, default=10_000)
    ap.add_argument(
        "--sandbox",
        choices=("on", "off"),
        default="on" if os.geteuid() == 0 else "off",
        help="the flow sandbox for the shapes (default: on as root, as in workers)",
    )
    ap.add_argument("--rss-only", metavar="SHAPE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.preload = tuple(m for m in args.preload.split(",") if m)
    args.names = [n for n in args.only.split(",") if n] or list(SHAPES + EXTRAS)
    unknown = set(args.names) - set(SHAPES + EXTRAS)
    if unknown:
        ap.error(f"unknown names: {', '.join(sorted(unknown))}")
    if args.repeat < 1 or args.ref_repeat < 1:
        ap.error("--repeat and --ref-repeat must be at least 1")
    return args


def run_rows(
    args: argparse.Namespace, shapes: list[str], rows: list[Row], ref_python: str | None
) -> list[str]:
    """Every row of `shapes`, then (with `ref_python`) DIZEST on them; the failures."""
    failures: list[str] = []
    for row in rows:
        try:
            run_row = partial(
                bench_row, row, args.repeat, args.row_budget, args.preload, args.sandbox
            )
            timed(f"{row.shape} c={row.conc}", run_row)
        except Exception as exc:  # one broken shape must not hide the others' figures
            row.failures.append(f"{type(exc).__name__}: {exc}")
        failures += [f"{row.shape} c={row.conc}: {f}" for f in row.failures]
    if ref_python:
        for name in shapes:
            run_ref = partial(dizest_times, ref_python, name, args.ref_repeat)
            times, error = timed(f"DIZEST {name}", run_ref)
            for row in rows:
                if row.shape == name:
                    row.ref_times, row.ref_error = times, error
            if error:
                failures.append(f"DIZEST reference {name}: {error}")
    return failures


def run_extras(args: argparse.Namespace, failures: list[str]) -> dict[str, Any]:
    """The figures of EXTRAS that `--only` names (None or [] for the others); their failed
    checks are added to `failures`."""
    names = args.names
    found: dict[str, Any] = {}
    found["rss"] = (
        timed("rss dag1000", lambda: bench_rss("dag1000", args.preload)) if "rss" in names else None
    )
    if found["rss"] is not None:
        failures += [f"rss dag1000: {f}" for f in found["rss"].get("failures", [])]
    found["plan"] = (
        timed("plan", lambda: bench_plan(args.plan_flows, args.repeat))
        if "plan10k" in names
        else None
    )
    found["plan100k"] = (
        timed("plan100k", lambda: plan_scale.bench_plan_file(100_000, args.repeat))
        if "plan100k" in names
        else None
    )
    contained = timed("sandbox", lambda: bench_sandbox(args.repeat)) if "sandbox" in names else None
    found["sandbox"] = contained
    if contained is not None:
        failures += [f"sandbox {r.shape}: {f}" for r in contained[0] for f in r.failures]
    large = (
        timed("large", lambda: large_values.bench_large(args.repeat)) if "large" in names else None
    )
    found["large"] = large
    failures += [f"large {r['kind']}: {f}" for r in large or () for f in r["failures"]]
    spans = (
        timed(
            "makespan",
            lambda: [r for c in MAKESPAN_ROWS for r in makespan.bench_local(args.repeat, *c)],
        )
        if "makespan" in names
        else []
    )
    found["makespan"] = spans
    failures += [f"makespan {r.config}: {f}" for r in spans for f in r.failures]
    found["startup"] = (
        timed("startup", lambda: startup_cost.bench_startup(max(args.repeat, 20)))
        if "startup" in names
        else None
    )
    return found


def print_report(
    args: argparse.Namespace,
    rows: list[Row],
    extras: dict[str, Any],
    ref_python: str | None,
    load_before: float,
) -> None:
    print(
        f"\ndizest local-mode benchmark - Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, concurrency auto (by measured CPU, at most "
        f"{Settings().max_processes}) or as shown, flow sandbox {args.sandbox}, "
        f"{args.repeat} warm runs per row (after 1 cold run), "
        f"zygote preload {','.join(args.preload) or '-'}, "
        f"{load_change(load_before)}\n"
    )
    if rows:
        print_table(rows, bool(ref_python))
    if not ref_python and rows:
        print(
            "\nDIZEST reference columns skipped (set DIZEST_REF_PYTHON to a Python with dizest==4.0.15)"
        )
    elif rows:
        print(f"\nDIZEST 4.0.15 via {ref_python}: median of {args.ref_repeat} runs, no warm-up")
    print()
    print_extras(extras["rss"], extras["plan"])
    if extras["plan100k"] is not None:
        plan_scale.print_plan_file(extras["plan100k"])
    if extras["sandbox"] is not None:
        sandbox_cost.print_local(extras["sandbox"][0])
        sandbox_layers.print_layers(extras["sandbox"][1])
    if extras["large"] is not None:
        large_values.print_large(extras["large"])
    if extras["startup"] is not None:
        startup_cost.print_startup(extras["startup"])
    makespan.print_makespan(extras["makespan"])


def json_doc(
    args: argparse.Namespace,
    rows: list[Row],
    extras: dict[str, Any],
    ref_python: str | None,
    load: list[float],
    failures: list[str],
) -> dict[str, Any]:
    contained = extras["sandbox"]
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        "load_avg": load,
        "rows": [
            {**asdict(r), "median": r.median, "ratio": r.ratio, "verdict": r.verdict()}
            for r in rows
        ],
        "rss": extras["rss"],
        "plan": extras["plan"],
        "plan100k": extras["plan100k"],
        "sandbox": contained
        and {
            "local": [{**asdict(r), "added_ms": r.added_ms()} for r in contained[0]],
            "layers": contained[1],
        },
        "startup": extras["startup"],
        "large": extras["large"],
        "makespan": [{**asdict(r), "ratio": r.ratio} for r in extras["makespan"]],
        "reference_python": ref_python,
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rss_only:
        print(json.dumps(rss_child(args.rss_only, args.preload)))
        return 0
    started = time.perf_counter()
    load_before = os.getloadavg()
    ref_python = os.environ.get("DIZEST_REF_PYTHON")
    shapes = [n for n in SHAPES if n in args.names]
    rows = make_rows(shapes)
    failures = run_rows(args, shapes, rows, ref_python)
    extras = run_extras(args, failures)
    print_report(args, rows, extras, ref_python, load_before[0])
    print(f"\ntotal bench time {time.perf_counter() - started:.0f} s")
    print_failures(failures)
    if args.json_out:
        load = [load_before[0], os.getloadavg()[0]]
        with open(args.json_out, "w", encoding="utf-8") as fp:
            json.dump(json_doc(args, rows, extras, ref_python, load, failures), fp, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
