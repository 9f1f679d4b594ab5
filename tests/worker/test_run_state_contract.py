"""One contract for run state: the same scenarios against the in-memory rules (`RunState`, what
local runs apply) and the Redis steps (the Lua scripts workers and reapers run), on a real Redis.

Every scenario asserts its expected answers on each implementation, then both must have given
the same answers, the same events (type, flow, data: ids and times aside) and the same report
(run status; each flow's status, reason and index). The random tests drive both through random
DAGs with random orders of claims, successes, failures, retries, lost workers and a cancel.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dizest_core.runsteps import FAILED, MemoryRuns, RunSteps, Step
from dizest_core.status import Reason
from dizest_worker.connection import redis_client
from dizest_worker.redis_steps import RedisSteps
from dizest_worker.state import RedisRuns
from tests.worker.conftest import cleanup, make_settings


def dag(flows: list[str], edges: list[tuple[str, str]], inactive: tuple[str, ...] = ()) -> dict:
    """A .dwp: flows in this order, edge (a, b): b reads output v of a."""
    parents: dict[str, list[str]] = {f: [] for f in flows}
    for a, b in edges:
        parents[b].append(a)
    app = {
        "id": "node",
        "code": "v = 1\n",
        "inputs": [{"type": "output", "name": "x"}],
        "outputs": [{"name": "v"}],
    }
    return {
        "apps": {"node": app},
        "flow": {
            f: {
                "id": f,
                "app_id": "node",
                "active": f not in inactive,
                "data": {},
                "inputs": {"x": {"connections": [{"node": p, "input": "v"} for p in parents[f]]}},
            }
            for f in flows
        },
    }


#   a -> b, c -> d -> e
DIAMOND = dag(list("abcde"), [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "e")])


@pytest.fixture
def both(redis_url, tmp_path) -> Iterator[tuple[RunSteps, RunSteps]]:
    config = make_settings(redis_url, tmp_path)
    yield MemoryRuns(config.max_attempts), RedisSteps(RedisRuns(redis_client(config), config))
    cleanup(config)


def run(steps: RunSteps, run_id: str, flow: str, attempt: int = 1, ok: bool = True, **kw) -> Step:
    assert steps.claim(run_id, flow, attempt) == "ok"
    return steps.finish(run_id, flow, attempt, ok, None if ok else "boom", **kw)


def full_run(s: RunSteps) -> list[Any]:
    assert s.create("r", DIAMOND) == ("a",)
    trace = [run(s, "r", "a"), run(s, "r", "b"), run(s, "r", "c"), run(s, "r", "d")]
    assert [t.ready for t in trace] == [("b", "c"), (), ("d",), ("e",)]
    last = run(s, "r", "e")
    assert last.final == "ready"
    return [*trace, last]


def failure_skips_below(s: RunSteps) -> list[Any]:
    s.create("r", DIAMOND)
    run(s, "r", "a")
    failed = run(s, "r", "b", ok=False)
    assert failed == Step("ok", (), None)
    assert s.report("r")["flows"]["e"] == {
        "status": "idle",
        "reason": Reason.UPSTREAM_FAILED.format(flow="b"),
        "index": -2,
    }
    last = run(s, "r", "c")
    assert last.final == "error"
    return [failed, last]


def only_a_running_current_attempt_finishes(s: RunSteps) -> list[Any]:
    s.create("r", DIAMOND)
    answers = [
        s.finish("r", "a", 1, True).outcome,  # pending: never claimed
        s.claim("r", "a", 2),  # not its attempt
        s.claim("r", "a", 1),
        s.claim("r", "a", 1),  # taken already
        s.claim("r", "b", 1),  # not ready
        s.finish("r", "a", 2, True).outcome,
    ]
    assert answers == ["stale", "stale", "ok", "stale", "stale", "stale"]
    return answers


def retries_then_success(s: RunSteps) -> list[Any]:
    s.create("r", DIAMOND)
    retried = run(s, "r", "a", ok=False, max_retries=1)
    assert retried == Step("retry", next_attempt=2)
    assert s.report("r")["flows"]["a"]["reason"] == Reason.RETRYING.format(reason="boom")
    used_up = run(s, "r", "a", attempt=2, ok=False, max_retries=1)
    assert used_up.outcome == "ok" and s.report("r")["status"] == "error"
    return [retried, used_up]


def lost_workers_then_exhausted(s: RunSteps) -> list[Any]:
    s.create("r", DIAMOND)
    answers: list[Any] = [s.lose("r", "a", 1)]  # pending: nobody had claimed it
    for attempt in range(1, s.max_attempts):
        s.claim("r", "a", attempt)
        answers.append(s.lose("r", "a", attempt))
        answers.append(s.finish("r", "a", attempt, True).outcome)  # the old attempt lost
    s.claim("r", "a", s.max_attempts)
    answers.append(s.lose("r", "a", s.max_attempts))
    assert answers[:4] == ["resend", "2", "stale", "3"]
    assert answers[-1] == FAILED
    assert s.report("r")["flows"]["a"]["reason"] == Reason.WORKER_LOST
    assert s.report("r")["status"] == "error"
    return answers


def cancel_with_a_flow_running(s: RunSteps) -> list[Any]:
    s.create("r", DIAMOND)
    run(s, "r", "a")
    s.claim("r", "b", 1)
    s.cancel("r")
    answers: list[Any] = [s.claim("r", "c", 1), s.finish("r", "b", 1, False, "boom", 3)]
    assert answers == ["cancelled", Step("ok", (), "cancelled")]
    return answers


def cancel_then_the_worker_is_lost(s: RunSteps) -> list[Any]:
    s.create("r", DIAMOND)
    s.claim("r", "a", 1)
    s.cancel("r")
    answers = [s.lose("r", "a", 1), s.report("r")["status"]]
    assert answers == ["cancelled", "cancelled"]
    return answers


def inactive_and_skipped_at_start(s: RunSteps) -> list[Any]:
    pkg = dag(["x", "a", "b", "c"], [("x", "a"), ("a", "b")], inactive=("x",))
    roots = s.create("r", pkg)
    assert roots == ("c",)
    last = run(s, "r", "c")
    assert last.final == "ready"
    return [roots, last]


def rerun_reuses_only_what_ended_well(s: RunSteps) -> list[Any]:
    pkg = dag(["a", "b", "c"], [("a", "c"), ("b", "c")])
    s.create("base", pkg)
    run(s, "base", "a")
    run(s, "base", "b", ok=False)
    roots = s.create("again", pkg, targets=["c"], base_run="base")
    assert roots == ("b",)  # `a` is reused, `b` failed: it runs again
    answers = [roots, run(s, "again", "b"), run(s, "again", "c")]
    assert s.report("again")["flows"]["a"]["reason"] == Reason.REUSED
    return answers


SCENARIOS: list[Callable[[RunSteps], list[Any]]] = [
    full_run,
    failure_skips_below,
    only_a_running_current_attempt_finishes,
    retries_then_success,
    lost_workers_then_exhausted,
    cancel_with_a_flow_running,
    cancel_then_the_worker_is_lost,
    inactive_and_skipped_at_start,
    rerun_reuses_only_what_ended_well,
]


def same_everything(both: tuple[RunSteps, RunSteps], answers: list[list[Any]], *runs: str) -> None:
    memory, redis = both
    assert answers[0] == answers[1]
    for run_id in runs:
        assert memory.events(run_id) == redis.events(run_id), run_id
        assert memory.report(run_id) == redis.report(run_id), run_id


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_both_implementations_keep_the_same_rules(both, scenario) -> None:
    answers = [scenario(steps) for steps in both]
    runs = ["base", "again"] if scenario is rerun_reuses_only_what_ended_well else ["r"]
    same_everything(both, answers, *runs)


# ------------------------------------------------------------------------------ random orders


@st.composite
def random_dags(draw: Any, max_nodes: int = 8) -> dict:
    n = draw(st.integers(1, max_nodes))
    names = [f"f{i}" for i in range(n)]
    pairs = [(names[i], names[j]) for i in range(n) for j in range(i + 1, n)]
    edges = draw(st.lists(st.sampled_from(pairs), max_size=3 * n, unique=True)) if pairs else []
    order = draw(st.permutations(names))
    inactive = draw(st.lists(st.sampled_from(names), max_size=1, unique=True))
    return dag(list(order), sorted(edges), tuple(inactive))


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pkg=random_dags(), data=st.data())
def test_random_orders_on_random_dags_agree(both, pkg, data) -> None:
    memory, redis = both
    run_id = uuid.uuid4().hex  # the fixture (and its Redis prefix) lives across examples
    answers: list[list[Any]] = [[memory.create(run_id, pkg)], [redis.create(run_id, pkg)]]
    cancel_at = data.draw(st.integers(0, 30))  # a cancel at that step, if the run lasts
    for step in range(60):
        state = memory.states[run_id]
        if state.done:
            break
        moves = [("claim", f) for f, s in state.status.items() if s.value == "pending"]
        moves += [(op, f) for f, s in state.status.items() if s.value == "running" for op in OPS]
        assert moves or state.stopped, (state.status, state.reason)
        op, flow = (
            ("cancel", "") if step == cancel_at or not moves else data.draw(st.sampled_from(moves))
        )
        attempt = state.attempt.get(flow, 1)
        for i, steps in enumerate(both):
            answers[i].append(apply(steps, run_id, op, flow, attempt))
        assert answers[0] == answers[1], (op, flow)
    same_everything(both, answers, run_id)


OPS = ("ok", "fail", "retry", "lose")


def apply(steps: RunSteps, run_id: str, op: str, flow: str, attempt: int) -> Any:
    if op == "claim":
        return steps.claim(run_id, flow, attempt)
    if op == "cancel":
        return steps.cancel(run_id)
    if op == "lose":
        return steps.lose(run_id, flow, attempt)
    retries = 2 if op == "retry" else 0
    return steps.finish(run_id, flow, attempt, op == "ok", None if op == "ok" else "boom", retries)
