"""One redis-py client per kombu channel, not one per command (kombu redis transport).

kombu's `Channel._create_client()` builds a new `redis.Redis` for every synchronous use: each
message's ack and each delivery's unacked-index entry in a worker's main process, each publish
(a flow message a worker sends on, a submit in the API). redis-py 8 fills a table of ~200
response callbacks in each client's constructor: 56 us of CPU a client here, and py-spy put
13 % of a flow worker's main process in `Redis.__init__`. The client itself holds no state of
a call (its pool lends a connection per command; a pipeline is an object of its own), so one
per channel and pool does: it is built again when the channel makes a new pool (after a
connection loss, `broker_fix`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kombu.transport import redis as kombu_redis

_PATCHED = "_dizest_client_reuse"
_CACHED = "_dizest_sync_client"


def install() -> None:
    """Patch `kombu.transport.redis.Channel._create_client` once per process (idempotent)."""
    channel_cls: Any = kombu_redis.Channel
    if getattr(channel_cls, _PATCHED, False):
        return
    original: Callable[..., Any] = channel_cls._create_client

    def _create_client(self: Any, asynchronous: bool = False) -> Any:
        if asynchronous:
            return original(self, asynchronous=True)
        pool = self.pool
        client = self.__dict__.get(_CACHED)
        if client is None or client.connection_pool is not pool:
            client = original(self, asynchronous=False)
            setattr(self, _CACHED, client)
        return client

    _create_client.__doc__ = original.__doc__
    channel_cls._create_client = _create_client
    setattr(channel_cls, _PATCHED, True)
