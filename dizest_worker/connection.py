"""Redis clients for everything dizest runs: workers, reapers, the client and the API.

One factory, so every process rides out a Redis restart the same way (retries with backoff,
health checks, keepalive) and shares a bounded, blocking pool between its threads.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from dizest_worker.settings import WorkerSettings


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
