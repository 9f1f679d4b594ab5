"""Tests for dizest_core.plan and runstate together: whole runs simulated to their end, the
sample DAGs and random ones, with and without failures.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dizest_core import dwp
from dizest_core.graph import Graph
from dizest_core.plan import Plan, make_plan
from dizest_core.runstate import RunState
from dizest_core.status import FlowStatus
from tests.core.plans import failed, package, random_dags, simulate

DATA = Path(__file__).resolve().parents[1] / "data"


# --------------------------------------------------------------------------- simulated runs


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["dag100", "dag1000"])
def test_simulated_full_run_of_sample_dag(name: str, seed: int) -> None:
    pkg = dwp.load(DATA / f"{name}.dwp")
    plan = make_plan(pkg)
    assert set(plan.run) == set(pkg.flows)
    state, skipped = simulate(plan, random.Random(seed))
    assert skipped == {}
    assert all(state.status[f] is FlowStatus.READY for f in pkg.flows)
    assert not state.failed


@pytest.mark.parametrize("seed", [3, 4])
def test_simulated_run_of_dag100_with_failures(seed: int) -> None:
    pkg = dwp.load(DATA / "dag100.dwp")
    plan = make_plan(pkg)
    graph = Graph.from_package(pkg)
    rng = random.Random(seed)
    fail = set(rng.sample(list(pkg.flows), 5))
    state, skipped = simulate(plan, rng, fail)
    check_outcome(plan, graph, state, skipped, fail)


def check_outcome(
    plan: Plan, graph: Graph, state: RunState, skipped: dict[str, str], fail: set[str]
) -> None:
    """Ran iff no ancestor failed; every skip names a failed ancestor."""
    for f in plan.run:
        ancestors = graph.upstream([f]) - {f}
        failed_above = {a for a in ancestors if state.status[a] is FlowStatus.ERROR}
        if failed_above:
            assert state.status[f] is FlowStatus.IDLE
            assert skipped[f] == state.reason[f]
            assert state.reason[f] in {failed(a) for a in failed_above}
        else:
            expected = FlowStatus.ERROR if f in fail else FlowStatus.READY
            assert state.status[f] is expected


@settings(max_examples=60, deadline=None)
@given(random_dags(max_nodes=12), st.data())
def test_simulated_runs_of_random_dags(dag, data) -> None:
    names, edges = dag
    fail = set(data.draw(st.lists(st.sampled_from(names), max_size=3)))
    pkg = package(names, edges)
    plan = make_plan(pkg)
    rng = data.draw(st.randoms(use_true_random=False))
    state, skipped = simulate(plan, rng, fail)
    check_outcome(plan, Graph.from_package(pkg), state, skipped, fail)
