"""Time .dwp packages through Dask distributed, warm (run by the Python in $DASK_REF_PYTHON).

The reference for issue 12's distributed target: the same DAG as the package, one Dask task
per flow, on a `distributed.LocalCluster` of `--workers` processes x `--threads` threads
(bench_worker uses 2 x 1: config A's two prefork slots). Each task runs its flow's app code
(`exec` with a small `dizest` stand-in: `input`, `inputs`, `output`), so the work per task
is what a flow's code does, without dizest's process per flow. Per package: one warm-up
compute on the cluster, then `--repeat` timed runs, each building a fresh graph (new keys)
and calling `client.get` for every flow's outputs; timed = build + compute + results back.
CPU: user + sys of this process (client and scheduler) and of every worker process and
nanny during the timed runs. Imports only the stdlib and dask/distributed (psutil comes with
distributed); the last stdout line is `RESULT <json>`:
{"versions", "cluster", "start_s", "packages": {path: {"times", "build_s", "cpu_s",
"flows", "outputs": {flow: value} of the last run, "error"}}}. bench/vs_dask.py runs it.

    $DASK_REF_PYTHON bench/ref_dask.py PATH [PATH ...] --output v --repeat 5 --workers 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

# ----------------------------------------------------------------------------- task side


class _Dizest:
    """What the packages' app code calls: `input`, `inputs` and `output`, as DIZEST has them
    (a variable input is the flow's data; a wired one the last value, or all of them)."""

    def __init__(
        self, data: dict[str, Any], wired: dict[str, list[Any]], variables: set[str]
    ) -> None:
        self._data = data
        self._wired = wired
        self._variables = variables
        self.outputs: dict[str, Any] = {}

    def input(self, name: str, default: Any = None) -> Any:
        if name in self._variables:
            return self._data.get(name, default)
        values = self._wired.get(name) or [default]
        return values[-1]

    def inputs(self, name: str) -> list[Any]:
        return list(self._wired.get(name, []))

    def output(self, name: str, value: Any = None) -> Any:
        self.outputs[name] = value
        return value


def run_flow(code: str, data: dict[str, Any], variables: list[str], wires: list[Any]) -> Any:
    """One flow: `wires` is [[port, output name, parent's outputs], ...] in connection order."""
    wired: dict[str, list[Any]] = {}
    for port, name, parent in wires:
        wired.setdefault(port, []).append(parent.get(name))
    stand_in = _Dizest(data, wired, set(variables))
    exec(code, {"dizest": stand_in, "__name__": "__flow__"})
    return stand_in.outputs


# ----------------------------------------------------------------------------- graph


def build_graph(package: dict[str, Any], tag: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A Dask graph (dict of key -> task tuple), one key per active flow, and flow -> key."""
    apps = package["apps"]
    flows = {fid: f for fid, f in package["flow"].items() if f.get("active", True)}
    keys = {fid: f"dzref-{tag}-{fid}" for fid in flows}
    dsk: dict[str, Any] = {}
    for fid, flow in flows.items():
        app = apps[flow["app_id"]]
        variables = [i["name"] for i in app.get("inputs", []) if i.get("type") == "variable"]
        wires = [
            [port, conn["input"], keys[conn["node"]]]
            for port, spec in (flow.get("inputs") or {}).items()
            for conn in spec.get("connections", [])
            if conn["node"] in keys
        ]
        dsk[keys[fid]] = (run_flow, app["code"], flow.get("data") or {}, variables, wires)
    return dsk, keys


def cpu_seconds(pids: Sequence[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def tree_pids() -> list[int]:
    import psutil

    me = psutil.Process()
    return [me.pid, *(p.pid for p in me.children(recursive=True))]


def time_package(client: Any, path: str, output: str, repeat: int) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fp:
        package = json.load(fp)
    out: dict[str, Any] = {"times": [], "build_s": [], "cpu_s": 0.0, "error": None}
    try:
        dsk, keys = build_graph(package, "warm")
        client.get(dsk, list(keys.values()))
        pids = tree_pids()
        cpu0 = cpu_seconds(pids)
        results: list[Any] = []
        for i in range(repeat):
            t0 = time.perf_counter()
            dsk, keys = build_graph(package, f"r{i}")
            t1 = time.perf_counter()
            results = client.get(dsk, list(keys.values()))
            out["times"].append(time.perf_counter() - t0)
            out["build_s"].append(t1 - t0)
        out["cpu_s"] = cpu_seconds(pids) - cpu0
        out["flows"] = len(keys)
        out["outputs"] = {fid: r.get(output) for fid, r in zip(keys, results, strict=True)}
    except Exception as exc:  # reported to the bench, which prints it
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--output", default="v")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2, help="worker processes")
    ap.add_argument("--threads", type=int, default=1, help="threads per worker process")
    args = ap.parse_args()
    result: dict[str, Any] = {"packages": {}, "error": None}
    try:
        import dask
        import distributed

        result["versions"] = {"dask": dask.__version__, "distributed": distributed.__version__}
        result["cluster"] = f"LocalCluster {args.workers} processes x {args.threads} thread(s)"
        t0 = time.perf_counter()
        with (
            distributed.LocalCluster(
                n_workers=args.workers,
                threads_per_worker=args.threads,
                processes=True,
                dashboard_address=None,
                silence_logs=40,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            result["start_s"] = time.perf_counter() - t0
            for path in args.paths:
                result["packages"][path] = time_package(client, path, args.output, args.repeat)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    print("RESULT " + json.dumps(result, default=repr), flush=True)


if __name__ == "__main__":
    main()
