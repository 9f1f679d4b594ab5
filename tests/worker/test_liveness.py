"""Worker liveness against a real Redis and real `dizest worker` processes: the heartbeat comes
from the pool once Celery is ready, a previous instance's beat is deleted at start, and a worker
whose main process died stops counting within one window."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dizest_worker import liveness
from dizest_worker.connection import redis_client
from dizest_worker.keys import Keys
from tests.conftest import package, wait_for
from tests.redis_server import EmbeddedRedis, free_port
from tests.worker.conftest import WorkerProcess, alive, make_settings


def children(pid: int) -> dict[int, str]:
    """pid -> cmdline of the live children of `pid`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = cmdline
    return found


def test_the_pool_beats_and_a_leftover_beat_never_stands_for_a_new_worker(
    cluster: Callable[..., WorkerProcess],
) -> None:
    settings = cluster.settings  # type: ignore[attr-defined]
    client = redis_client(settings)
    workers = Keys(settings.prefix).workers
    leftover = int(time.time() * 1000) + 3_600_000  # a previous instance's beat, never older
    client.hset(workers, "w1", leftover)
    worker = cluster("w1")
    # ready: the old beat was deleted at start and the new one written before "ready."
    assert int(client.hget(workers, "w1")) < leftover
    assert liveness.live_workers(client, settings) == ["w1"]

    reaper = next(
        p for p, cmd in children(worker.proc.pid).items() if "dizest_worker.reaper" in cmd
    )
    os.kill(reaper, signal.SIGKILL)  # the reaper is not the heartbeat: beats go on without it
    killed_ms = time.time() * 1000
    wait_for(lambda: float(client.hget(workers, "w1")) > killed_ms, timeout=5)

    pool = [p for p, cmd in children(worker.proc.pid).items() if p != reaper]
    assert pool, "no pool process"
    os.kill(worker.proc.pid, signal.SIGKILL)  # the main process only: the pool dies with it
    worker.proc.wait(timeout=10)
    wait_for(lambda: not any(alive(p) for p in pool), timeout=5)
    wait_for(lambda: not liveness.live_workers(client, settings), timeout=liveness.WINDOW_S + 3)  # fmt: skip


def test_a_worker_that_stops_cleanly_leaves_at_once_and_asks_no_audit(
    cluster: Callable[..., WorkerProcess],
) -> None:
    settings = cluster.settings  # type: ignore[attr-defined]
    client = redis_client(settings)
    keys = Keys(settings.prefix)
    stays, goes = cluster("w1"), cluster("w2")
    assert liveness.live_workers(client, settings) == ["w1", "w2"]
    goes.stop()  # SIGTERM: Celery's warm shutdown
    assert goes.proc.returncode == 0
    # gone at once, not a window later; and a clean stop is not a death to audit for
    assert client.hget(keys.workers, "w2") is None
    assert client.hget(keys.worker_slots, "w2") is None
    assert liveness.live_workers(client, settings) == ["w1"]
    assert not client.exists(keys.audit_due)
    stays.kill()  # SIGKILL: the beat stays, to age out (and be audited)
    assert client.hget(keys.workers, "w1") is not None


def test_a_worker_stopping_while_redis_is_away_is_not_held_up_by_its_beat(
    tmp_path: Path,
) -> None:
    """Deleting the beat gives up after `LEAVE_S`: the Redis client's retries held the exit up
    for ~43 s more than Celery's own shutdown without Redis (54 s against 11 s, measured)."""
    server = EmbeddedRedis(tmp_path / "redis", port=free_port())
    settings = make_settings(server.url, tmp_path)
    worker = WorkerProcess(settings, "a")
    server.stop()
    try:
        stopping = time.monotonic()
        os.killpg(worker.proc.pid, signal.SIGTERM)
        worker.proc.wait(timeout=120)
        assert time.monotonic() - stopping < 30, worker.log[-2000:]
    finally:
        worker.stop()


def test_only_beats_within_the_window_count(redis_url: str, tmp_path: Path) -> None:
    settings = make_settings(redis_url, tmp_path)
    client = redis_client(settings)
    stale = int(time.time() * 1000) - int(liveness.WINDOW_S * 1000) - 1
    client.hset(
        Keys(settings.prefix).workers, mapping={"old": stale, "new": int(time.time() * 1000)}
    )
    assert liveness.live_workers(client, settings) == ["new"]
    liveness.forget(client, settings, "new")
    assert liveness.live_workers(client, settings) == []
    assert liveness.last_seen_s(client, settings, "old") >= liveness.WINDOW_S
    client.delete(Keys(settings.prefix).workers)


def test_a_users_run_may_use_only_queues_a_worker_serves(
    cluster: Callable[..., WorkerProcess],
) -> None:
    """A worker records its queues once ready; a run submitted for a user to a queue no worker
    has served is refused before anything is stored or sent (a probe's runs to made-up queues
    left their messages in the broker for good). Programs with their own Redis access (no
    account) may still queue ahead of their workers."""
    from dizest_core.errors import InvalidOptions

    client = cluster.client  # type: ignore[attr-defined]
    settings = client.settings
    cluster("w1", queues=f"{settings.queue},gpu")
    served = {q.decode() for q in client.redis.hkeys(Keys(settings.prefix).queues)}
    assert served >= {settings.queue, "gpu"}
    pkg = package(
        {"a": {"code": "v = 1", "outputs": ["v"]}},
        {"f": {"app": "a", "dizest": {"queue": "gpu"}}, "g": {"app": "a"}},
    )
    run_id = client.submit(pkg, account="alice")
    assert client.wait(run_id, timeout=60)["status"] == "ready"
    made_up = package({"a": {"code": "v = 1", "outputs": ["v"]}},
                      {"f": {"app": "a", "dizest": {"queue": "nobody"}}})  # fmt: skip
    client.redis.delete("nobody", *client.redis.keys("nobody*"))  # another test run's
    runs_before = client.redis.zcard(Keys(settings.prefix).runs)
    with pytest.raises(InvalidOptions) as refused:
        client.submit(made_up, account="alice")
    assert "no worker serves queue 'nobody'" in str(refused.value.problems[0])
    assert client.redis.zcard(Keys(settings.prefix).runs) == runs_before  # nothing stored
    assert client.redis.llen("nobody") == 0  # nothing sent
    try:
        assert client.submit(made_up)  # no account: a program's own run may wait for its worker
    finally:
        client.redis.delete(*client.redis.keys("nobody*"))
