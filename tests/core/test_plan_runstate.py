"""Tests for dizest_core.runstate: RunState's start, finish and cancel on a plan, flow by flow."""

from __future__ import annotations

import pytest

from dizest_core.errors import UnknownFlowError
from dizest_core.model import Package
from dizest_core.plan import make_plan
from dizest_core.runstate import RunState, StaleAttempt
from dizest_core.status import FlowStatus, Reason
from tests.core.plans import end, failed, needs, package

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
