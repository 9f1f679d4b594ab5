"""Large values between two flows (issue 12): 100 MB through dizest vs the file floor.

`bench_core.py --only large` runs it, flow sandbox off (the local default) and on. Two flows:
`make` builds the value (`b"x" * 100_000_000`, or `numpy.ones(12_500_000)` when numpy is
importable) and outputs it; `take` loads it and outputs its length. Timed by wall clock around
`wf.run()`, medians of `repeat` warm runs. The producer's peak RSS is its own VmHWM
(/proc/self/status), written to a file in the working directory by a profile hook each time the
child sends a frame, so the last sample follows the serialization and preview of its output
(VmHWM only grows). The floor: a fresh process builds the same value, writes it to a file in the
same directory and reads it back; its time and VmHWM.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from gen_dag import app_dict, connect, flow_dict, package_dict  # noqa: E402

from dizest_core.settings import Settings  # noqa: E402
from dizest_core.workflow import Workflow  # noqa: E402

SIZE = 100_000_000
TIME_RATIO = 1.5  # the issue's: dizest time <= 1.5x the floor
PEAK_RATIO = 1.3  # producer peak <= 1.3x the value size
VALUES = {
    "bytes": f"b'x' * {SIZE}",
    "array": f"__import__('numpy').ones({SIZE // 8})",
}
_HWM = """
def _hwm(path='{name}.hwm'):
    with open('/proc/self/status') as fp:
        kb = [line.split()[1] for line in fp if line.startswith('VmHWM:')][0]
    with open(path, 'w') as fp:
        fp.write(kb)
"""
# the producer's peak comes after its code: serializing and previewing its output. A profile
# hook records VmHWM each time the child sends a frame (OUTPUT, then DONE), so the last sample
# follows all of it.
_AFTER = """
import sys
def _profile(frame, event, arg):
    if event == 'call' and frame.f_code.co_name == 'send_frame':
        _hwm()
sys.setprofile(_profile)
"""
_FLOOR = """
import os, sys, time
path = sys.argv[1]
t0 = time.perf_counter()
v = {value}
with open(path, 'wb') as fh:
    fh.write(memoryview(v).cast('B'))
del v
with open(path, 'rb') as fh:
    w = fh.read()
elapsed = time.perf_counter() - t0
with open('/proc/self/status') as fp:
    kb = [line.split()[1] for line in fp if line.startswith('VmHWM:')][0]
print(elapsed, int(kb) / 1024)
"""


def package(value_expr: str) -> dict[str, Any]:
    make_code = _HWM.format(name="make") + f"v = {value_expr}\n" + _AFTER
    take_code = (
        _HWM.format(name="take")
        + "x = dizest.input('x')\nv = len(memoryview(x).cast('B'))\n_hwm()\n"
    )
    apps = {"make": app_dict("make", make_code), "take": app_dict("take", take_code, ["x"])}
    flows = {"make": flow_dict("make", "make", 1), "take": flow_dict("take", "take", 2, ["x"])}
    connect(flows, "make", "take")
    return package_dict("large", "100 MB between two flows", apps, flows)


def _hwm_mb(workdir: str, name: str) -> float:
    try:
        return int(Path(workdir, f"{name}.hwm").read_text()) / 1024
    except (OSError, ValueError):
        return float("nan")


def floor(value_expr: str, folder: str, repeat: int) -> tuple[float, float]:
    """(median seconds, max VmHWM MB) of build + write + read in a fresh process."""
    times, peaks = [], []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", _FLOOR.format(value=value_expr), os.path.join(folder, "f")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        times.append(float(out[0]))
        peaks.append(float(out[1]))
    return statistics.median(times), max(peaks)


def bench_one(kind: str, repeat: int, sandbox: str = "off") -> dict[str, Any]:
    expr = VALUES[kind]
    folder = tempfile.mkdtemp(prefix="dizest-large-")
    os.chmod(folder, 0o777)  # a sandboxed flow runs as another uid
    result: dict[str, Any] = {"kind": kind, "sandbox": sandbox, "failures": []}
    try:
        result["floor_s"], result["floor_mb"] = floor(expr, folder, repeat)
        times, make_mb, take_mb = [], [], []
        with Workflow(package(expr), settings=Settings(sandbox=sandbox)) as wf:
            for i in range(repeat + 1):  # the first run starts the zygote: not timed
                t0 = time.perf_counter()
                report = wf.run(workdir=folder)
                elapsed = time.perf_counter() - t0
                n = report["flows"]["take"]["outputs"].get("v")
                if n != SIZE:
                    result["failures"].append(f"take.v = {n!r}: {json.dumps(report)[:300]}")
                    break
                if i:
                    times.append(elapsed)
                    make_mb.append(_hwm_mb(folder, "make"))
                    take_mb.append(_hwm_mb(folder, "take"))
        result["times"] = times
        result["median_s"] = statistics.median(times) if times else float("nan")
        result["make_mb"] = max(make_mb, default=float("nan"))
        result["take_mb"] = max(take_mb, default=float("nan"))
    except Exception as exc:
        result["failures"].append(f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def bench_large(repeat: int) -> list[dict[str, Any]]:
    kinds = ["bytes"]
    try:
        import numpy  # noqa: F401

        kinds.append("array")
    except ImportError:
        pass
    return [bench_one(kind, repeat, sandbox) for kind in kinds for sandbox in ("off", "on")]


def print_large(results: list[dict[str, Any]]) -> None:
    value_mb = SIZE / 2**20
    for r in results:
        if r["failures"]:
            print(f"large {r['kind']}: FAILED {r['failures'][0]}")
            continue
        t_ratio = r["median_s"] / r["floor_s"]
        p_ratio = r["make_mb"] / value_mb
        print(
            f"large {r['kind']} {value_mb:.0f} MiB, make -> take, sandbox {r['sandbox']}: "
            f"{r['median_s']:.3f} s = {t_ratio:.2f}x floor {r['floor_s']:.3f} s "
            f"(target <={TIME_RATIO}x {'PASS' if t_ratio <= TIME_RATIO else 'MISS'}); "
            f"producer peak {r['make_mb']:.0f} MB = {p_ratio:.2f}x value "
            f"(target <={PEAK_RATIO}x {'PASS' if p_ratio <= PEAK_RATIO else 'MISS'}); "
            f"consumer peak {r['take_mb']:.0f} MB; floor peak {r['floor_mb']:.0f} MB; "
            f"load avg {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    print_large(bench_large(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
