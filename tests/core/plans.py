"""Helpers of the plan tests (tests/core/test_plan*.py): packages of one no-op app wired as
given, a flow's end, skip reasons, a random DAG strategy, and a run simulated to its end.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from hypothesis import strategies as st

from dizest_core import dwp
from dizest_core.graph import Graph
from dizest_core.model import Package
from dizest_core.plan import Plan
from dizest_core.runstate import RunState, Transition
from dizest_core.status import FlowStatus, Reason


def package(
    flows: Iterable[str], edges: Iterable[tuple[str, str]] = (), inactive: Iterable[str] = ()
) -> Package:
    """A valid package: flows in the given order; edge (a, b) means b reads output v of a."""
    flows = list(flows)
    off = set(inactive)
    parents: dict[str, list[str]] = {f: [] for f in flows}
    for a, b in edges:
        parents[b].append(a)
    raw: dict[str, Any] = {
        "apps": {
            "node": {
                "id": "node",
                "code": "pass\n",
                "inputs": [{"type": "output", "name": "x"}],
                "outputs": [{"name": "v"}],
            }
        },
        "flow": {
            f: {
                "id": f,
                "app_id": "node",
                "active": f not in off,
                "data": {},
                "inputs": {"x": {"connections": [{"node": p, "input": "v"} for p in parents[f]]}},
            }
            for f in flows
        },
    }
    return dwp.load(raw)


def end(state: RunState, flow_id: str, ok: bool, reason: str | None = None) -> Transition:
    """Start a pending flow and finish it (a flow must be running to finish, as in Redis)."""
    if state.status[flow_id] is FlowStatus.PENDING:
        state.running(flow_id)
    return state.finish(flow_id, ok, reason)


def needs(flow: str) -> str:
    return Reason.NEEDS_INACTIVE.format(flow=flow)


def failed(flow: str) -> str:
    return Reason.UPSTREAM_FAILED.format(flow=flow)


def is_topological(order: Iterable[str], graph: Graph) -> bool:
    pos = {f: i for i, f in enumerate(order)}
    return all(pos[p] < pos[c] for c in pos for p in graph.parents[c] if p in pos) and len(
        pos
    ) == len(list(order))


def simulate(
    plan: Plan, rng: random.Random, fail: Iterable[str] = ()
) -> tuple[RunState, dict[str, str]]:
    """Run a plan to the end, picking the next ready flow at random; check the ordering rules."""
    fail = set(fail)
    state = RunState(plan)
    first = state.start()
    skipped = dict(first.skipped)
    ready = list(first.ready)
    made_ready = set(ready)
    succeeded: set[str] = set()
    while ready:
        flow_id = ready.pop(rng.randrange(len(ready)))
        assert state.status[flow_id] is FlowStatus.PENDING
        assert all(p in succeeded for p in plan.parents[flow_id]), f"{flow_id} started early"
        assert flow_id not in skipped
        state.running(flow_id)
        ok = flow_id not in fail
        transition = state.finish(flow_id, ok, None if ok else "boom")
        if ok:
            succeeded.add(flow_id)
        for child in transition.ready:
            assert child not in made_ready, f"{child} made ready twice"
            assert all(p in succeeded for p in plan.parents[child])
            made_ready.add(child)
            ready.append(child)
        for child, reason in transition.skipped:
            assert child not in skipped and child not in made_ready
            skipped[child] = reason
    assert state.done
    return state, skipped


@st.composite
def random_dags(draw, max_nodes: int = 10):
    n = draw(st.integers(1, max_nodes))
    names = [f"f{i}" for i in range(n)]
    ranked = draw(st.permutations(names))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    chosen = draw(st.lists(st.sampled_from(pairs), max_size=2 * n) if pairs else st.just([]))
    edges = sorted({(ranked[i], ranked[j]) for i, j in chosen})
    order = draw(st.permutations(names))
    return list(order), edges
