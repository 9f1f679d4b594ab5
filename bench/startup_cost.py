"""Start-up of the `dizest` command (issue 12): process wall of `--help` and of a one-flow run.

Both are whole fresh processes, timed from spawn to exit (what a user or a shell script waits
for), interleaved with `python -c pass` so all three see the same machine load; medians.
`bench_core.py --only startup` prints them beside the targets; run alone:

    .venv/bin/python bench/startup_cost.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_dag import app_dict, flow_dict, package_dict  # noqa: E402

HELP_TARGET_S = 0.1
RUN_TARGET_S = 0.3


def dizest_exe() -> list[str]:
    """The installed console script next to this interpreter, else `python -m dizest_cli`."""
    script = Path(sys.executable).with_name("dizest")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dizest_cli"]


def write_one_flow(folder: Path) -> Path:
    """A one-flow package (output v = 1): the smallest real `dizest run`."""
    apps = {"root": app_dict("root", "dizest.output('v', 1)\n")}
    flows = {"only": flow_dict("only", "root", 1)}
    path = folder / "one_flow.dwp"
    path.write_text(json.dumps(package_dict("one_flow", "one flow, v = 1", apps, flows)))
    return path


def wall(cmd: list[str], cwd: Path) -> float:
    """Seconds from spawn to exit of `cmd`; a failing command is an error, not a figure."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=60)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-400:]!r}")
    return elapsed


def bench_startup(repeat: int) -> dict[str, Any]:
    """Medians of `repeat` interleaved runs of each command (after one untimed warm-up each)."""
    exe = dizest_exe()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="dizest-startup-") as tmp:
        folder = Path(tmp)
        package = write_one_flow(folder)
        cmds = {
            "python_pass": [sys.executable, "-c", "pass"],
            "help": [*exe, "--help"],
            "run_one_flow": [*exe, "run", str(package)],
        }
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for cmd in cmds.values():
            wall(cmd, folder)
        for _ in range(repeat):
            for key, cmd in cmds.items():
                times[key].append(wall(cmd, folder))
    return {
        "repeat": repeat,
        "load_avg": [load_before, os.getloadavg()[0]],
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "min_s": {k: min(v) for k, v in times.items()},
    }


def print_startup(result: dict[str, Any]) -> None:
    med, low = result["median_s"], result["min_s"]
    ref = med["python_pass"]
    load = result["load_avg"]
    print(
        f"start-up, process wall, median of {result['repeat']} "
        f"(load avg {load[0]:.2f} -> {load[1]:.2f}); reference `python -c pass` {ref:.3f} s"
    )
    for key, label, target in (
        ("help", "dizest --help", HELP_TARGET_S),
        ("run_one_flow", "dizest run one-flow", RUN_TARGET_S),
    ):
        verdict = "PASS" if med[key] <= target else "MISS"
        print(
            f"  {label:<22} {med[key]:.3f} s (min {low[key]:.3f})   target <= {target} s  {verdict}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    print_startup(bench_startup(args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
