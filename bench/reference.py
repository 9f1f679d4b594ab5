"""Reference implementations run beside dizest, each under a Python of its own: original DIZEST
4.0.15 (bench/ref_dizest.py, $DIZEST_REF_PYTHON, for bench_core) and Dask distributed
(bench/ref_dask.py, $DASK_REF_PYTHON, for bench_worker through vs_dask.py).

Both scripts answer with a last stdout line `RESULT <json>`; `run_result` runs one and reads
it, or says why there is none. Their outputs are checked against the packages' expected values
as dizest's are.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from packages import RUN_TIMEOUT_S, check_outputs, expected, package_path

HERE = Path(__file__).resolve().parent


def run_result(
    cmd: list[str], timeout: float, cwd: str | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """The `RESULT` document of a reference script's run, else None and why: "timeout", or no
    result line (its exit code and the end of its stderr)."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timeout"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        return None, f"no result (rc {proc.returncode}): {proc.stderr.strip()[-300:]}"
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result, None


def dizest_times(python: str, name: str, repeat: int) -> tuple[list[float], str | None]:
    """DIZEST 4.0.15 times for one package (fresh interpreter, temp cwd), or an error."""
    exp = expected(name)
    cmd = [python, str(HERE / "ref_dizest.py"), str(package_path(name))]
    cmd += ["--output", exp["output_name"], "--repeat", str(repeat)]
    with tempfile.TemporaryDirectory(prefix="dizest-ref-") as cwd:
        result, error = run_result(cmd, repeat * RUN_TIMEOUT_S + 30, cwd)
    if result is None:
        return [], error
    if result["error"]:
        return result["times"], result["error"]
    for i, outputs in enumerate(result["outputs"]):
        bad = check_outputs(exp, outputs)
        if bad:
            return result["times"], f"run {i + 1}: {bad[0]}"
    return result["times"], None
