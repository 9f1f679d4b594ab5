"""Tests for dizest_core.plan: make_plan (full, targeted, inactive, reused), rank and the ready
queue.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dizest_core.errors import UnknownFlowError
from dizest_core.graph import Graph
from dizest_core.model import Package
from dizest_core.plan import ReadyQueue, make_plan
from dizest_core.runstate import RunState
from dizest_core.status import FlowStatus
from tests.core.plans import end, is_topological, needs, package, random_dags, simulate

# --------------------------------------------------------------------------- make_plan: full


def test_full_plan_runs_active_flows_in_topological_order() -> None:
    pkg = package(["d", "c", "b", "a"], [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    plan = make_plan(pkg)
    assert plan.run == ("a", "c", "b", "d")  # ties (b, c) broken by package order
    assert plan.parents == {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
    assert set(plan.children["a"]) == {"b", "c"}
    assert plan.reused == frozenset()
    assert plan.skipped == {}
    assert plan.roots() == ["a"]


def test_full_plan_accepts_a_prebuilt_graph() -> None:
    pkg = package(["a", "b"], [("a", "b")])
    assert make_plan(pkg, Graph.from_package(pkg)).run == ("a", "b")


def test_inactive_flow_without_outputs_skips_its_descendants_transitively() -> None:
    pkg = package(
        ["x", "a", "b", "c", "free"],
        [("x", "a"), ("a", "b"), ("b", "c")],
        inactive=["x"],
    )
    plan = make_plan(pkg)
    assert "x" not in plan.run
    assert "x" not in plan.reused
    assert plan.skipped == {"a": needs("x"), "b": needs("x"), "c": needs("x")}
    assert plan.skipped["c"] == "needs output of inactive flow x, which has none"
    assert plan.roots() == ["free"]
    state = RunState(plan)
    start = state.start()
    assert start.ready == ["free"]
    assert dict(start.skipped) == plan.skipped
    assert end(state, "free", ok=True).ready == []
    assert state.done
    assert {f: state.reason[f] for f in "abc"} == plan.skipped


def test_join_with_an_inactive_parent_is_skipped_and_never_made_ready() -> None:
    pkg = package(["x", "a", "j"], [("x", "j"), ("a", "j")], inactive=["x"])
    plan = make_plan(pkg)
    assert plan.skipped == {"j": needs("x")}
    state = RunState(plan)
    assert state.start().ready == ["a"]
    assert end(state, "a", ok=True).ready == []
    assert state.status["j"] is FlowStatus.IDLE
    assert state.done


def test_inactive_flow_with_available_outputs_is_reused() -> None:
    pkg = package(["x", "a", "b"], [("x", "a"), ("a", "b")], inactive=["x"])
    plan = make_plan(pkg, available=lambda f: f == "x")
    assert plan.reused == frozenset({"x"})
    assert plan.run == ("a", "b")
    assert plan.skipped == {}
    assert plan.parents["a"] == ()
    assert plan.roots() == ["a"]
    state, skipped = simulate(plan, random.Random(0))
    assert skipped == {}
    assert all(state.status[f] is FlowStatus.READY for f in plan.run)


def test_full_plan_reruns_active_flows_even_if_available() -> None:
    pkg = package(["a", "b"], [("a", "b")])
    plan = make_plan(pkg, available=lambda f: True)
    assert plan.run == ("a", "b")
    assert plan.reused == frozenset()


@settings(max_examples=60, deadline=None)
@given(random_dags(), st.data())
def test_full_plan_matches_an_independent_model(dag, data) -> None:
    names, edges = dag
    inactive = set(data.draw(st.lists(st.sampled_from(names), max_size=3)))
    have = set(data.draw(st.lists(st.sampled_from(names), max_size=3)))
    pkg = package(names, edges, inactive)
    graph = Graph.from_package(pkg)
    plan = make_plan(pkg, available=have.__contains__)

    active = [f for f in names if f not in inactive]
    assert set(plan.run) == set(active)
    assert is_topological(plan.run, graph)
    assert plan.reused == frozenset(inactive & have)
    missing = inactive - have
    # oracle: an active flow is skipped iff some ancestor path reaches a missing inactive flow
    # through active flows only
    up = {f: {p for p, c in edges if c == f} for f in names}

    def blocked_by(flow: str) -> set[str]:
        found, todo, seen = set(), list(up[flow]), set()
        while todo:
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            if p in missing:
                found.add(p)
            elif p not in inactive:
                todo.extend(up[p])
        return found

    expected = {f for f in active if blocked_by(f)}
    assert set(plan.skipped) == expected
    for flow_id, reason in plan.skipped.items():
        assert reason in {needs(x) for x in blocked_by(flow_id)}
    for f in plan.run:
        assert set(plan.parents[f]) == up[f] & set(active)


# --------------------------------------------------------------------------- make_plan: targets


def targeted_package() -> Package:
    #   r1 -> m -> t -> d
    #   r2 ------> t
    #   u (unrelated)
    return package(
        ["u", "d", "t", "m", "r2", "r1"],
        [("r1", "m"), ("m", "t"), ("r2", "t"), ("t", "d")],
    )


def test_targeted_plan_has_the_target_and_only_its_upstream() -> None:
    plan = make_plan(targeted_package(), targets=["t"])
    assert set(plan.run) == {"r1", "m", "r2", "t"}
    assert plan.run.index("t") == len(plan.run) - 1
    assert plan.run.index("r1") < plan.run.index("m")
    assert plan.reused == frozenset()
    assert plan.skipped == {}


def test_targeted_plan_with_several_targets() -> None:
    plan = make_plan(targeted_package(), targets=["m", "u"])
    assert set(plan.run) == {"r1", "m", "u"}


def test_targeted_plan_reuses_available_upstream_and_stops_there() -> None:
    plan = make_plan(targeted_package(), targets=["t"], available=lambda f: f == "m")
    assert plan.reused == frozenset({"m"})
    assert set(plan.run) == {"r2", "t"}
    assert "r1" not in plan.run and "r1" not in plan.reused  # above a reused flow
    assert plan.parents["t"] == ("r2",)
    assert plan.roots() == ["r2"]


def test_targeted_plan_reruns_the_target_even_if_available() -> None:
    plan = make_plan(targeted_package(), targets=["t"], available=lambda f: True)
    assert plan.run == ("t",)
    assert plan.reused == frozenset({"m", "r2"})
    assert plan.roots() == ["t"]


def test_targeted_plan_with_missing_inactive_upstream_skips_the_target() -> None:
    pkg = package(["a", "b", "t"], [("a", "b"), ("b", "t")], inactive=["a"])
    plan = make_plan(pkg, targets=["t"])
    assert set(plan.run) == {"b", "t"}
    assert plan.skipped == {"b": needs("a"), "t": needs("a")}
    plan = make_plan(pkg, targets=["t"], available=lambda f: f == "a")
    assert plan.reused == frozenset({"a"})
    assert plan.skipped == {}


def test_targeting_an_inactive_flow_runs_it() -> None:
    pkg = package(["a", "b"], [("a", "b")], inactive=["b"])
    assert make_plan(pkg, targets=["b"]).run == ("a", "b")


def test_unknown_target_raises_unknown_flow_error() -> None:
    with pytest.raises(UnknownFlowError, match="nope") as info:
        make_plan(targeted_package(), targets=["t", "nope"])
    assert isinstance(info.value, LookupError)
    with pytest.raises(LookupError):
        make_plan(targeted_package(), targets=["nope"])


def test_rank_is_the_longest_remaining_path_then_package_order() -> None:
    # z -> a -> b -> c, z -> d; e alone; package order puts e and d before the chain
    pkg = package(["e", "d", "z", "a", "b", "c"], [("z", "a"), ("a", "b"), ("b", "c"), ("z", "d")])
    plan = make_plan(pkg)
    assert {f: plan.remaining(f) for f in plan.run} == {
        "e": 1,
        "d": 1,
        "z": 4,
        "a": 3,
        "b": 2,
        "c": 1,
    }
    assert sorted(plan.run, key=plan.rank) == ["z", "a", "b", "e", "d", "c"]
    assert [plan.level(f, 10) for f in ("z", "a", "b", "c")] == [0, 1, 2, 3]
    # more path lengths than levels: spread over them, the longest at 0, a sink at the last
    chain = [f"f{i:02d}" for i in range(25)]
    long_plan = make_plan(package(chain, list(itertools.pairwise(chain))))
    levels = [long_plan.level(f, 10) for f in chain]
    assert levels[0] == 0 and levels[-1] == 9 and levels == sorted(levels)


def test_ready_queue_hands_out_flows_in_rank_order() -> None:
    pkg = package(["e", "d", "z", "a"], [("z", "a")])
    queue: ReadyQueue[str] = ReadyQueue(make_plan(pkg), str)
    queue.extend(["e", "d", "z"])
    assert len(queue) == 3 and sorted(queue) == ["d", "e", "z"]
    assert [queue.pop(), queue.pop(), queue.pop()] == ["z", "e", "d"]
    assert not queue
