"""Ready flows go to the broker at a priority level (`Plan.level`) and real workers take the
most urgent first: the longest remaining path, as in local mode (tests/core/test_runner.py)."""

from __future__ import annotations

from dizest_core.events import FLOW_STATUS
from dizest_worker.messages import FlowTask, broker_lists, chunked
from tests.conftest import chain_and_leaves


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
    events = client.runs.events(run_id, count=1000)
    started = [e.flow_id for e in events if e.type == FLOW_STATUS and e.data["status"] == "running"]
    assert started[:2] == chain[:2]
    assert sorted(started[2:]) == sorted([*leaves, chain[-1]])
    assert [f for f in started if f in leaves] == leaves


def test_batches_hold_one_level_each_most_urgent_first():
    tasks = [FlowTask("r", f"f{i}", 1, level) for i, level in enumerate([3, 0, 3, 1, 0] * 4)]
    chunks = chunked(tasks)
    assert all(len({t.level for t in chunk}) == 1 for chunk in chunks)
    assert [chunk[0].level for chunk in chunks] == sorted(chunk[0].level for chunk in chunks)
    assert sorted(t.flow_id for chunk in chunks for t in chunk) == sorted(t.flow_id for t in tasks)
