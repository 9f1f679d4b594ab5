"""A few Redis commands sent at once on one pooled connection, their replies read back raw.

For reads on a hot path whose reply shapes the caller knows (the API's SSE connect: the token
script, then a run's status and first events). A command through redis-py's client, or a
pipeline, passes its retry, observability, command-parsing and response-callback layers, ~130
Python calls each (a third of what an SSE connect spends in Python was redis-py); this sends
the packed commands on a connection of the client's own pool and reads each reply, as the
pipeline does underneath. What keeps a client riding out a Redis restart is kept: the
connection's Retry (its backoff, its errors), a dropped connection reconnected at the next
try, the pool's checks of a connection it lends. Replies are as Redis sent them (decoded if
the client decodes): no response callback shapes them (XRANGE: [id, [field, value, ...]]).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, TypeVar

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

Command = Sequence[Any]
T = TypeVar("T")


def round_trip(client: redis.Redis, *commands: Command) -> list[Any]:
    """The replies of `commands`, sent together on one of `client`'s pooled connections and
    read in order: one round trip. An error reply raises (the first one) as the client would;
    a connection that failed, or whose replies were not all read, is dropped, not lent again."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        return conn.retry.call_with_retry(partial(_exchange, conn, commands), conn.disconnect)
    except BaseException:
        conn.disconnect()  # replies may be left unread on it
        raise
    finally:
        pool.release(conn)


def _exchange(conn: Any, commands: Sequence[Command]) -> list[Any]:
    conn.send_packed_command(conn.pack_commands(commands))
    return [conn.read_response() for _ in commands]


def run_script(
    client: redis.Redis, script: Script, keys: Sequence[Any], args: Sequence[Any]
) -> Any:
    """`script`'s reply (a script registered on `client`), by EVALSHA in one round trip; loaded
    first if the server does not know it (restarted, flushed), as redis-py's Script does."""
    command = ("EVALSHA", script.sha, len(keys), *keys, *args)
    try:
        return round_trip(client, command)[0]
    except NoScriptError:
        script.sha = client.script_load(script.script)
        return round_trip(client, ("EVALSHA", script.sha, len(keys), *keys, *args))[0]


def pairs(flat: Sequence[T]) -> dict[T, T]:
    """A raw reply of fields and values (HGETALL's, a stream entry's: f1, v1, f2, v2, ...) as
    a dict; an odd count raises."""
    it = iter(flat)
    return dict(zip(it, it, strict=True))
