"""A user's runs hold their fair share of the cluster's live worker slots (dizest_worker.fair_share):
all of them for a user alone, past the old fixed cap of 16; a second user's claim goes through
while the first holds every slot, the first's further claims park, and freed slots go to the
user under their share first; a dead worker's slots stop counting; DIZEST_USER_FLOW_SLOTS still
caps a user. The steps against real Redis, then the heartbeats of real workers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from dizest_core import dwp
from dizest_core.plan import make_plan
from dizest_core.status import Reason
from dizest_worker import fair_share, liveness
from dizest_worker.connection import redis_client
from dizest_worker.flow_slots import FlowSlots
from dizest_worker.messages import FlowTask
from dizest_worker.state import RedisRuns
from tests.conftest import package, wait_for
from tests.worker.conftest import cleanup, make_settings

WIDE = package(
    {"src": {"code": "v = 1", "outputs": ["v"]}}, {f"f{i}": {"app": "src"} for i in range(70)}
)


def share_reason(slots: int, live: int, users: int) -> str:
    return Reason.FAIR_SHARE.format(slots=slots, live=live, users=users)


@pytest.fixture
def runs(redis_url, tmp_path) -> Iterator[RedisRuns]:
    settings = make_settings(redis_url, tmp_path)  # DIZEST_USER_FLOW_SLOTS unset: no hard cap
    yield RedisRuns(redis_client(settings), settings)
    cleanup(settings)


def worker(runs: RedisRuns, name: str, slots: int) -> None:
    """A worker's beat, as its pool processes send it (now, with its slots)."""
    liveness.beat(runs.client, replace(runs.settings, worker_name=name), slots)


def gone(runs: RedisRuns, name: str) -> None:
    """The worker's last beat is older than the liveness window: it died."""
    stale = int((time.time() - liveness.WINDOW_S - 1) * 1000)
    runs.client.hset(runs.keys.workers, name, stale)


def start(runs: RedisRuns, run_id: str, account: str) -> Any:
    record = {"targets": None, "reused": [], "options": {}, "inputs": {}, "flow_inputs": {}}
    record["account"] = account
    runs.create(run_id, WIDE, make_plan(dwp.load(WIDE)), record, account=account)
    return runs.context(run_id)


def claim(runs: RedisRuns, run_id: str, i: int, account: str) -> str:
    return runs.claim(run_id, f"f{i}", 1, "w", account=account)[0]


def finish(runs: RedisRuns, ctx: Any, i: int) -> Any:
    return runs.finish(ctx, f"f{i}", 1, True, None, 0.01, {}, {})


def reason(runs: RedisRuns, run_id: str, i: int) -> str:
    return (runs.client.hget(runs.keys.flows(run_id), f"f{i}:reason") or b"").decode()


def test_a_user_alone_uses_every_live_slot_of_the_cluster(runs) -> None:
    """64 live slots on two workers: one user's runs claim 64 flows at once (the old fixed cap
    was 16), the 65th parks, saying so."""
    worker(runs, "big", 40)
    worker(runs, "small", 24)
    assert FlowSlots(runs, lambda tasks, countdown: None).live_slots() == 64
    start(runs, "r1", "alice")
    assert [claim(runs, "r1", i, "alice") for i in range(64)] == ["ok"] * 64
    assert claim(runs, "r1", 64, "alice") == "wait"
    assert reason(runs, "r1", 64) == share_reason(64, 64, 1)


def test_a_second_user_claims_at_once_and_freed_slots_go_to_the_user_under_share(runs) -> None:
    """Alice holds the cluster's 4 slots; Bob's claim still goes through, and from then on each
    may hold 2: Alice's next claim parks, Bob's third too. Two more slots join (3 each): a slot
    Alice frees goes to Bob's parked flow (2 < 3) before her own older one (she holds her 3),
    the next one she frees to her own; once she is under her share her claims go through."""
    worker(runs, "w1", 4)
    alice = start(runs, "r1", "alice")
    assert [claim(runs, "r1", i, "alice") for i in range(4)] == ["ok"] * 4
    start(runs, "r2", "bob")
    assert claim(runs, "r2", 0, "bob") == "ok"  # Alice at every slot of the cluster
    assert claim(runs, "r1", 4, "alice") == "wait"
    assert reason(runs, "r1", 4) == share_reason(2, 4, 2)
    assert [claim(runs, "r2", i, "bob") for i in (1, 2)] == ["ok", "wait"]

    worker(runs, "w2", 2)  # 6 live slots: 3 each
    assert claim(runs, "r1", 5, "alice") == "wait"  # she still holds 4
    freed = finish(runs, alice, 0)  # she holds 3: her share
    assert freed.released == () and freed.handed_on == (("bob", ("r2", "f2", 1)),)
    assert claim(runs, "r2", 2, "bob") == "ok"
    freed = finish(runs, alice, 1)  # she holds 2: under her share, her oldest parked one goes
    assert freed.released == (("r1", "f4", 1),) and freed.handed_on == ()
    assert claim(runs, "r1", 4, "alice") == "ok"
    finish(runs, alice, 2)
    assert claim(runs, "r1", 6, "alice") == "ok"  # back under her share: a claim goes through


def test_slots_a_user_under_share_leaves_unused_go_to_the_others(runs) -> None:
    """Work-conserving: Bob runs one flow of his share of 2, so a slot Alice frees, and the
    one Bob frees, go to Alice's parked flows while the users hold fewer than the live slots;
    flows released to her that arrive once Bob claims his share again park again."""
    worker(runs, "w1", 4)
    alice = start(runs, "r1", "alice")
    assert [claim(runs, "r1", i, "alice") for i in range(4)] == ["ok"] * 4
    bob = start(runs, "r2", "bob")
    assert claim(runs, "r2", 0, "bob") == "ok"
    assert [claim(runs, "r1", i, "alice") for i in (4, 5, 6)] == ["wait"] * 3
    assert finish(runs, alice, 0).released == ()  # 3 + 1: every slot held
    assert finish(runs, alice, 1).released == (("r1", "f4", 1),)  # 2 + 1: one spare
    assert claim(runs, "r1", 4, "alice") == "ok"
    assert finish(runs, bob, 0).handed_on == (("alice", ("r1", "f5", 1)),)  # Bob has none left
    assert finish(runs, alice, 2).released == (("r1", "f6", 1),)  # alone: her share is 4
    start(runs, "r3", "bob")
    assert [claim(runs, "r3", i, "bob") for i in (0, 1)] == ["ok", "ok"]  # his share
    # her 2 claimed and his 2 hold the 4 slots: what was released to her on its way parks again
    assert [claim(runs, "r1", i, "alice") for i in (5, 6)] == ["wait", "wait"]
    assert finish(runs, alice, 3).released == (("r1", "f5", 1),)  # under her share again
    assert claim(runs, "r1", 5, "alice") == "ok"


def test_a_dead_workers_slots_stop_counting(runs) -> None:
    """A worker joins (6 live slots) and dies: once its beat is older than the liveness window
    its slots no longer count, and a user alone is back to the 4 of the worker left."""
    slots = FlowSlots(runs, lambda tasks, countdown: None)
    worker(runs, "w1", 4)
    start(runs, "r1", "alice")
    assert [claim(runs, "r1", i, "alice") for i in range(5)] == ["ok"] * 4 + ["wait"]
    worker(runs, "w2", 2)
    assert slots.live_slots() == 6
    assert claim(runs, "r1", 5, "alice") == "ok"
    gone(runs, "w2")
    assert slots.live_slots() == 4
    assert claim(runs, "r1", 6, "alice") == "wait"
    assert reason(runs, "r1", 6) == share_reason(4, 4, 1)
    runs.forget_workers(int((time.time() - liveness.WINDOW_S) * 1000))  # the reaper's tidy
    assert runs.client.hkeys(runs.keys.worker_slots) == [b"w1"]


def test_the_hard_cap_bounds_a_user_above_their_share(runs) -> None:
    """DIZEST_USER_FLOW_SLOTS=3 on 64 live slots: a user alone runs 3, spare slots or not; with
    fewer live slots the share, below the cap, bounds them as well."""
    capped = RedisRuns(runs.client, replace(runs.settings, user_flow_slots=3))
    worker(runs, "big", 60)
    worker(runs, "small", 4)
    alice, bob = start(capped, "r1", "alice"), start(capped, "r2", "bob")
    assert [claim(capped, "r1", i, "alice") for i in range(4)] == ["ok"] * 3 + ["wait"]
    assert reason(capped, "r1", 3) == Reason.FLOW_SLOTS.format(slots=3)
    assert claim(capped, "r2", 0, "bob") == "ok"
    assert finish(capped, bob, 0).handed_on == ()  # 60 slots spare, yet Alice holds her 3

    gone(runs, "big")  # 4 live slots, two users: 2 each
    assert [claim(capped, "r2", i, "bob") for i in (1, 2)] == ["ok", "ok"]
    assert finish(capped, alice, 0).released == ()  # she holds 2: her share, none spare
    assert claim(capped, "r1", 4, "alice") == "wait"
    assert reason(capped, "r1", 4) == share_reason(2, 4, 2)


def test_the_reaper_forgets_users_with_no_work_and_releases_across_users(runs) -> None:
    """A user whose slots expired with their runs stops counting at the reaper's next sweep,
    and the sweep releases the other user's parked flows that the larger share allows."""
    sent: list[tuple[FlowTask, str]] = []
    reaper = FlowSlots(runs, lambda tasks, countdown: sent.extend(tasks))
    worker(runs, "w1", 4)
    start(runs, "r1", "alice")
    start(runs, "r2", "bob")
    assert [claim(runs, "r2", i, "bob") for i in (0, 1)] == ["ok", "ok"]
    assert [claim(runs, "r1", i, "alice") for i in range(3)] == ["ok", "ok", "wait"]
    runs.client.delete(runs.keys.user_running("bob"))  # expired, with his runs
    assert reaper.heal() == 1 and sent[0][0].flow_id == "f2"
    assert runs.client.hgetall(runs.keys.flow_users) == {b"alice": b"3"}


def test_a_submit_counts_its_user_before_their_first_flow_reaches_a_worker(runs) -> None:
    """The gap a claim-time count leaves: Alice holds all 4 slots with more of her flows queued
    ahead of Bob's in the broker. Bob's submit counts him at once, so when Alice frees a slot
    her next message parks instead of taking it, and the worker reaches Bob's, which gets his
    share (his own mark does not count against him); his claim replaces the mark."""
    slots = FlowSlots(runs, lambda tasks, countdown: None)
    worker(runs, "w1", 4)
    alice = start(runs, "r1", "alice")
    assert [claim(runs, "r1", i, "alice") for i in range(5)] == ["ok"] * 4 + ["wait"]
    start(runs, "r2", "bob")
    assert slots.share() == (4, 2)
    freed = finish(runs, alice, 0)  # she holds 3; the free slot is Bob's, not spare
    assert freed.released == () and freed.handed_on == ()
    assert claim(runs, "r1", 5, "alice") == "wait"  # before: alone, she took it again
    assert reason(runs, "r1", 5) == share_reason(2, 4, 2)
    assert [claim(runs, "r2", i, "bob") for i in range(3)] == ["ok", "ok", "wait"]
    assert runs.client.zscore(runs.keys.flow_waiting, "bob") is None
    assert slots.share() == (4, 2)


def test_a_flow_released_before_a_submit_parks_again_when_it_arrives_after_it(runs) -> None:
    """A slot Alice freed went to her parked flow; Bob submits while its message is on its way:
    it arrives to a slot no longer spare (Bob waits for it) and parks again."""
    worker(runs, "w1", 4)
    alice = start(runs, "r1", "alice")
    assert [claim(runs, "r1", i, "alice") for i in range(5)] == ["ok"] * 4 + ["wait"]
    assert finish(runs, alice, 0).released == (("r1", "f4", 1),)
    start(runs, "r2", "bob")
    assert claim(runs, "r1", 4, "alice") == "wait"
    assert claim(runs, "r2", 0, "bob") == "ok"


def test_the_waiting_mark_clears_at_the_users_first_claim(runs) -> None:
    """Bob's claim ends his mark: once his one flow has ended, he no longer counts, and Alice,
    alone again, claims up to every slot (a mark still there would keep her at half)."""
    slots = FlowSlots(runs, lambda tasks, countdown: None)
    worker(runs, "w1", 4)
    alice = start(runs, "r1", "alice")
    assert [claim(runs, "r1", i, "alice") for i in range(3)] == ["ok"] * 3
    bob = start(runs, "r2", "bob")
    assert slots.share() == (4, 2)
    assert claim(runs, "r2", 0, "bob") == "ok"
    finish(runs, bob, 0)
    assert slots.share() == (4, 1)
    finish(runs, alice, 0)
    assert [claim(runs, "r1", i, "alice") for i in (3, 4)] == ["ok", "ok"]


def test_a_run_cancelled_before_its_flows_arrive_takes_its_mark_with_it(runs) -> None:
    """A probe's submit-and-cancel halved another user's share for the mark's 10 minutes,
    renewable at will. The cancel ends the mark, and so does its stale message reaching a
    worker (a mark left by a run cancelled with another still on its way)."""
    slots = FlowSlots(runs, lambda tasks, countdown: None)
    worker(runs, "w1", 4)
    start(runs, "r1", "alice")
    assert [claim(runs, "r1", i, "alice") for i in range(2)] == ["ok"] * 2
    start(runs, "r2", "bob")
    assert slots.share() == (4, 2)
    assert runs.cancel("r2") == "final"
    assert slots.share() == (4, 1)
    assert [claim(runs, "r1", i, "alice") for i in (2, 3)] == ["ok", "ok"]
    start(runs, "r3", "bob")
    start(runs, "r4", "bob")
    runs.client.hset(runs.keys.run("r3"), "cancelled", "1")  # as a cancel racing its claim
    assert slots.share() == (4, 2)
    assert claim(runs, "r3", 0, "bob") == "cancelled"
    assert slots.share() == (4, 1)  # it reached a worker: r4's own flows count bob from now


def test_a_waiting_mark_whose_flows_never_arrive_expires(runs, monkeypatch) -> None:
    """Bob's run goes to a queue no worker serves: his mark halves Alice's share only until it
    expires (fair_share.WAITING_MS, short here); then she claims again. Each user's mark
    expires on its own, and a reaper's sweep drops it."""
    monkeypatch.setattr(fair_share, "WAITING_MS", 300)
    slots = FlowSlots(runs, lambda tasks, countdown: None)
    worker(runs, "w1", 4)
    alice = start(runs, "r1", "alice")
    assert [claim(runs, "r1", i, "alice") for i in range(4)] == ["ok"] * 4
    start(runs, "r2", "bob")
    finish(runs, alice, 0)
    assert claim(runs, "r1", 4, "alice") == "wait"
    wait_for(lambda: slots.share() == (4, 1), timeout=5)
    assert claim(runs, "r1", 5, "alice") == "ok"  # her 4: alone again
    # each mark expires on its own: Carol's later, longer one does not keep Bob's
    start(runs, "r3", "bob")
    monkeypatch.setattr(fair_share, "WAITING_MS", 60_000)
    start(runs, "r4", "carol")
    assert slots.share() == (4, 3)
    wait_for(lambda: slots.share() == (4, 2), timeout=5)
    slots.heal()  # a sweep drops the expired marks
    assert runs.client.zrange(runs.keys.flow_waiting, 0, -1) == [b"carol"]


def test_a_workers_beat_says_how_many_flows_it_runs_while_it_lives(cluster) -> None:
    """Through real workers: each beat records its pool processes times DIZEST_LOCAL_SLOTS; a
    killed worker's slots stop counting once its beats age out."""
    cluster("w1", concurrency=2, env={"DIZEST_LOCAL_SLOTS": "2"})
    doomed = cluster("w2", concurrency=1, env={"DIZEST_LOCAL_SLOTS": "2"})
    slots = FlowSlots(cluster.client.runs, lambda tasks, countdown: None)
    wait_for(lambda: slots.live_slots() == 6, timeout=30)
    doomed.kill()
    wait_for(lambda: slots.live_slots() == 4, timeout=liveness.WINDOW_S + 10)
