"""Time one package through original DIZEST 4.0.15 (run by the Python in $DIZEST_REF_PYTHON).

Measures what DIZEST's own baseline measured: in-process `workflow.run()` (threaded, the UI and
`/dizest/api/run` mode) until every flow thread has been joined. Imports only the stdlib and
`dizest`, so it runs in a separate interpreter; the last stdout line is `RESULT <json>`:
{"version", "load_s", "times": [s, ...], "outputs": [{flow: value}, ...], "error": str|null}.

    $DIZEST_REF_PYTHON bench/ref_dizest.py PATH --output v --repeat 3 [--warmup]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any


def run_once(wf: Any, output_name: str, deadline_s: float) -> tuple[float, dict[str, Any]]:
    flows = [f for f in wf.flows() if f.active()]
    t0 = time.perf_counter()
    wf.run()
    for flow in flows:
        process = wf.run.instance(flow).process
        if process is not None:
            process.join(max(0.0, deadline_s - (time.perf_counter() - t0)))
            if process.is_alive():
                raise TimeoutError(f"flow {flow.id()} still running after {deadline_s:g} s")
    elapsed = time.perf_counter() - t0
    outputs = {f.id(): wf.run.instance(f).output_data.get(output_name) for f in flows}
    return elapsed, outputs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--output", default="v")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", action="store_true")
    ap.add_argument("--deadline", type=float, default=120.0, help="per run, seconds")
    args = ap.parse_args()
    result: dict[str, Any] = {"times": [], "outputs": [], "error": None}
    try:
        import dizest

        result["version"] = getattr(dizest, "__version__", None)
        t0 = time.perf_counter()
        wf = dizest.Workflow(os.path.abspath(args.path))
        result["load_s"] = time.perf_counter() - t0
        if args.warmup:
            run_once(wf, args.output, args.deadline)
        for _ in range(args.repeat):
            elapsed, outputs = run_once(wf, args.output, args.deadline)
            result["times"].append(elapsed)
            result["outputs"].append(outputs)
    except Exception as exc:  # reported to the bench, which prints it
        result["error"] = f"{type(exc).__name__}: {exc}"
    print("RESULT " + json.dumps(result, default=repr), flush=True)
    # Flow threads that hung must not keep the interpreter alive.
    os._exit(0)


if __name__ == "__main__":
    main()
