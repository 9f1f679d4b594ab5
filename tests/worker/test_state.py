"""The atomic run steps in Redis (Lua), without a broker: claim, finish, requeue, cancel."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from dizest_core import dwp
from dizest_core.plan import make_plan
from dizest_worker.connection import redis_client
from dizest_worker.keys import lease_member
from dizest_worker.state import RedisRuns, now_ms
from tests.conftest import package, wait_for
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
    assert finish(runs, ctx, "a", ok=False, retryable=True, max_retries=1).next_attempt == 2
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


def test_requeue_of_a_cancelled_run_resolves_the_flow_and_ends_the_run(runs):
    start(runs)
    runs.claim("r1", "a", 1, "w")
    assert runs.cancel("r1") == "1"  # `a` still runs; then its worker is lost
    later = now_ms() + 60_000
    assert runs.requeue("r1", "a", 1, expired_before=later) == "cancelled"
    record = runs.record("r1")
    assert record is not None
    assert (record["status"], record["unresolved"]) == ("cancelled", "0")
    assert runs.flow_field("r1", "a", "reason") == "cancelled"
    assert runs.client.zscore(runs.keys.leases, lease_member("r1", "a", 1)) is None
    events = runs.events("r1", count=1000)
    assert events[-1].final and events[-1].data == {"status": "cancelled"}


def test_worker_losses_do_not_use_up_the_flows_own_retries(runs):
    _, ctx = start(runs)
    later = now_ms() + 60_000
    runs.claim("r1", "a", 1, "w")
    assert runs.requeue("r1", "a", 1, expired_before=later) == "2"  # lost once
    runs.claim("r1", "a", 2, "w")
    retried = finish(runs, ctx, "a", attempt=2, ok=False, retryable=True, max_retries=1)
    assert (retried.outcome, retried.next_attempt) == ("retry", 3)
    assert retried.delay_s == runs.settings.engine.retry_backoff_s  # the first retry: one backoff
    runs.claim("r1", "a", 3, "w")
    assert finish(runs, ctx, "a", attempt=3, ok=False, retryable=True, max_retries=1).ready == ()
    assert runs.flow_field("r1", "a") == "error"  # its one retry is used up


def test_max_attempts_bounds_worker_losses_whatever_the_retries(runs):
    _, ctx = start(runs)
    later = now_ms() + 60_000
    runs.claim("r1", "a", 1, "w")
    assert finish(runs, ctx, "a", ok=False, retryable=True, max_retries=2).next_attempt == 2
    runs.claim("r1", "a", 2, "w")
    retried = finish(runs, ctx, "a", attempt=2, ok=False, retryable=True, max_retries=2)
    assert retried.delay_s == 2 * runs.settings.engine.retry_backoff_s  # doubled at each retry
    for attempt in (3, 4):  # max_attempts = 3: two losses are requeued...
        runs.claim("r1", "a", attempt, "w")
        assert runs.requeue("r1", "a", attempt, expired_before=later) == str(attempt + 1)
    runs.claim("r1", "a", 5, "w")
    assert runs.requeue("r1", "a", 5, expired_before=later) == "exhausted"  # ...the third not


def test_heartbeat_tells_the_run_was_cancelled(runs):
    start(runs)
    runs.claim("r1", "a", 1, "w")
    assert runs.heartbeat([("r1", "a", 1), ("r1", "b", 1)]) == [(True, False), (False, False)]
    runs.client.hset(runs.keys.run("r1"), "cancelled", "1")  # as CANCEL, without its message
    assert runs.heartbeat([("r1", "a", 1)]) == [(True, True)]


def test_the_event_stream_lives_as_long_as_its_run_and_never_outlives_it(runs):
    start(runs)
    ttl = runs.client.pttl(runs.keys.events("r1"))
    assert 0 < ttl <= runs.settings.ttl_s * 1000
    runs.client.delete(runs.keys.run("r1"), runs.keys.events("r1"))  # the run expired
    runs.emit("r1", [("log.append", "a", {"entry": "late", "stream": "stdout"})])
    assert not runs.client.exists(runs.keys.events("r1"))


def test_the_runs_index_forgets_runs_older_than_the_ttl(runs):
    old = now_ms() - runs.settings.ttl_s * 1000 - 1
    runs.client.zadd(runs.keys.runs, {"ancient": old})
    start(runs)
    assert runs.client.zrange(runs.keys.runs, 0, -1) == [b"r1"]
    assert 0 < runs.client.ttl(runs.keys.runs) <= runs.settings.ttl_s


def test_the_flows_hash_holds_every_status_and_its_reason(runs):
    _, ctx = start(runs)
    runs.claim("r1", "a", 1, "w")
    finish(runs, ctx, "a", ok=False, retryable=True, max_retries=1)
    states = runs.flow_states("r1", ["a", "b", "nope"])
    assert states["a"] == {
        "status": "pending",
        "reason": "retrying after: boom",
        "index": -1,
        "duration_s": None,
    }
    runs.claim("r1", "a", 2, "w")
    assert runs.flow_states("r1", ["a"])["a"]["reason"] is None  # running: no reason
    finish(runs, ctx, "a", attempt=2)
    assert runs.flow_states("r1", ["a"])["a"] == {
        "status": "ready",
        "reason": None,
        "index": 1,
        "duration_s": 0.01,
    }
    assert set(states) == {"a", "b"}


def create(runs: RedisRuns, run_id: str, key: str) -> str:
    pkg = dwp.load(DIAMOND)
    record = {"targets": None, "reused": [], "options": {}, "inputs": {}, "flow_inputs": {}}
    return runs.create(run_id, DIAMOND, make_plan(pkg), record, idempotency_key=key).run_id


def test_an_idempotency_key_naming_a_run_that_does_not_exist_is_taken_over(runs):
    runs.client.set(runs.keys.idempotency("k"), "ghost")  # a crash between key and run
    assert create(runs, "r1", "k") == "r1"
    assert create(runs, "r2", "k") == "r1"
    assert runs.client.get(runs.keys.idempotency("k")) == b"r1"
    assert 0 < runs.client.ttl(runs.keys.idempotency("k")) <= runs.settings.ttl_s


def test_racing_submits_with_one_key_get_one_run_that_exists(runs):
    barrier = threading.Barrier(8)

    def submit(i: int) -> tuple[str, bool]:
        barrier.wait()
        run_id = create(runs, f"race{i}", "same")
        return run_id, runs.record(run_id) is not None  # it exists as soon as it is returned

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(submit, range(8)))
    assert len({run_id for run_id, _ in answers}) == 1
    assert all(exists for _, exists in answers)
    assert runs.client.zcard(runs.keys.runs) == 1


def test_a_submit_racing_between_the_key_read_and_create_gets_the_run_that_won(runs):
    """The exact interleaving: the idempotency key is read (empty), another submit with that
    key creates its run, then this CREATE runs: it answers "changed", reads again, and returns
    the winner's run instead of making a second one."""
    rival = RedisRuns(runs.client, runs.settings)

    class RaceAfterRead:
        def __init__(self, client) -> None:
            self.client, self.raced = client, False

        def get(self, key):
            value = self.client.get(key)
            if not self.raced:
                self.raced = True
                assert create(rival, "winner", "k") == "winner"
            return value

        def __getattr__(self, name):
            return getattr(self.client, name)

    real = runs.client
    runs.client = RaceAfterRead(real)
    try:
        assert create(runs, "loser", "k") == "winner"
    finally:
        runs.client = real
    assert runs.record("loser") is None
    assert real.zrange(runs.keys.runs, 0, -1) == [b"winner"]


def test_a_runs_events_go_live_on_its_channel_and_its_end_on_the_event_channel(runs) -> None:
    """An API process subscribes the channels of the runs it streams only, so every event goes
    on its run's channel; the run-end listeners (webhooks) get only each run's final event."""
    listen = runs.client.pubsub(ignore_subscribe_messages=True)
    base, mine = runs.keys.event_channel, runs.keys.run_channel("r1")
    listen.subscribe(base, mine, runs.keys.run_channel("r2"))
    try:
        start(runs, "r1")
        runs.emit("r1", [("log.append", "a", {"text": "hello"})])
        assert runs.cancel("r1") == "final"
        got: list[tuple[str, str]] = []
        wait_for(lambda: _read_into(listen, got) and got[-1][0] == base, timeout=5)
        on_run = [json.loads(data) for channel, data in got if channel == mine]
        on_base = [json.loads(data) for channel, data in got if channel == base]
        assert len(got) == len(on_run) + len(on_base)  # nothing on r2's channel
        assert [e["id"] for e in on_run] == [e.id for e in runs.events("r1", None)]
        assert {e["type"] for e in on_run} >= {"log.append", "workflow.status"}
        assert on_base == [on_run[-1]] and on_base[0]["data"] == {"status": "cancelled"}
    finally:
        listen.close()


def _read_into(pubsub, got: list[tuple[str, str]]) -> bool:
    while (message := pubsub.get_message(timeout=0.05)) is not None:
        channel, data = message["channel"], message["data"]
        got.append((channel.decode(), data) if isinstance(channel, bytes) else (channel, data))
    return bool(got)
