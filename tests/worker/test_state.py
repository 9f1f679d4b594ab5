"""The atomic run steps in Redis (Lua), without a broker: claim, finish, requeue, cancel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dizest_core import dwp
from dizest_core.plan import make_plan
from dizest_worker.connection import redis_client
from dizest_worker.state import RedisRuns, now_ms
from tests.conftest import package
from tests.worker.conftest import cleanup, make_settings

DIAMOND = package(
    {
        "src": {"code": "v = 1", "outputs": ["v"]},
        "use": {"code": "v = 1", "inputs": ["x"], "outputs": ["v"]},
    },
    {
        "a": {"app": "src"},
        "b": {"app": "use", "in": {"x": [("a", "v")]}},
        "c": {"app": "use", "in": {"x": [("a", "v")]}},
        "d": {"app": "use", "in": {"x": [("b", "v"), ("c", "v")]}},
        "e": {"app": "use", "in": {"x": [("d", "v")]}},
    },
)


@pytest.fixture
def runs(redis_url, tmp_path) -> Iterator[RedisRuns]:
    settings = make_settings(redis_url, tmp_path)
    yield RedisRuns(redis_client(settings), settings)
    cleanup(settings)


def start(runs: RedisRuns, run_id: str = "r1"):
    pkg = dwp.load(DIAMOND)
    plan = make_plan(pkg)
    record = {"targets": None, "reused": [], "options": {}, "inputs": {}, "flow_inputs": {}}
    new = runs.create(run_id, DIAMOND, plan, record)
    ctx = runs.context(run_id)
    assert ctx is not None
    return new, ctx


def finish(runs, ctx, flow, attempt=1, ok=True, **kw):
    return runs.finish(
        ctx,
        flow,
        attempt,
        ok,
        None if ok else "boom",
        0.01,
        {"v": b"\x80\x05K\x01."} if ok else {},
        {"v": 1} if ok else {},
        **kw,
    )


def test_join_becomes_ready_only_after_its_last_parent(runs):
    new, ctx = start(runs)
    assert new.roots == ("a",)
    assert runs.claim("r1", "a", 1, "w")[0] == "ok"
    assert finish(runs, ctx, "a").ready == ("b", "c")
    for flow in ("b", "c"):
        assert runs.claim("r1", flow, 1, "w")[0] == "ok"
    assert finish(runs, ctx, "b").ready == ()
    assert finish(runs, ctx, "c").ready == ("d",)
    answer, values = runs.claim("r1", "d", 1, "w", [("b", "v"), ("c", "v"), ("a", "nope")])
    assert (answer, values) == ("ok", [b"\x80\x05K\x01.", b"\x80\x05K\x01.", None])
    finish(runs, ctx, "d")
    runs.claim("r1", "e", 1, "w")
    result = finish(runs, ctx, "e")
    assert result.final == "ready"
    events = runs.events("r1", count=1000)
    assert events[-1].final and sum(e.final for e in events) == 1


def test_a_claim_is_taken_once_and_only_for_the_current_attempt(runs):
    start(runs)
    assert runs.claim("r1", "a", 2, "w")[0] == "stale"
    assert runs.claim("r1", "a", 1, "w")[0] == "ok"
    assert runs.claim("r1", "a", 1, "other")[0] == "stale"
    assert runs.claim("r1", "b", 1, "w")[0] == "stale"  # not ready yet
    assert runs.claim("nope", "a", 1, "w")[0] == "stale"


def test_requeue_and_finish_never_both(runs):
    _, ctx = start(runs)
    runs.claim("r1", "a", 1, "w")
    assert runs.requeue("r1", "a", 1, expired_before=0) == "alive"  # lease still valid
    later = now_ms() + 60_000
    assert runs.requeue("r1", "a", 1, expired_before=later) == "2"
    assert finish(runs, ctx, "a", attempt=1).outcome == "stale"  # the old attempt lost
    assert runs.requeue("r1", "a", 1, expired_before=later) == "gone"
    assert runs.claim("r1", "a", 2, "w2")[0] == "ok"
    assert finish(runs, ctx, "a", attempt=2).ready == ("b", "c")
    assert runs.requeue("r1", "a", 2, expired_before=later) == "gone"
    assert runs.flow_field("r1", "a") == "ready"


def test_a_failure_skips_every_descendant_and_ends_the_run(runs):
    _, ctx = start(runs)
    runs.claim("r1", "a", 1, "w")
    finish(runs, ctx, "a")
    runs.claim("r1", "b", 1, "w")
    runs.claim("r1", "c", 1, "w")
    assert finish(runs, ctx, "b", ok=False).ready == ()
    assert runs.flow_field("r1", "d", "reason") == "upstream failed: b"
    assert runs.flow_field("r1", "e", "reason") == "upstream failed: b"
    result = finish(runs, ctx, "c")
    assert result.ready == () and result.final == "error"


def test_retry_puts_the_flow_back_with_the_next_attempt(runs):
    _, ctx = start(runs)
    runs.claim("r1", "a", 1, "w")
    assert finish(runs, ctx, "a", ok=False, retry=True).next_attempt == 2
    assert runs.flow_field("r1", "a") == "pending"
    assert runs.flow_field("r1", "b", "reason") is None
    assert runs.claim("r1", "a", 2, "w")[0] == "ok"


def test_cancel_stops_unstarted_flows_and_events_end_with_the_final_status(runs):
    _, ctx = start(runs)
    runs.claim("r1", "a", 1, "w")
    assert runs.cancel("r1") == "1"  # one flow still running
    assert runs.flow_field("r1", "b", "reason") == "cancelled"
    assert finish(runs, ctx, "a").final == "cancelled"
    assert runs.claim("r1", "b", 1, "w")[0] == "cancelled"
    runs.emit("r1", [("log.append", "a", {"entry": "too late", "stream": "stdout"})])
    events = runs.events("r1", count=1000)
    assert events[-1].final and events[-1].data == {"status": "cancelled"}
    assert all(e.data.get("entry") != "too late" for e in events)
    assert runs.cancel("r1") == "final"
