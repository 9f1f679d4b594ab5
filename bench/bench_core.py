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
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DWP_DIR = HERE.parent / "tests" / "data"  # the one copy: the tests run the same packages
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # a clone run without `pip install -e .`

import large_values  # noqa: E402
import makespan  # noqa: E402
import plan_scale  # noqa: E402
import sandbox_cost  # noqa: E402
import startup_cost  # noqa: E402
from gen_dag import make_dag  # noqa: E402

from dizest_core.settings import Settings  # noqa: E402
from dizest_core.workflow import Workflow  # noqa: E402

SHAPES = (
    "chain10_noop",
    "chain10_sleep",
    "fan5_sleep",
    "dag100",
    "dag1000",
    "wide1000",
    "cpu_loop",
    "cpu2_parallel",
)
SLEEP_SHAPES = ("chain10_sleep", "fan5_sleep")
ALSO_AT_8 = ("dag1000", "wide1000")
EXTRAS = ("rss", "plan10k", "plan100k", "sandbox", "startup", "large", "makespan")
RUN_TIMEOUT_S = 120.0
# local makespan rows (containment, dispatch orders; Plan.rank is True): the target's beside
# the order before issue 12, run interleaved, then containment's share of the overhead
MAKESPAN_ROWS: tuple[tuple[str, tuple[bool, ...]], ...] = (("on", (True, False)), ("off", (True,)))
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


# ----------------------------------------------------------------------------- packages


def package_path(name: str) -> Path:
    return DWP_DIR / f"{name}.dwp"


def expected(name: str) -> dict[str, Any]:
    with open(DWP_DIR / f"{name}.expected.json", encoding="utf-8") as fp:
        return json.load(fp)


def check_outputs(
    exp: Mapping[str, Any], outputs: Mapping[str, Any], statuses: Mapping[str, str] | None = None
) -> list[str]:
    """Mismatches between a run's outputs ({flow: value}) and the expected values."""
    want: dict[str, Any] = exp.get("values") or exp["sinks"]
    bad = []
    for flow_id, value in want.items():
        got = outputs.get(flow_id)
        status = statuses.get(flow_id) if statuses is not None else None
        if got != value or (statuses is not None and status != "ready"):
            bad.append(f"{flow_id}: want {value!r}, got {got!r} ({status or '-'})")
    return bad


def report_outputs(report: Mapping[str, Any], name: str) -> tuple[dict[str, Any], dict[str, str]]:
    flows = report["flows"]
    outputs = {f: d.get("outputs", {}).get(name) for f, d in flows.items()}
    return outputs, {f: d["status"] for f, d in flows.items()}


def run_checked(wf: Workflow, exp: Mapping[str, Any]) -> tuple[float, list[str]]:
    """Wall time of one `wf.run()` and the output mismatches of that run."""
    t0 = time.perf_counter()
    report = wf.run(timeout=RUN_TIMEOUT_S)
    elapsed = time.perf_counter() - t0
    outputs, statuses = report_outputs(report, exp["output_name"])
    bad = check_outputs(exp, outputs, statuses)
    if report["status"] != "ready":
        bad.insert(0, f"run status {report['status']}")
    return elapsed, bad


# ----------------------------------------------------------------------------- measurements


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
        kids_before = makespan.descendants_cpu_s()  # zygote, spares, flows: any namespace
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
        kids_after = makespan.descendants_cpu_s()  # the pairs' loops are not in it (ours)
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


def vm_hwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fp:
            for line in fp:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def bench_rss(name: str, preload: tuple[str, ...]) -> dict[str, Any]:
    me = str(Path(__file__).resolve())
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


def bench_reference(python: str, name: str, repeat: int) -> tuple[list[float], str | None]:
    """DIZEST 4.0.15 times for one package (fresh interpreter, temp cwd), or an error."""
    exp = expected(name)
    cmd = [python, str(HERE / "ref_dizest.py"), str(package_path(name))]
    cmd += ["--output", exp["output_name"], "--repeat", str(repeat)]
    with tempfile.TemporaryDirectory(prefix="dizest-ref-") as cwd:
        try:
            proc = subprocess.run(
                cmd, cwd=cwd, capture_output=True, text=True, timeout=repeat * RUN_TIMEOUT_S + 30
            )
        except subprocess.TimeoutExpired:
            return [], "timeout"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        return [], f"no result (rc {proc.returncode}): {proc.stderr.strip()[-300:]}"
    result = json.loads(lines[-1][len("RESULT ") :])
    if result["error"]:
        return result["times"], result["error"]
    for i, outputs in enumerate(result["outputs"]):
        bad = check_outputs(exp, outputs)
        if bad:
            return result["times"], f"run {i + 1}: {bad[0]}"
    return result["times"], None


# ----------------------------------------------------------------------------- output


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(rows: list[Row], with_ref: bool) -> None:
    head = ["shape", "conc", "runs", "median s", "min", "max", "cold s", "ideal s", "ratio"]
    head += ["check", "CPU ms/flow"]
    head += ["target", "goal"]
    if with_ref:
        head += ["DIZEST s", "speedup"]
    head.append("note")
    table = [head]
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
        table.append(cells)
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    for i, line in enumerate(table):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


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


# ----------------------------------------------------------------------------- main


def make_rows(names: list[str]) -> list[Row]:
    rows = []
    for name in names:
        levels: list[int | None] = [None, 8] if name in (*SLEEP_SHAPES, *ALSO_AT_8) else [None]
        rows += [Row(name, c) for c in levels]
    return rows


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


def timed(label: str, fn: Callable[[], Any]) -> Any:
    print(f"  {label} ...", end="", flush=True, file=sys.stderr)
    t0 = time.perf_counter()
    try:
        return fn()
    finally:
        print(f" {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def print_failures(failures: list[str]) -> None:
    """Make failed output checks impossible to miss at the end of a bench run."""
    if failures:
        print("\n" + "!" * 72 + "\nOUTPUT CHECK FAILED:")
        for line in failures[:30]:
            print("  " + line)
        print("!" * 72)


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
            run_ref = partial(bench_reference, ref_python, name, args.ref_repeat)
            times, error = timed(f"DIZEST {name}", run_ref)
            for row in rows:
                if row.shape == name:
                    row.ref_times, row.ref_error = times, error
            if error:
                failures.append(f"DIZEST reference {name}: {error}")
    rss = (
        timed("rss dag1000", lambda: bench_rss("dag1000", args.preload))
        if "rss" in args.names
        else None
    )
    if rss is not None:
        failures += [f"rss dag1000: {f}" for f in rss.get("failures", [])]
    plan = None
    if "plan10k" in args.names:
        plan = timed("plan", lambda: bench_plan(args.plan_flows, args.repeat))
    plan100k = (
        timed("plan100k", lambda: plan_scale.bench_plan_file(100_000, args.repeat))
        if "plan100k" in args.names
        else None
    )
    contained = (
        timed("sandbox", lambda: bench_sandbox(args.repeat)) if "sandbox" in args.names else None
    )
    if contained is not None:
        failures += [f"sandbox {r.shape}: {f}" for r in contained[0] for f in r.failures]
    large = (
        timed("large", lambda: large_values.bench_large(args.repeat))
        if "large" in args.names
        else None
    )
    failures += [f"large {r['kind']}: {f}" for r in large or () for f in r["failures"]]
    spans = (
        timed(
            "makespan",
            lambda: [r for c in MAKESPAN_ROWS for r in makespan.bench_local(args.repeat, *c)],
        )
        if "makespan" in args.names
        else []
    )
    failures += [f"makespan {r.config}: {f}" for r in spans for f in r.failures]
    startup = (
        timed("startup", lambda: startup_cost.bench_startup(max(args.repeat, 20)))
        if "startup" in args.names
        else None
    )

    print(
        f"\ndizest local-mode benchmark - Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, concurrency auto (by measured CPU, at most "
        f"{Settings().max_processes}) or as shown, flow sandbox {args.sandbox}, "
        f"{args.repeat} warm runs per row (after 1 cold run), "
        f"zygote preload {','.join(args.preload) or '-'}, "
        f"load avg {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}\n"
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
    print_extras(rss, plan)
    if plan100k is not None:
        plan_scale.print_plan_file(plan100k)
    if contained is not None:
        sandbox_cost.print_local(contained[0])
        sandbox_cost.print_layers(contained[1])
    if large is not None:
        large_values.print_large(large)
    if startup is not None:
        startup_cost.print_startup(startup)
    makespan.print_makespan(spans)
    print(f"\ntotal bench time {time.perf_counter() - started:.0f} s")
    print_failures(failures)
    if args.json_out:
        doc = {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "repeat": args.repeat,
            "load_avg": [load_before[0], os.getloadavg()[0]],
            "rows": [
                {**asdict(r), "median": r.median, "ratio": r.ratio, "verdict": r.verdict()}
                for r in rows
            ],
            "rss": rss,
            "plan": plan,
            "plan100k": plan100k,
            "sandbox": contained
            and {
                "local": [{**asdict(r), "added_ms": r.added_ms()} for r in contained[0]],
                "layers": contained[1],
            },
            "startup": startup,
            "large": large,
            "makespan": [{**asdict(r), "ratio": r.ratio} for r in spans],
            "reference_python": ref_python,
            "failures": failures,
        }
        with open(args.json_out, "w", encoding="utf-8") as fp:
            json.dump(doc, fp, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
