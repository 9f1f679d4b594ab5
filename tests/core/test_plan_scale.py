"""The fast paths behind planning 100,000 flows (issue 12) give what the general code gives:
the graph built from a package, the topological order of a package already in order, the
acyclic check, and the collector pause that leaves the collector as it found it."""

from __future__ import annotations

import gc
import sys
import weakref
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dizest_core import dwp, gcpause
from dizest_core.graph import Graph
from dizest_core.plan import make_plan

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from gen_dag import app_dict, flow_dict, make_dag, package_dict

PROPS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def wired(draw) -> tuple[list[str], list[tuple[str, str]]]:
    """Flow ids in package order and (source, flow) wires, cycles, duplicates, self-loops and
    wires from missing flows included."""
    n = draw(st.integers(1, 10))
    names = [f"f{i}" for i in range(n)]
    pool = [*names, "ghost"]
    wires = draw(st.lists(st.tuples(st.sampled_from(pool), st.sampled_from(names)), max_size=3 * n))
    return names, wires


def package_of(names: list[str], wires: list[tuple[str, str]]):
    flows = {f: flow_dict(f, "node", i, ["x"]) for i, f in enumerate(names)}
    for src, dst in wires:
        flows[dst]["inputs"]["x"]["connections"].append({"node": src, "input": "v"})
    apps = {"node": app_dict("node", "dizest.output('v', 1)\n", ["x"])}
    package, _ = dwp.parse(package_dict("t", "", apps, flows))
    return package


@PROPS
@given(wired())
def test_graph_from_package_is_the_general_graph_and_is_built_once(case) -> None:
    names, wires = case
    package = package_of(names, wires)
    # the edges the general constructor got before: flow by flow, each in connection order
    general = Graph(names, [(src, dst) for dst in names for src, d in wires if d == dst])
    fast = Graph.from_package(package)
    assert fast.nodes == general.nodes
    assert fast.parents == general.parents
    assert fast.children == general.children
    # the one pass also tells whether package order is a topological order (no cycle then)
    assert fast._in_order() == general._in_order()
    assert fast.find_cycles() == general.find_cycles()
    if not general.find_cycles():
        assert fast.topological_order() == general.topological_order()
    assert Graph.from_package(package) is fast


@PROPS
@given(wired())
def test_order_and_cycles_match_the_heap_and_tarjan(case) -> None:
    names, wires = case
    fast = Graph(names, wires)
    slow = Graph(names, wires)
    slow._ordered = False  # forces Kahn with the heap and Tarjan's pass
    slow._acyclic = lambda: False  # type: ignore[method-assign]
    assert fast.find_cycles() == slow.find_cycles()
    if fast.find_cycles():
        return
    assert fast.topological_order() == slow.topological_order()


def test_in_order_package_keeps_package_order_and_out_of_order_one_does_not() -> None:
    assert Graph(["a", "b", "c"], [("a", "c"), ("b", "c")]).topological_order() == ["a", "b", "c"]
    assert Graph(["c", "a", "b"], [("a", "c"), ("b", "c")]).topological_order() == ["a", "b", "c"]


def test_pause_nests_and_restores_the_collector() -> None:
    assert gc.isenabled()
    with gcpause.paused():
        assert not gc.isenabled()
        with gcpause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block still runs
    assert gc.isenabled()
    gc.disable()
    try:
        with gcpause.paused():
            pass
        assert not gc.isenabled()  # off before: stays off
    finally:
        gc.enable()


def test_a_cycle_made_during_the_pause_is_still_collected() -> None:
    class Node:
        pass

    with gcpause.paused():
        a, b = Node(), Node()
        a.other, b.other = b, a  # type: ignore[attr-defined]
        probe = weakref.ref(a)
        del a, b
    assert probe() is not None  # no collection inside the pause
    gc.collect()
    assert probe() is None


def test_a_large_random_dag_loads_and_plans_every_flow() -> None:
    package, values = make_dag(5000, seed=5000)
    loaded = dwp.load(package)
    plan = make_plan(loaded)
    assert len(plan.run) == len(values) == 5000
    assert set(plan.run) == set(values)
    position = {f: i for i, f in enumerate(plan.run)}
    assert all(position[p] < position[f] for f in plan.run for p in plan.parents[f])
    assert not plan.skipped and not plan.reused
