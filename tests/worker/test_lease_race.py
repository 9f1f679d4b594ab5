"""The lease race (issue 7, item 4): a reservation and the lease its claim takes share one
member, run␟flow␟attempt, and the claim of a freshly sent attempt can land between the sender's
enqueue and its release of the reservation. The release must then keep the entry: deleting it
left the attempt `running` with no lease, out of the reaper's sight for good.

Each test drives that exact interleaving against a real Redis with the real scripts: the
enqueue callable plays the fast worker, claiming what it is handed before it returns, so the
claim lands after the requeue (or create) and before the late release.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dizest_core import dwp
from dizest_core.plan import make_plan
from dizest_worker.connection import redis_client
from dizest_worker.keys import lease_member
from dizest_worker.orchestration import FlowTask
from dizest_worker.reaper import Reaper
from dizest_worker.settings import WorkerSettings
from dizest_worker.state import RedisRuns
from tests.conftest import package, wait_for
from tests.worker.conftest import cleanup, make_settings

ONE = package({"src": {"code": "v = 1", "outputs": ["v"]}}, {"a": {"app": "src"}})
RUN = "r1"


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Iterator[WorkerSettings]:
    # short leases: the test waits for real expiry (reservations last 3 leases: 0.9 s)
    settings = make_settings(redis_url, tmp_path, lease_s=0.3, max_attempts=3)
    yield settings
    cleanup(settings)


def connect(settings: WorkerSettings) -> RedisRuns:
    return RedisRuns(redis_client(settings), settings)


def create(runs: RedisRuns) -> None:
    record = {"targets": None, "reused": [], "options": {}, "inputs": {}, "flow_inputs": {}}
    assert runs.create(RUN, ONE, make_plan(dwp.load(ONE)), record).roots == ("a",)


def lease(runs: RedisRuns, attempt: int) -> float | None:
    score = runs.client.zscore(runs.keys.leases, lease_member(RUN, "a", attempt))
    return None if score is None else float(score)


def run_leases(runs: RedisRuns) -> list[bytes]:
    return [m for m in runs.client.zrange(runs.keys.leases, 0, -1) if m.startswith(b"r1\x1f")]


class FastWorker:
    """An enqueue that a worker answers at once: each task is claimed (on the worker's own
    connection) before the sender gets control back to release its reservation."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.runs = connect(settings)
        self.claimed: list[FlowTask] = []

    def __call__(self, tasks: list[tuple[FlowTask, str]], countdown: float) -> None:
        for task, _queue in tasks:
            answer, _ = self.runs.claim(task.run_id, task.flow_id, task.attempt, "fast")
            assert answer == "ok"
            self.claimed.append(task)


def test_the_reapers_late_release_keeps_the_lease_the_next_attempt_has_claimed(settings):
    runs, worker = connect(settings), FastWorker(settings)
    create(runs)
    runs.release([(RUN, "a", 1)])  # the submitter sent the root: the broker holds it
    assert runs.claim(RUN, "a", 1, "lost")[0] == "ok"  # ...and a worker that then dies took it
    reaper = Reaper(runs, worker, settings)

    # lease 1 expires -> REQUEUE makes attempt 2 -> enqueue, where it is claimed -> release
    assert wait_for(reaper.sweep, timeout=10) == [(RUN, "a", "2")]
    assert worker.claimed == [FlowTask(RUN, "a", 2)]
    assert runs.flow_field(RUN, "a") == "running"
    assert runs.flow_field(RUN, "a", "attempt") == "2"
    assert lease(runs, 2) is not None, "the late release deleted attempt 2's lease"
    assert run_leases(runs) == [lease_member(RUN, "a", 2).encode()]  # exactly one, its own
    assert worker.runs.heartbeat([(RUN, "a", 2)]) == [(True, False)]  # its worker keeps it

    # attempt 2's worker dies too: the reaper sees its lease expire and requeues attempt 3...
    assert wait_for(reaper.sweep, timeout=10) == [(RUN, "a", "3")]
    assert lease(runs, 3) is not None
    assert run_leases(runs) == [lease_member(RUN, "a", 3).encode()]
    # ...whose loss is the third: the flow fails `worker lost`, and the run ends with it
    assert wait_for(reaper.sweep, timeout=10) == [(RUN, "a", "failed")]
    assert runs.flow_states(RUN, ["a"])["a"]["status"] == "error"
    assert runs.flow_field(RUN, "a", "reason") == "worker lost"
    assert runs.wait_final(RUN, timeout_s=5) == "error"
    assert run_leases(runs) == []
    assert worker.claimed == [FlowTask(RUN, "a", 2), FlowTask(RUN, "a", 3)]


def test_the_submitters_late_release_keeps_the_lease_of_a_root_claimed_meanwhile(settings):
    runs, worker = connect(settings), FastWorker(settings)
    create(runs)
    reserved = lease(runs, 1)
    worker([(FlowTask(RUN, "a", 1), settings.queue)], 0.0)  # claimed before the release below
    claimed = lease(runs, 1)
    assert reserved is not None and claimed is not None and claimed < reserved  # CLAIM's score
    assert runs.release([(RUN, "a", 1)]) == 0
    assert lease(runs, 1) == claimed
    assert worker.runs.heartbeat([(RUN, "a", 1)]) == [(True, False)]


def test_a_release_still_drops_a_reservation_nobody_has_claimed(settings):
    runs = connect(settings)
    create(runs)
    assert lease(runs, 1) is not None
    assert runs.release([(RUN, "a", 1), (RUN, "a", 2)]) == 1  # attempt 2 is no entry of ours
    assert lease(runs, 1) is None
    assert runs.release([]) == 0
