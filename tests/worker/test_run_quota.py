"""What a user's runs store in Redis counts against that user's quota, through real workers: past
it, a run's logs are dropped (said once), outputs are not kept (the flow fails, the run goes on
as after any failure), and another user's runs are untouched."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest

from dizest_worker.client import Client, RunsQuota
from tests.conftest import package

QUOTA = 100_000
NOTICE = "hold their storage quota"


def printer(lines: int) -> dict[str, Any]:
    return package(
        {"p": {"code": f"for i in range({lines}):\n    print(f'{{i:05d}}' + 'x' * 195)"}},
        {"f": {"app": "p"}},
    )


def stored(client: Client, user: str) -> dict[str, int]:
    raw = client.redis.hgetall(client.runs.keys.user_stored(user))
    return {k.decode(): int(v) for k, v in raw.items()}


def events_of(client: Client, run_id: str) -> list[Any]:
    return client.event_batch(run_id, count=100_000)


def test_logs_past_the_quota_are_dropped_for_that_user_only(cluster) -> None:
    cluster("w1", concurrency=2)
    client = Client(replace(cluster.settings, run_quota_bytes=QUOTA))
    alice = client.submit(printer(2000), account="alice")  # ~400 kB of lines
    bob = client.submit(printer(100), account="bob")  # ~20 kB: within his own quota
    assert client.wait(alice, timeout=120)["status"] == "ready"  # the flow itself went on
    assert client.wait(bob, timeout=120)["status"] == "ready"

    lines = [e for e in events_of(client, alice) if e.type == "log.append"]
    notices = [e for e in lines if NOTICE in e.data["entry"]]
    assert len(notices) == 1 and notices[0].data["stream"] == "engine"
    printed = [e for e in lines if e.data.get("stream") != "engine"]
    assert 100 < len(printed) < 500  # what fitted in 100 kB, in order, then nothing
    assert [int(e.data["entry"][:5]) for e in printed] == list(range(len(printed)))
    held = stored(client, "alice")
    assert QUOTA < held["bytes"] < QUOTA + 4096  # statuses are never dropped: a little over
    assert held[f"r:{alice}"] == held["bytes"] and held["quota"] == QUOTA
    stream = client.redis.xrange(client.runs.keys.events(alice))
    assert held["bytes"] >= sum(len(fields[b"e"]) for _, fields in stream)

    bob_lines = [e for e in events_of(client, bob) if e.type == "log.append"]
    assert [int(e.data["entry"][:5]) for e in bob_lines] == list(range(100))
    assert stored(client, "bob")["bytes"] < QUOTA


def test_outputs_past_the_quota_are_not_kept_and_the_flow_fails(cluster) -> None:
    cluster("w1", concurrency=1)
    client = Client(replace(cluster.settings, run_quota_bytes=QUOTA))
    pkg = package(
        {
            "big": {"code": "v = 'x' * 150_000", "outputs": ["v"]},
            "small": {"code": "v = 'ok'", "outputs": ["v"]},
            "use": {"code": "n = len(dizest.input('v'))", "inputs": ["v"], "outputs": ["n"]},
        },
        {
            "b": {"app": "big"},
            "s": {"app": "small"},
            "after_b": {"app": "use", "in": {"v": [("b", "v")]}},
            "after_s": {"app": "use", "in": {"v": [("s", "v")]}},
        },
    )
    run_id = client.submit(pkg, account="carol")
    report = client.wait(run_id, timeout=120)
    flows = report["flows"]
    assert report["status"] == "error"
    assert flows["b"]["status"] == "error"
    size = re.search(r"its outputs \((\d+) bytes\) were not kept", flows["b"]["reason"])
    assert size is not None and int(size.group(1)) > 150_000
    assert f"quota ({QUOTA} bytes)" in flows["b"]["reason"]
    assert flows["after_b"]["status"] == "idle" and flows["after_b"]["reason"] == (
        "upstream failed: b"
    )
    assert flows["after_s"]["status"] == "ready" and flows["after_s"]["outputs"]["n"] == 2
    assert not client.redis.hexists(client.runs.keys.outputs(run_id, "b"), "v:v")
    assert stored(client, "carol")["bytes"] < QUOTA
    kept = client.runs.keys.outputs(run_id, "s")  # outputs go with their run and its count
    run_left = client.redis.pttl(client.runs.keys.run(run_id))  # read first: the outputs' are
    assert 0 < client.redis.pttl(kept) <= run_left  # read later, so never more if they match


def test_a_failed_flows_previews_past_the_quota_are_not_kept(cluster) -> None:
    cluster("w1", concurrency=1)
    client = Client(replace(cluster.settings, run_quota_bytes=QUOTA))
    code = "for i in range(4):\n    dizest.output(f'p{i}', ['ab'] * 30_000)\nraise ValueError('no')"
    run_id = client.submit(package({"a": {"code": code}}, {"f": {"app": "a"}}), account="dan")
    report = client.wait(run_id, timeout=60)
    assert report["flows"]["f"]["status"] == "error"
    assert "ValueError: no" in report["flows"]["f"]["reason"]
    assert client.redis.hgetall(client.runs.keys.outputs(run_id, "f")) == {}
    assert stored(client, "dan")["bytes"] < QUOTA


def test_a_new_run_is_refused_in_redis_itself_once_the_quota_is_held(cluster) -> None:
    """The check the service makes before a submit is also made atomically as the run is made,
    so a submit that skipped it (an idempotency key that expired meanwhile) cannot pass."""
    cluster("w1", concurrency=1)
    client = Client(replace(cluster.settings, run_quota_bytes=500))
    first = client.submit(printer(5), account="erin")  # its package alone passes 500 bytes
    assert client.wait(first, timeout=60)["status"] == "ready"  # it has written all it will
    held = stored(client, "erin")["bytes"]
    assert held > 500
    with pytest.raises(RunsQuota) as refused:
        client.submit(printer(5), account="erin", idempotency_key="k1")
    assert refused.value.code == "quota_runs"
    assert refused.value.details == {
        "bytes": held,
        "quota_bytes": 500,
        "ttl_s": client.settings.ttl_s,
    }
    assert client.redis.get(client.runs.keys.idempotency("k1")) is None  # nothing stored
    assert stored(client, "erin")["bytes"] == held
    client.submit(printer(5), account="fred")  # another user's quota is their own


def test_a_run_without_an_account_counts_nowhere(cluster) -> None:
    cluster("w1", concurrency=1)
    client = Client(replace(cluster.settings, run_quota_bytes=1000))
    run_id = client.submit(printer(50))
    report = client.wait(run_id, timeout=60)
    assert report["status"] == "ready" and len(report["flows"]["f"]["log"]) == 50
    assert not list(client.redis.scan_iter(match=f"{cluster.settings.prefix}:user:*"))
    assert json.loads(client.record(run_id)["account"]) is None


@pytest.mark.parametrize(
    ("shape", "code"),
    [
        ("no-op", "v = 1"),
        ("long lines", "for i in range(2000):\n    print(f'{i:05d}' + 'x' * 195)"),
        ("short lines", "for i in range(10000):\n    print(i)"),
    ],
)
def test_the_quota_counts_what_redis_spends_on_a_run(cluster, shape: str, code: str) -> None:
    """Only the bytes stored were counted: a no-op run's keys took 5.5x them in Redis, a run
    of log lines 1.2-1.3x. Each run now counts its keys' and each event's own cost too, at
    least what `MEMORY USAGE` says of every key of the run, and not half as much again."""
    cluster("w1")
    client = Client(replace(cluster.settings, run_quota_bytes=1 << 30))
    user = f"u{abs(hash(shape))}"
    run_id = client.submit(package({"a": {"code": code}}, {"f": {"app": "a"}}), account=user)
    assert client.wait(run_id, timeout=120)["status"] == "ready"
    keys = list(client.redis.scan_iter(match=f"*{run_id}*", count=1000))
    used = sum(client.redis.memory_usage(k, samples=0) or 0 for k in keys)
    counted = stored(client, user)[f"r:{run_id}"]
    assert len(keys) >= 4 and used <= counted < 1.5 * used, (shape, used, counted)
