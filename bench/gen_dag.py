"""Random-DAG workflow packages built in memory, in the .dwp shape DIZEST 4.0.15 reads.

Same shape and random draws as the dag100/dag1000 benchmark packages: flow 0 ("root") outputs
v = 1; flow i > 0 reads k = randint(1, min(3, i)) distinct earlier flows on its one input port
"x" (chosen by `random.Random(seed).sample`) and outputs v = sum of them. With n=1000 and
seed=1000 the result equals tests/data/dag1000.dwp (key for key). `make_sleep_dag`: the same shape
with one app per flow that sleeps a seeded 5-50 ms (the makespan benchmarks of both modes).

    python bench/gen_dag.py 10000 --seed 10000 --out /tmp/dag10000.dwp
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ROOT_CODE = "dizest.output('v', 1)\n"
NODE_CODE = "dizest.output('v', sum(dizest.inputs('x')))\n"


def app_dict(app_id: str, code: str, inputs: Sequence[str] = ()) -> dict[str, Any]:
    """A DIZEST app with output-type `inputs` and one output `v`."""
    return {
        "id": app_id,
        "title": app_id,
        "version": "1.0.0",
        "description": "",
        "cdn": {"js": [], "css": []},
        "inputs": [{"type": "output", "name": n} for n in inputs],
        "outputs": [{"name": "v"}],
        "code": code,
        "api": "",
        "html": "",
        "js": "",
        "css": "",
    }


def flow_dict(
    flow_id: str, app_id: str, ordinal: int, inputs: Sequence[str] = ()
) -> dict[str, Any]:
    """A DIZEST flow (editor layout by `ordinal`) with empty connections on `inputs`."""
    return {
        "id": flow_id,
        "app_id": app_id,
        "active": True,
        "title": "",
        "description": "",
        "class": "",
        "name": "",
        "typenode": False,
        "pos_x": 100 + 300 * (ordinal % 10),
        "pos_y": 100 + 180 * (ordinal // 10),
        "data": {},
        "inputs": {name: {"connections": []} for name in inputs},
        "outputs": {"v": {"connections": []}},
    }


def connect(flows: dict[str, dict[str, Any]], src: str, dst: str, port: str = "x") -> None:
    """Wire src.v -> dst.port, on both sides as the editor writes it."""
    flows[dst]["inputs"][port]["connections"].append({"node": src, "input": "v"})
    flows[src]["outputs"]["v"]["connections"].append({"node": dst, "output": port})


def package_dict(
    title: str, description: str, apps: dict[str, Any], flows: dict[str, Any]
) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "version": "1.0.0",
        "visibility": "private",
        "category": "benchmark",
        "featured": "",
        "logo": "",
        "extra": {},
        "favorite": "0",
        "executable": None,
        "executable_name": "base",
        "apps": apps,
        "flow": flows,
    }


def make_dag(n: int, seed: int) -> tuple[dict[str, Any], dict[str, int]]:
    """(package dict, expected v of every flow) for an n-flow random DAG."""
    rnd = random.Random(seed)
    ids = [f"n{i:04d}" for i in range(n)]
    flows: dict[str, dict[str, Any]] = {ids[0]: flow_dict(ids[0], "root", 1)}
    values = {ids[0]: 1}
    for i in range(1, n):
        k = rnd.randint(1, min(3, i))
        parents = rnd.sample(range(i), k)
        fid = ids[i]
        flows[fid] = flow_dict(fid, "node", i + 1, ["x"])
        for p in parents:
            connect(flows, ids[p], fid)
        values[fid] = sum(values[ids[p]] for p in parents)
    description = (
        f"random DAG, {n} flows, seed {seed}; each non-root flow has 1-3 parents "
        "from earlier flows on ONE input port 'x'; v = sum of parents' v; root v = 1"
    )
    apps = {"root": app_dict("root", ROOT_CODE), "node": app_dict("node", NODE_CODE, ["x"])}
    package = package_dict(f"dag{n}", description, apps, flows)
    return package, values


@dataclass
class SleepDag:
    package: dict[str, Any]
    values: dict[str, int]
    sleeps: dict[str, float]
    critical_path_s: float
    critical_path_flows: int
    sinks: list[str]
    parents: dict[str, list[str]]


def make_sleep_dag(n: int, seed: int) -> SleepDag:
    """make_dag's random DAG shape; flow f sleeps sleeps[f] (5-50 ms, seeded), then outputs
    sum(inputs) + 1. One app per flow (its sleep is a literal in the code)."""
    package, _ = make_dag(n, seed)
    rnd = random.Random(seed * 7919 + 1)
    order = list(package["flow"])  # parents come before children (make_dag's construction)
    sleeps = {f: round(rnd.uniform(0.005, 0.050), 4) for f in order}
    apps: dict[str, Any] = {}
    parents: dict[str, list[str]] = {}
    for f in order:
        flow = package["flow"][f]
        conns = flow["inputs"].get("x", {}).get("connections", [])
        parents[f] = [c["node"] for c in conns]
        body = f"import time\ntime.sleep({sleeps[f]})\n"
        if parents[f]:
            apps[f"a{f}"] = app_dict(
                f"a{f}", body + "dizest.output('v', sum(dizest.inputs('x')) + 1)\n", ["x"]
            )
        else:
            apps[f"a{f}"] = app_dict(f"a{f}", body + "dizest.output('v', 1)\n")
        flow["app_id"] = f"a{f}"
    package["apps"] = apps
    values: dict[str, int] = {}
    finish: dict[str, float] = {}
    depth: dict[str, int] = {}
    for f in order:
        values[f] = sum(values[p] for p in parents[f]) + 1
        start = max((finish[p] for p in parents[f]), default=0.0)
        finish[f] = start + sleeps[f]
        depth[f] = 1 + max((depth[p] for p in parents[f]), default=0)
    has_child = {p for f in order for p in parents[f]}
    sinks = [f for f in order if f not in has_child]
    last = max(finish, key=lambda f: finish[f])
    return SleepDag(package, values, sleeps, finish[last], max(depth.values()), sinks, parents)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int)
    ap.add_argument("--seed", type=int, default=None, help="default: n")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    package, _ = make_dag(args.n, args.n if args.seed is None else args.seed)
    with open(args.out, "w", encoding="utf-8") as fp:
        json.dump(package, fp, indent=1)


if __name__ == "__main__":
    main()
