"""Redis clients for everything dizest runs: workers, reapers, the client and the API.

One factory, so every process rides out a Redis restart the same way (retries with backoff,
health checks, keepalive) and shares a bounded, blocking pool between its threads. A process
starting up first `reach`es Redis, so an unreachable one is said at once, not after the
factory's minute of retries.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from dizest_core.errors import ConfigError
from dizest_worker.settings import WorkerSettings

REACH_S = 30.0  # how long a starting service waits for Redis (one started beside it may lag)


def redis_client(
    settings: WorkerSettings, *, text: bool = False, single: bool = False
) -> redis.Redis:
    """A client that rides out a Redis restart (retries with backoff, health checks).

    Its pool blocks (up to `redis_pool_timeout_s`) when all `redis_max_connections` are in use
    instead of failing: an API process with a thousand stream threads shares a bounded pool.
    `text`: replies are str (accounts and workflows are text). `single`: its commands share
    one connection of the pool, held for the client's life (pipelines and pubsub still borrow
    their own): for a client one thread uses call after call, as a pool process's Executor,
    where lending and taking back a connection per command (a lock, a pid check, a poll of
    the socket for stray data) was a third of redis-py's own CPU per call. A connection error
    still drops it and the next try reconnects it (the same retries)."""
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_s,
        decode_responses=text,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=30),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=30,
        socket_keepalive=True,
    )
    return redis.Redis(connection_pool=pool, single_connection_client=single)


def reach(url: str, within_s: float = 0.0, say: Callable[[str], None] | None = None) -> None:
    """Return once Redis at `url` answers a PING, each try bounded to a few seconds. Until
    `within_s` has passed, try again every second, having said once (`say`) which URL
    (redacted) does not answer and why; then a ConfigError saying so."""
    deadline = time.monotonic() + within_s
    told = False
    while True:
        problem = _ping(url)
        if problem is None:
            return
        if time.monotonic() >= deadline:
            raise ConfigError(problem)
        if say is not None and not told:
            say(f"{problem}; trying again for up to {within_s:g} s")
            told = True
        time.sleep(1)


def _ping(url: str) -> str | None:
    try:
        probe = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    except ValueError as exc:  # a URL redis-py does not take
        return f"DIZEST_REDIS_URL {redact_url(url)}: {exc}"
    try:
        probe.ping()
        return None
    except redis.RedisError as exc:
        return f"cannot reach Redis at {redact_url(url)}: {str(exc).rstrip('.')}"
    finally:
        probe.close()


_QUERY_PASSWORD = re.compile(r"(?i)(password=)[^&]*")


def redact_url(url: str) -> str:
    """`url` fit for a log line: its password (in the user part or a `password=` query
    parameter) replaced by `***`, as in `redis://:***@host:port/db`. Everything that prints a
    Redis URL goes through here. A URL whose user part does not parse as one (`redis//:pw@h`,
    no colon after the scheme; a password holding `/`, `?` or `#`) keeps only what follows its
    last `@`: a mistyped URL still holds the password."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return "<unparsable URL>"
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        url = url.replace(netloc, f"{userinfo.partition(':')[0]}:***@{host}", 1)
    elif "@" in url:
        url = "***@" + url.rpartition("@")[2]
    return _QUERY_PASSWORD.sub(r"\1***", url)
