"""Tests for dizest_core.plan: make_plan (full, targeted, inactive, reused) and RunState."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dizest_core import dwp
from dizest_core.errors import UnknownFlowError
from dizest_core.graph import Graph
from dizest_core.model import Package
from dizest_core.plan import Plan, ReadyQueue, make_plan
from dizest_core.runstate import RunState, StaleAttempt, Transition
from dizest_core.status import FlowStatus, Reason

DATA = Path(__file__).resolve().parents[1] / "data"


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


# --------------------------------------------------------------------------- RunState


def join_package() -> Package:
    #   p1, p2, p3 -> j -> k ;  solo -> s2
    return package(
        ["p1", "p2", "p3", "j", "k", "solo", "s2"],
        [("p1", "j"), ("p2", "j"), ("p3", "j"), ("j", "k"), ("solo", "s2")],
    )


def test_start_returns_roots_as_pending() -> None:
    state = RunState(make_plan(join_package()))
    assert all(s is FlowStatus.IDLE for s in state.status.values())
    start = state.start()
    assert start.ready == ["p1", "p2", "p3", "solo"]
    assert start.skipped == []
    for f in start.ready:
        assert state.status[f] is FlowStatus.PENDING
    assert state.status["j"] is FlowStatus.IDLE
    assert not state.done


def test_join_becomes_ready_only_after_its_last_parent() -> None:
    state = RunState(make_plan(join_package()))
    state.start()
    assert end(state, "p2", ok=True).ready == []
    assert state.status["j"] is FlowStatus.IDLE
    assert end(state, "p1", ok=True).ready == []
    assert end(state, "p3", ok=True).ready == ["j"]
    assert state.status["j"] is FlowStatus.PENDING
    assert state.status["p3"] is FlowStatus.READY
    state.running("j")
    assert state.status["j"] is FlowStatus.RUNNING
    assert end(state, "j", ok=True).ready == ["k"]
    assert end(state, "solo", ok=True).ready == ["s2"]
    assert not state.done
    assert end(state, "k", ok=True).ready == []
    assert end(state, "s2", ok=True).ready == []
    assert state.done
    assert all(s is FlowStatus.READY for s in state.status.values())


def test_finish_returns_every_child_made_ready() -> None:
    pkg = package(["a", "b", "c", "d"], [("a", "b"), ("a", "c"), ("a", "d"), ("b", "d")])
    state = RunState(make_plan(pkg))
    assert state.start().ready == ["a"]
    assert end(state, "a", ok=True).ready == ["b", "c"]
    assert end(state, "b", ok=True).ready == ["d"]


def test_failure_skips_descendants_transitively_and_spares_other_branches() -> None:
    #   a -> b -> c -> d ;  a -> e ;  r -> s
    pkg = package(
        ["a", "b", "c", "d", "e", "r", "s"],
        [("a", "b"), ("b", "c"), ("c", "d"), ("a", "e"), ("r", "s")],
    )
    state = RunState(make_plan(pkg))
    assert state.start().ready == ["a", "r"]
    assert end(state, "a", ok=True).ready == ["b", "e"]
    t = end(state, "b", ok=False, reason="boom")
    assert t.ready == []
    assert t.skipped == [("c", failed("b")), ("d", failed("b"))]
    assert t.skipped[0][1] == "upstream failed: b"
    assert state.status["b"] is FlowStatus.ERROR
    assert state.reason["b"] == "boom"
    for f in "cd":
        assert state.status[f] is FlowStatus.IDLE
        assert state.reason[f] == failed("b")
    assert state.failed
    assert end(state, "r", ok=True).ready == ["s"]
    assert end(state, "e", ok=True).ready == []
    assert not state.done
    assert end(state, "s", ok=True).ready == []
    assert state.done


def test_join_child_of_a_failed_parent_is_never_made_ready() -> None:
    state = RunState(make_plan(join_package()))
    state.start()
    t = end(state, "p1", ok=False)
    assert t.skipped == [("j", failed("p1")), ("k", failed("p1"))]
    assert end(state, "p2", ok=True).ready == []
    assert end(state, "p3", ok=True).ready == []
    assert state.status["j"] is FlowStatus.IDLE
    assert state.reason["j"] == failed("p1")
    assert end(state, "solo", ok=True).ready == ["s2"]
    end(state, "s2", ok=True)
    assert state.done


def test_two_failures_above_one_join_skip_it_once() -> None:
    state = RunState(make_plan(join_package()))
    state.start()
    assert [f for f, _ in end(state, "p1", ok=False).skipped] == ["j", "k"]
    assert end(state, "p2", ok=False).skipped == []
    assert state.reason["j"] == failed("p1")
    end(state, "p3", ok=True)
    end(state, "solo", ok=True)
    assert not state.done
    end(state, "s2", ok=True)
    assert state.done


def test_cancel_resolves_pending_and_idle_flows() -> None:
    state = RunState(make_plan(join_package()))
    state.start()
    state.running("p1")
    end(state, "solo", ok=True)  # s2 is now pending
    stopped = state.cancel()
    assert sorted(stopped) == ["j", "k", "p2", "p3", "s2"]
    for f in stopped:
        assert state.status[f] is FlowStatus.IDLE
        assert state.reason[f] == Reason.CANCELLED == "cancelled"
    assert state.status["p1"] is FlowStatus.RUNNING
    assert state.status["solo"] is FlowStatus.READY
    assert not state.done  # p1 is still running
    assert end(state, "p1", ok=True).ready == []
    assert state.done
    assert state.reason["j"] == "cancelled"
    assert state.cancel() == []


def test_cancel_does_not_touch_already_skipped_flows() -> None:
    pkg = package(["x", "a", "b"], [("x", "a")], inactive=["x"])
    state = RunState(make_plan(pkg))
    state.start()
    assert state.cancel() == ["b"]
    assert state.reason["a"] == needs("x")
    assert state.done


def test_finishing_twice_raises() -> None:
    state = RunState(make_plan(join_package()))
    state.start()
    end(state, "p1", ok=True)
    with pytest.raises(ValueError):
        state.finish("p1", ok=True)
    with pytest.raises(ValueError):
        state.finish("p1", ok=False)
    end(state, "p2", ok=False)
    with pytest.raises(ValueError):
        state.finish("p2", ok=True)


def test_finishing_a_flow_that_is_not_running_raises() -> None:
    state = RunState(make_plan(join_package()))
    state.start()
    with pytest.raises(StaleAttempt):
        state.finish("p1", ok=True)  # pending: nobody has started it (FINISH says stale too)
    with pytest.raises(ValueError):
        state.finish("j", ok=True)  # still idle: waiting for its parents
    with pytest.raises(ValueError):
        state.running("j")
    end(state, "p1", ok=False)
    with pytest.raises(ValueError):
        state.finish("k", ok=True)  # skipped


def test_running_an_unknown_flow_raises_unknown_flow_error() -> None:
    state = RunState(make_plan(join_package()))
    state.start()
    with pytest.raises(UnknownFlowError):
        state.running("nope")


def test_empty_plan_is_done_at_once() -> None:
    pkg = package(["x"], inactive=["x"])
    state = RunState(make_plan(pkg))
    assert state.start().ready == []
    assert state.done


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
