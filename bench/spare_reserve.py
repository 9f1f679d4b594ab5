"""What the spare reserve between runs (`Settings.spare_reserve`) buys a chain of no-op flows.

Two Workflows of chain10_noop in this process, containment on (as root) as in the other local
rows: one keeps no reserve (only a spare per slot, as before), one keeps `--reserve`. Each is
timed by wall clock, `wf.run()`, in two ways, block by block in turn so both see the same
machine: back to back (the reserve forked as a run ends competes with the next run) and after
`--idle` seconds of nothing (what a notebook or a service between two requests gives it).
Medians of `--repeat` runs per block, `--blocks` blocks, the load average before and after.

    .venv/bin/python bench/spare_reserve.py [--repeat 15] [--blocks 3] [--idle 0.2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from packages import package_path  # the packages' one location (tests/data), and sys.path

from dizest_core.settings import Settings
from dizest_core.workflow import Workflow

PACKAGE = package_path("chain10_noop")


def timed_runs(wf: Workflow, repeat: int, idle_s: float) -> list[float]:
    out = []
    for _ in range(repeat):
        if idle_s:
            time.sleep(idle_s)  # the idle time being measured, not a wait for a condition
        t0 = time.perf_counter()
        report = wf.run()
        out.append(time.perf_counter() - t0)
        if report["status"] != "ready":
            raise SystemExit(f"run status {report['status']}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--idle", type=float, default=0.2)
    ap.add_argument("--reserve", type=int, default=Settings().spare_reserve)
    args = ap.parse_args()
    sandbox = "on" if os.geteuid() == 0 else "off"
    reserves = (0, args.reserve)
    wfs = {
        r: Workflow(PACKAGE, settings=Settings(sandbox=sandbox, spare_reserve=r)) for r in reserves
    }
    load0 = os.getloadavg()[0]
    times: dict[tuple[int, str], list[float]] = {}
    try:
        for wf in wfs.values():
            wf.run()  # cold: the zygote
        for _ in range(args.blocks):
            for mode, idle in (("back to back", 0.0), (f"after {args.idle:g} s idle", args.idle)):
                for r, wf in wfs.items():
                    time.sleep(args.idle)  # every block starts from rest
                    times.setdefault((r, mode), []).extend(timed_runs(wf, args.repeat, idle))
    finally:
        for wf in wfs.values():
            wf.close()
    print(
        f"chain10_noop, sandbox {sandbox}, {args.blocks} blocks x {args.repeat} runs, "
        f"load avg {load0:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    print(f"{'mode':<20} {'reserve':>7} {'median ms':>10} {'p25':>6} {'p75':>6}")
    for (r, mode), values in times.items():
        q = statistics.quantiles(values, n=4)
        print(
            f"{mode:<20} {r:>7} {statistics.median(values) * 1e3:>10.1f} {q[0] * 1e3:>6.1f} {q[2] * 1e3:>6.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
