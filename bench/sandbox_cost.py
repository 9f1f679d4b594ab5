"""What the flow sandbox costs (issue 7): containment on vs off side by side, and per layer.

Three measurements, each printed with the load average (the machine is shared):

  local     `bench_core.py --only sandbox`: chain10_noop and dag1000 through two Workflows open
            at once, Settings(sandbox="off") and Settings(sandbox="on"), runs interleaved
            (off, on, on, off, ...) so both see the same load; per-flow cost =
            (median on - median off) / flows, and the CPU of the zygote tree per flow (the
            zygote's own time plus the flow children it reaped: hardly moved by other load).
  layers    `python bench/sandbox_cost.py` (a fresh, lean process standing in for the zygote,
            as `bench_core.py --only sandbox` also runs it): fork + exit of a child that sets up
            one layer, exactly as `dizest_core.confine` does, timed fork -> reaped, interleaved
            with plain fork + exit; added ms = median(layer) - median(plain). Then every layer
            together through `confine.enter` itself, with a real FlowJob (sandbox_layers.py).
  worker    `bench_worker.py --sandbox off,on`: every configuration's rows once with the workers'
            DIZEST_SANDBOX=off and once with =on; `print_worker_pairs` sets them side by side.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from common import load_text, med, pct, table, verdict  # noqa: E402
from procfs import tree_cpu_s  # noqa: E402
from sandbox_layers import TARGET_MS, measure_in_pidns, print_layers  # noqa: E402

from dizest_core.settings import Settings  # noqa: E402

LOCAL_SHAPES = ("chain10_noop", "dag1000")
MODES = ("off", "on")
LAYER_ITERATIONS = 200


# ----------------------------------------------------------------------------- local mode


@dataclass
class PairRow:
    """One shape, run with the sandbox off and on by the same process, interleaved."""

    shape: str
    flows: int = 0
    times: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    cpu_ms: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    layers: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    load: tuple[float, float] = (math.nan, math.nan)

    def added_ms(self) -> float:
        """Wall time the sandbox adds per flow: (median on - median off) / flows."""
        on, off = med(self.times["on"]), med(self.times["off"])
        return 1000 * (on - off) / self.flows if self.flows else math.nan

    def added_cpu_ms(self) -> float:
        return med(self.cpu_ms["on"]) - med(self.cpu_ms["off"])


def bench_local(shape: str, repeat: int) -> PairRow:
    """Cold run of each mode, then `repeat` warm runs of each, the order alternating."""
    from packages import expected, package_path, run_checked

    from dizest_core.workflow import Workflow

    exp = expected(shape)
    row = PairRow(shape, flows=exp["flows"])
    load0 = os.getloadavg()[0]
    wfs = {m: Workflow(package_path(shape), settings=Settings(sandbox=m)) for m in MODES}
    try:
        for mode, wf in wfs.items():
            _, bad = run_checked(wf, exp)
            row.failures += [f"{mode} cold: {b}" for b in bad[:3]]
        row.layers = wfs["on"].runner.supervisor.layers
        zygotes = {m: wf.runner.supervisor.zygote.proc.pid for m, wf in wfs.items()}
        for i in range(repeat):
            for mode in MODES if i % 2 == 0 else reversed(MODES):
                gc.collect()
                cpu0 = tree_cpu_s(zygotes[mode])
                elapsed, bad = run_checked(wfs[mode], exp)
                row.cpu_ms[mode].append(1000 * (tree_cpu_s(zygotes[mode]) - cpu0) / row.flows)
                row.times[mode].append(elapsed)
                row.failures += [f"{mode} run {i + 1}: {b}" for b in bad[:3]]
    finally:
        for wf in wfs.values():
            wf.close()
    row.load = (load0, os.getloadavg()[0])
    return row


def print_local(rows: list[PairRow]) -> None:
    print(
        "\nContainment cost, local mode (Workflow API, Settings(sandbox=off|on), one engine, "
        "runs interleaved)"
    )
    if rows and rows[0].layers:
        active = [k for k, v in rows[0].layers.items() if v == "active"]
        print(f"  layers on: {', '.join(active)}")
    head = ["shape", "runs", "off s", "on s", "added ms/flow", "target", "goal"]
    head += ["zygote CPU ms/flow off", "on", "added", "load avg", "check"]
    lines = []
    for r in rows:
        added = r.added_ms()
        lines.append(
            [
                r.shape,
                f"{len(r.times['off'])}+{len(r.times['on'])}",
                f"{med(r.times['off']):.3f}",
                f"{med(r.times['on']):.3f}",
                f"{added:.2f}",
                f"<={TARGET_MS:g} ms",
                verdict(added, TARGET_MS),
                f"{med(r.cpu_ms['off']):.2f}",
                f"{med(r.cpu_ms['on']):.2f}",
                f"{r.added_cpu_ms():.2f}",
                f"{r.load[0]:.2f}->{r.load[1]:.2f}",
                "FAILED" if r.failures else "ok",
            ]
        )
    table(head, lines, "  ")
    print(
        "  added ms/flow = (median on - median off) / flows (wall time; dag1000 runs 2 flows at "
        "a time, so\n  its wall figure is about half the per-flow work); zygote CPU = the zygote "
        "and the flow processes it reaped"
    )


def run_layers_subprocess(iterations: int) -> dict[str, Any]:
    """The layer benchmark in a fresh interpreter: a big parent forks slower than a zygote."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--json-only", "-n", str(iterations)],
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"sandbox_cost.py failed: {proc.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ----------------------------------------------------------------------------- workers


def print_worker_pairs(shapes: Sequence[Any], hops: Sequence[Any]) -> None:
    """bench_worker rows whose config is `<key>:off` and `<key>:on`, side by side."""
    pairs: dict[tuple[str, str], dict[str, list[float]]] = {}
    flows: dict[str, int] = {}
    for r in shapes:
        key, _, mode = r.config.partition(":")
        pairs.setdefault((key, r.shape), {}).setdefault(mode, []).extend(r.times)
        flows[r.shape] = r.flows
    if not pairs and not hops:
        return
    print(f"\nContainment cost through workers (DIZEST_SANDBOX=off vs on), {load_text()}")
    lines = []
    for (key, shape), modes in pairs.items():
        off, on = med(modes.get("off", [])), med(modes.get("on", []))
        added = 1000 * (on - off) / flows[shape] if flows.get(shape) else math.nan
        lines.append(
            [key, shape, f"{off:.3f}", f"{on:.3f}", f"{added:.2f}", verdict(added, TARGET_MS)]
        )
    if lines:
        table(["cfg", "shape", "off s", "on s", "added ms/flow", "<=3 ms"], lines, "  ")
    hop: dict[str, dict[str, list[float]]] = {}
    for r in hops:
        key, _, mode = r.config.partition(":")
        hop.setdefault(key, {}).setdefault(mode, []).extend(r.hops)
    lines = []
    for key, modes in hop.items():
        cells = [key]
        for q in (50, 95):
            off, on = pct(modes.get("off", []), q), pct(modes.get("on", []), q)
            cells += [f"{off:.1f}", f"{on:.1f}", f"{on - off:+.1f}"]
        lines.append(cells)
    if lines:
        print()
        head = ["cfg", "hop p50 off ms", "on", "added", "hop p95 off ms", "on", "added"]
        table(head, lines, "  ")


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("-n", type=int, default=LAYER_ITERATIONS, help="forks per layer")
    ap.add_argument("--json-only", action="store_true", help="print the result as JSON only")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("the layer benchmark needs root (as the sandbox does)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)
    result = measure_in_pidns(args.n)
    if args.json_only:
        print(json.dumps(result))
    else:
        print_layers(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
