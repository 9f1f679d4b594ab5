"""Ready flows go to the broker at a priority level (`Plan.level`) and real workers take the
most urgent first: the longest remaining path, as in local mode (tests/core/test_runner.py)."""

from __future__ import annotations

from dizest_core.events import FLOW_STATUS
from dizest_worker.client import Client
from dizest_worker.connection import redis_client
from dizest_worker.messages import FlowTask, broker_lists, chunked
from dizest_worker.orchestration import Executor
from tests.conftest import chain_and_leaves
from tests.worker.conftest import cleanup, make_settings


def started(client: Client, run_id: str) -> list[str]:
    """The flows of a run in the order they started (their `running` events)."""
    events = client.runs.events(run_id, count=1000)
    return [e.flow_id for e in events if e.type == FLOW_STATUS and e.data["status"] == "running"]


def test_queued_roots_are_taken_longest_remaining_path_first(cluster):
    """Five leaves and the head of a 3-flow chain queued before any worker runs; one worker
    with one slot takes the chain's head first (level 0), though it was the last root in package
    order, runs its next link before any leaf, and the leaves in package order."""
    pkg, chain, leaves = chain_and_leaves()
    client, queue = cluster.client, cluster.settings.queue
    run_id = client.submit(pkg)
    lists = broker_lists(queue)
    assert [client.redis.llen(name) for name in lists[:3]] == [1, 0, len(leaves)]
    cluster("w1", concurrency=1)
    assert client.wait(run_id, timeout=60)["status"] == "ready"
    order = started(client, run_id)
    assert order[:2] == chain[:2]
    assert sorted(order[2:]) == sorted([*leaves, chain[-1]])
    assert [f for f in order if f in leaves] == leaves


def test_a_process_runs_the_tasks_it_holds_most_urgent_first(redis_url, tmp_path):
    """Every root in one batch, one slot, no broker (sends are recorded): the chain's head
    starts first though it came last, and its freed link is sent at a more urgent level than
    the leaves the process still holds."""
    settings = make_settings(redis_url, tmp_path)
    sent: list[FlowTask] = []
    client = Client(settings)
    client._enqueue = lambda tasks, countdown: sent.extend(t for t, _ in tasks)
    ex = Executor(settings, redis_client(settings), client._enqueue)
    try:
        pkg, chain, leaves = chain_and_leaves()
        run_id = client.submit(pkg)
        assert [t.flow_id for t in sent] == [chain[0], *leaves]  # sent most urgent first
        assert [t.level for t in sent] == [0] + [2] * len(leaves)
        roots = sorted(sent, key=lambda t: t.flow_id)  # package order lost: the rank decides
        sent.clear()
        ex.handle(roots)
        assert started(client, run_id)[0] == chain[0]
        for task in list(sent):  # the rest of the chain, freed while the leaves were held
            sent.remove(task)
            ex.handle([task])
        assert client.wait(run_id, timeout=30)["status"] == "ready"
    finally:
        ex.close()
        cleanup(settings)


def test_batches_hold_one_level_each_most_urgent_first():
    tasks = [FlowTask("r", f"f{i}", 1, level) for i, level in enumerate([3, 0, 3, 1, 0] * 4)]
    chunks = chunked(tasks)
    assert all(len({t.level for t in chunk}) == 1 for chunk in chunks)
    assert [chunk[0].level for chunk in chunks] == sorted(chunk[0].level for chunk in chunks)
    assert sorted(t.flow_id for chunk in chunks for t in chunk) == sorted(t.flow_id for t in tasks)
