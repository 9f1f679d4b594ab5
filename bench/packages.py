"""The benchmark packages: tests/data's shapes (the one copy: the tests run the same packages),
their `.expected.json`, and the check of a run's outputs against it.

A package's expected values are `values` (every flow), else `sinks`, under output
`output_name`; a run passes when each of those flows ended `ready` with its value. Importing
this module puts the checkout first on sys.path (a clone run without `pip install -e .`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
DWP_DIR = HERE.parent / "tests" / "data"

if TYPE_CHECKING:
    from dizest_core.workflow import Workflow

sys.path.insert(1, str(HERE.parent))

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
RUN_TIMEOUT_S = 120.0


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
