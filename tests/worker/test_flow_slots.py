"""A user's runs hold at most DIZEST_USER_FLOW_SLOTS flows at once over the cluster: past that a
claim parks the attempt, another user's claim is not held up, and each end of an attempt hands
its slot on (dizest_worker.flow_slots). The steps against real Redis, then through real workers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from dizest_api.data.run_quota import RunQuota
from dizest_core import dwp
from dizest_core.events import FLOW_STATUS
from dizest_core.plan import make_plan
from dizest_core.status import Reason
from dizest_worker.client import Client
from dizest_worker.connection import redis_client
from dizest_worker.flow_slots import FlowSlots
from dizest_worker.keys import lease_member
from dizest_worker.messages import FlowTask
from dizest_worker.orchestration import Executor
from dizest_worker.state import RedisRuns, now_ms
from tests.conftest import package, wait_for
from tests.worker.conftest import cleanup, make_settings
from tests.worker.test_dispatch_order import started

SLOTS = 2
WIDE = package({"src": {"code": "v = 1", "outputs": ["v"]}}, {f: {"app": "src"} for f in "abcd"})
WAITING = Reason.FLOW_SLOTS.format(slots=SLOTS)


@pytest.fixture
def runs(redis_url, tmp_path) -> Iterator[RedisRuns]:
    settings = replace(make_settings(redis_url, tmp_path), user_flow_slots=SLOTS)
    yield RedisRuns(redis_client(settings), settings)
    cleanup(settings)


def start(runs: RedisRuns, run_id: str, account: str | None) -> Any:
    record = {"targets": None, "reused": [], "options": {}, "inputs": {}, "flow_inputs": {}}
    record["account"] = account
    runs.create(run_id, WIDE, make_plan(dwp.load(WIDE)), record, account=account)
    return runs.context(run_id)


def claim(runs: RedisRuns, run_id: str, flow: str, account: str | None, level: int = 0) -> str:
    return runs.claim(run_id, flow, 1, "w", account=account, level=level)[0]


def finish(runs: RedisRuns, ctx: Any, flow: str, attempt: int = 1, queues: tuple = ()) -> Any:
    return runs.finish(ctx, flow, attempt, True, None, 0.01, {}, {}, queues=queues)


def held(runs: RedisRuns, user: str) -> dict[str, float]:
    """The user's slots: flow -> 0 (claimed) or the deadline of a released attempt."""
    pairs = runs.client.zrange(runs.keys.user_running(user), 0, -1, withscores=True)
    return {m.decode().split("\x1f")[1]: score for m, score in pairs}


def parked(runs: RedisRuns, user: str) -> list[str]:
    members = runs.client.zrange(runs.keys.user_parked(user), 0, -1)
    return [m.decode().split("\x1f")[1] for m in members]


def lease(runs: RedisRuns, run_id: str, flow: str, attempt: int = 1) -> float | None:
    member = lease_member(run_id, flow, attempt)
    score: float | None = runs.client.zscore(runs.keys.leases, member)
    return score


def test_past_its_slots_a_claim_parks_and_another_user_claims_at_once(runs) -> None:
    start(runs, "r1", "alice")
    assert [claim(runs, "r1", f, "alice") for f in "abcd"] == ["ok", "ok", "wait", "wait"]
    assert claim(runs, "r1", "c", "alice") == "wait"  # a second copy of its message
    assert held(runs, "alice") == {"a": 0, "b": 0} and parked(runs, "alice") == ["c", "d"]
    flows = runs.client.hgetall(runs.keys.flows("r1"))
    assert flows[b"c"] == b"pending" and flows[b"c:reason"].decode() == WAITING
    assert lease(runs, "r1", "c") is None  # a parked attempt is in `parked` alone
    statuses = [e for e in runs.events("r1", count=100) if e.type == FLOW_STATUS]
    assert [e.data["reason"] for e in statuses if e.flow_id == "c"].count(WAITING) == 1
    assert runs.client.sismember(runs.keys.parked, "alice")
    assert int(runs.client.hget(runs.keys.metrics, "parked")) == 2

    start(runs, "r2", "bob")  # his own slots
    assert claim(runs, "r2", "a", "bob") == "ok"
    start(runs, "r3", None)  # a run without an owner holds none
    assert [claim(runs, "r3", f, None) for f in "abcd"] == ["ok"] * 4
    assert set(held(runs, "bob")) == {"a"} and "c" not in held(runs, "alice")


def test_a_released_attempt_holds_its_slot_until_claimed(runs) -> None:
    """The interleaving: a finish releases the most urgent parked attempt; before its message
    is claimed a reaper looks at the user. The slot is held for the attempt on its way, so
    the reaper releases nothing more; its claim keeps that slot, and the next finish releases
    the next attempt."""
    sent: list[tuple[FlowTask, str]] = []
    reaper = FlowSlots(runs, lambda tasks, countdown: sent.extend(tasks))
    ctx = start(runs, "r1", "alice")
    assert claim(runs, "r1", "a", "alice") == claim(runs, "r1", "b", "alice") == "ok"
    assert claim(runs, "r1", "c", "alice", level=5) == "wait"
    assert claim(runs, "r1", "d", "alice", level=0) == "wait"  # more urgent: released first

    result = finish(runs, ctx, "a")
    assert result.released == (("r1", "d", 1),)
    assert held(runs, "alice")["d"] > now_ms()  # the deadline of a slot on its way
    assert (lease(runs, "r1", "d") or 0) > now_ms()  # reserved while its sender sends it

    assert reaper.heal() == 0 and sent == []  # the slot on its way counts
    assert parked(runs, "alice") == ["c"]

    assert claim(runs, "r1", "d", "alice") == "ok"
    assert held(runs, "alice") == {"b": 0, "d": 0}
    assert claim(runs, "r1", "c", "alice") == "wait"  # still two held
    assert finish(runs, ctx, "b").released == (("r1", "c", 1),)
    assert claim(runs, "r1", "c", "alice") == "ok"
    assert parked(runs, "alice") == [] and reaper.heal() == 0
    assert not runs.client.sismember(runs.keys.parked, "alice")  # nothing left to look at


def test_the_reaper_frees_slots_nothing_holds_and_sends_what_they_release(runs) -> None:
    """An attempt that ended without saying so (its lease gone, as when its run expired) holds
    no slot at the next look, and a released attempt past its deadline without a lease neither:
    the reaper sends the parked attempt those slots allow, at its flow's level."""
    sent: list[tuple[FlowTask, str]] = []
    reaper = FlowSlots(runs, lambda tasks, countdown: sent.extend(tasks))
    ctx = start(runs, "r1", "alice")
    assert [claim(runs, "r1", f, "alice") for f in "abcd"] == ["ok", "ok", "wait", "wait"]
    assert reaper.heal() == 0
    runs.drop_lease("r1", "b", 1)
    assert reaper.heal() == 1  # a and c's slot on its way: the cap, d stays
    assert [(t.run_id, t.flow_id, t.attempt) for t, _ in sent] == [("r1", "c", 1)]
    assert sent[0][0].level == ctx.plan.level("c", 10) and sent[0][1] == runs.settings.queue
    assert lease(runs, "r1", "c") is None  # its message is in the broker: reservation dropped
    assert held(runs, "alice")["c"] > now_ms() and parked(runs, "alice") == ["d"]

    runs.client.zadd(runs.keys.user_running("alice"), {lease_member("r1", "c", 1): 1})
    assert reaper.heal() == 1 and sent[-1][0].flow_id == "d"  # c's message was lost, it seems
    assert claim(runs, "r1", "d", "alice") == "ok"
    assert claim(runs, "r1", "c", "alice") == "wait"  # it came after all: parked again
    assert held(runs, "alice") == {"a": 0, "d": 0} and parked(runs, "alice") == ["c"]


def test_a_slot_on_its_way_to_a_parked_attempt_does_not_stop_a_claim(runs) -> None:
    """A released attempt's message may wait behind a busy queue: meanwhile another flow of its
    owner (come by its own message) still claims the free slot; the released one, arriving
    after, parks again and gives its slot back."""
    ctx = start(runs, "r1", "alice")
    assert [claim(runs, "r1", f, "alice") for f in "abc"] == ["ok", "ok", "wait"]
    assert finish(runs, ctx, "a").released == (("r1", "c", 1),)  # on its way
    start(runs, "r2", "alice")
    assert claim(runs, "r2", "a", "alice") == "ok"  # b and this one claimed: the cap
    assert claim(runs, "r1", "c", "alice") == "wait"
    assert set(held(runs, "alice").values()) == {0} and len(held(runs, "alice")) == 2
    assert parked(runs, "alice") == ["c"]


def test_a_released_attempt_that_parks_again_keeps_its_place_in_line(runs) -> None:
    """The interleaving: r1's c parks, a finish releases it, another flow of alice's claims the
    slot while c's message is on its way, r0's d parks after c; then c arrives and parks again.
    It is still ahead of d (same level, parked first; in the same millisecond, r0 would sort
    first), so the next finish releases c, not d."""
    ctx = start(runs, "r1", "alice")
    assert [claim(runs, "r1", f, "alice") for f in "abc"] == ["ok", "ok", "wait"]
    first = runs.client.zscore(runs.keys.user_parked("alice"), lease_member("r1", "c", 1))
    assert finish(runs, ctx, "a").released == (("r1", "c", 1),)
    start(runs, "r2", "alice")
    start(runs, "r0", "alice")
    assert claim(runs, "r2", "a", "alice") == "ok"
    assert claim(runs, "r0", "d", "alice") == "wait"
    assert claim(runs, "r1", "c", "alice") == "wait"  # its slot was taken on its way
    assert parked(runs, "alice") == ["c", "d"]
    assert runs.client.zscore(runs.keys.user_parked("alice"), lease_member("r1", "c", 1)) == first
    assert finish(runs, ctx, "b").released == (("r1", "c", 1),)
    assert claim(runs, "r1", "c", "alice") == "ok" and parked(runs, "alice") == ["d"]


def test_an_attempt_that_ends_anyhow_hands_its_slot_on(runs) -> None:
    """Taken over from a lost worker: the slot is free, the reaper releases the next. A cancel
    takes the run's attempts out of the parked set and frees the slots released to them; a
    released attempt whose run is gone gives its slot back at its claim."""
    sent: list[tuple[FlowTask, str]] = []
    reaper = FlowSlots(runs, lambda tasks, countdown: sent.extend(tasks))
    ctx = start(runs, "r1", "alice")
    assert [claim(runs, "r1", f, "alice") for f in "abcd"] == ["ok", "ok", "wait", "wait"]
    assert runs.requeue("r1", "a", 1, expired_before=now_ms() + 60_000) == "2"
    assert "a" not in held(runs, "alice")
    assert reaper.heal() == 1 and sent[0][0].flow_id == "c"
    assert runs.claim("r1", "a", 2, "w", account="alice")[0] == "ok"  # b alone is claimed
    assert parked(runs, "alice") == ["d"]

    assert runs.cancel("r1") == "2"  # a (attempt 2) and b still run
    assert parked(runs, "alice") == [] and "c" not in held(runs, "alice")
    assert finish(runs, ctx, "b").released == ()
    assert claim(runs, "r1", "c", "alice") == "cancelled" and held(runs, "alice") == {"a": 0}
    assert finish(runs, ctx, "a", attempt=2).released == () and held(runs, "alice") == {}

    start(runs, "r2", "alice")
    assert [claim(runs, "r2", f, "alice") for f in "abc"] == ["ok", "ok", "wait"]
    runs.requeue("r2", "a", 1, expired_before=now_ms() + 60_000)
    assert reaper.heal() == 1 and sent[-1][0].flow_id == "c"
    runs.client.delete(runs.keys.run("r2"))  # expired before its message was taken
    assert claim(runs, "r2", "c", "alice") == "stale"
    assert held(runs, "alice") == {"b": 0}


WAIT_FOR_GO = (
    "import os, time\n"
    "deadline = time.monotonic() + 60\n"
    "while not os.path.exists('go') and time.monotonic() < deadline:\n"
    "    time.sleep(0.02)\n"
    "v = os.path.exists('go')\n"
)


def let_go(workdir_root: str, run_id: str) -> None:
    """Let WAIT_FOR_GO flows of run `run_id` end: its working folder is made as its first flow
    starts, which may come after the worker counts the flow running (its claim)."""
    folder = os.path.join(workdir_root, run_id)
    wait_for(lambda: os.path.isdir(folder), timeout=60)
    open(os.path.join(folder, "go"), "w").close()


def test_through_workers_one_user_cannot_hold_every_slot(cluster) -> None:
    """Three slots in the cluster, two per user: while five flows of alice's wait, bob's run
    still gets the third slot and finishes; alice never runs more than two at once, and once
    her flows may go on, all five finish, each started once."""
    slots_env = {"DIZEST_USER_FLOW_SLOTS": str(SLOTS)}
    cluster("w1", concurrency=3, env=slots_env)
    client = cluster.client
    wide = package(
        {"wait": {"code": WAIT_FOR_GO, "outputs": ["v"]}},
        {f"f{i}": {"app": "wait"} for i in range(5)},
    )
    alice = client.submit(wide, account="alice")
    flows = client.runs.keys.flows(alice)

    def alice_running() -> int:
        statuses = client.redis.hmget(flows, [f"f{i}" for i in range(5)])
        return sum(s == b"running" for s in statuses)

    wait_for(lambda: alice_running() >= SLOTS, timeout=60)
    assert alice_running() == SLOTS

    bob = client.submit(package({"q": {"code": "v = 1"}}, {"q": {"app": "q"}}), account="bob")
    assert client.wait(bob, timeout=60)["status"] == "ready"
    assert alice_running() == SLOTS
    reasons = client.redis.hmget(flows, [f"f{i}:reason" for i in range(5)])
    assert sum(r == WAITING.encode() for r in reasons) == 3
    usage = RunQuota(client.redis, cluster.settings).usage("alice")  # GET /runs/usage
    assert (usage["flows_running"], usage["flows_parked"]) == (SLOTS, 3)

    let_go(cluster.settings.workdir_root, alice)
    report = client.wait(alice, timeout=120)
    assert report["status"] == "ready"
    assert all(f["status"] == "ready" for f in report["flows"].values())
    events = client.runs.events(alice, count=10_000)
    starts = [e.flow_id for e in events if e.type == FLOW_STATUS and e.data["status"] == "running"]
    assert sorted(starts) == [f"f{i}" for i in range(5)]  # each once
    concurrent = peak = 0
    for e in events:
        if e.type == FLOW_STATUS and e.data["status"] == "running":
            concurrent += 1
        elif e.type == FLOW_STATUS and e.data["status"] in ("ready", "error"):
            concurrent -= 1
        peak = max(peak, concurrent)
    assert peak == SLOTS


def test_a_slot_released_to_a_parked_attempt_expires_with_the_runs(runs) -> None:
    """One slot: the finish that frees it empties the user's slot set, and the release makes it
    again; it still expires (ttl_s from the newest park), never lives on without a TTL."""
    one = RedisRuns(runs.client, replace(runs.settings, user_flow_slots=1))
    ctx = start(one, "r1", "alice")
    assert [claim(one, "r1", f, "alice") for f in "ab"] == ["ok", "wait"]
    assert finish(one, ctx, "a").released == (("r1", "b", 1),)
    ttl = runs.client.ttl(runs.keys.user_running("alice"))
    assert 0 < ttl <= runs.settings.ttl_s


def test_a_freed_slot_goes_to_a_parked_attempt_of_a_queue_the_freeing_worker_serves(runs) -> None:
    """A slot freed by a worker of queue q1 goes to the oldest parked attempt of q1, not to an
    older one of gpu, whose worker may be busy for minutes (its message would hold the slot all
    that time while q1's worker sits idle); a reaper releases any queue's."""
    sent: list[tuple[FlowTask, str]] = []
    reaper = FlowSlots(runs, lambda tasks, countdown: sent.extend(tasks))
    ctx = start(runs, "r1", "alice")
    take = lambda f, q: runs.claim("r1", f, 1, "w", account="alice", queue=q)[0]  # noqa: E731
    assert [take("a", "q1"), take("b", "q1"), take("c", "gpu"), take("d", "q1")] == [
        "ok", "ok", "wait", "wait"
    ]  # fmt: skip
    assert parked(runs, "alice") == ["c", "d"]  # c is older
    assert runs.finish(ctx, "a", 1, True, None, 0.01, {}, {}, queues=["q1"]).released == (
        ("r1", "d", 1),
    )
    assert runs.finish(ctx, "b", 1, True, None, 0.01, {}, {}, queues=["q1"]).released == ()
    assert reaper.heal() == 1 and sent[0][0].flow_id == "c"
    assert runs.client.hlen(runs.keys.user_parked_queue("alice")) == 2  # on their way
    assert [take("d", "q1"), take("c", "gpu")] == ["ok", "ok"]
    assert runs.client.hlen(runs.keys.user_parked_queue("alice")) == 0


CHAIN_AND_LEAVES = package(
    {
        "one": {"code": "v = 1", "outputs": ["v"]},
        "inc": {"code": "v = 1", "inputs": ["x"], "outputs": ["v"]},
    },
    {
        "l0": {"app": "one"},
        "l1": {"app": "one"},
        "c0": {"app": "one"},
        "c1": {"app": "inc", "in": {"x": [("c0", "v")]}},
        "c2": {"app": "inc", "in": {"x": [("c1", "v")]}},
    },
)


def test_the_next_flow_of_a_chain_goes_before_parked_ones_and_all_park_at_their_level(
    redis_url, tmp_path
) -> None:
    """One slot, through a worker process (no broker: its sends are recorded): tasks arrive
    as from messages, which carry no level, yet each parks at its flow's level in the plan; a
    chain's freed link takes the slot its parent frees (it is about to claim), not a parked
    leaf, so the chain runs first, then the leaves by level and age."""
    settings = replace(make_settings(redis_url, tmp_path), user_flow_slots=1, local_slots=2)
    sent: list[FlowTask] = []
    client = Client(settings)
    client._enqueue = lambda tasks, countdown: sent.extend(t for t, _ in tasks)
    ex = Executor(settings, redis_client(settings), client._enqueue)
    try:
        run_id = client.submit(CHAIN_AND_LEAVES, account="alice")
        ctx = client.runs.context(run_id)
        assert ctx is not None and ctx.plan.level("l1", 10) == 2
        roots = [FlowTask(t.run_id, t.flow_id, t.attempt) for t in sent]  # level 0, as decoded
        sent.clear()
        ex.handle(roots)  # c0 runs, the leaves park, then the chain; c2's end releases l0
        assert started(client, run_id) == ["c0", "c1", "c2"]
        assert [t.flow_id for t in sent] == ["l0"]
        pairs = client.redis.zrange(client.runs.keys.user_parked("alice"), 0, -1, withscores=True)
        assert [(m.decode().split("\x1f")[1], int(s // 1e13)) for m, s in pairs] == [("l1", 2)]
        while sent:
            tasks = list(sent)
            sent.clear()
            ex.handle(tasks)
        assert started(client, run_id) == ["c0", "c1", "c2", "l0", "l1"]
        assert client.wait(run_id, timeout=30)["status"] == "ready"
    finally:
        ex.close()
        cleanup(settings)


def test_a_slot_released_to_an_attempt_of_a_gone_run_is_free_at_once(runs) -> None:
    """The run expired while its attempt was parked: the release finds nothing to send and gives
    the slot back then, not at the deadline (nobody would look: nothing else is parked)."""
    start(runs, "r1", "alice")
    assert [claim(runs, "r1", f, "alice") for f in "abc"] == ["ok", "ok", "wait"]
    runs.client.delete(runs.keys.run("r1"), runs.keys.flows("r1"))  # expired
    runs.drop_lease("r1", "a", 1)
    sent: list[tuple[FlowTask, str]] = []
    fresh = RedisRuns(runs.client, runs.settings)  # no run cached: as a reaper that never saw it
    assert FlowSlots(fresh, lambda tasks, countdown: sent.extend(tasks)).heal() == 0
    assert sent == [] and held(runs, "alice") == {"b": 0} and parked(runs, "alice") == []


def test_messages_waiting_behind_a_busy_queue_hold_back_no_release_to_another(runs) -> None:
    """Two releases to the gpu queue wait behind another user's long flows; the owner's parked
    cpu flow, older ones of gpu ahead of it, is released at the next look all the same (the
    gpu ones count against releases to gpu only), and no third gpu one is."""
    sent: list[tuple[FlowTask, str]] = []
    reaper = FlowSlots(runs, lambda tasks, countdown: sent.extend(tasks))
    ctx = start(runs, "r1", "alice")
    start(runs, "r2", "alice")
    take = lambda r, f, q: runs.claim(r, f, 1, "w", account="alice", queue=q)[0]  # noqa: E731
    assert [take("r1", "a", "cpu"), take("r1", "b", "cpu")] == ["ok", "ok"]
    assert [take("r1", f, "gpu") for f in "cd"] + [take("r2", "a", "gpu")] == ["wait"] * 3
    assert take("r2", "b", "cpu") == "wait"
    finish(runs, ctx, "a", queues=["gpu"])  # a gpu worker's finish: c goes
    finish(runs, ctx, "b", queues=["gpu"])  # d goes
    assert parked(runs, "alice") == ["a", "b"]  # r2's: gpu, then cpu
    assert reaper.heal() == 1 and sent[-1][0].run_id == "r2" and sent[-1][0].flow_id == "b"
    assert parked(runs, "alice") == ["a"]  # the third gpu one waits for c or d
