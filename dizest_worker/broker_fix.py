"""Keep a Celery worker alive when Redis restarts under a running task (kombu redis transport).

The failure (celery 5.7, kombu 5.7, redis-py 8): a worker with a task in flight logged
`Unrecoverable error: AttributeError("'NoneType' object has no attribute 'hostname'")`, finished
its task and exited, so the next run stayed pending. The sequence, read from the traceback and
the sources:

1. Redis goes away while the consumer's channel waits on BRPOP (`Channel._in_poll` is set).
2. Celery's `Consumer.on_connection_error_after_connected` calls `connection.collect()` and
   then `connection.close()`.
3. In `collect()`, `Channel.close()` first reads the pending BRPOP reply (`_brpop_read`) and
   catches only `Empty`: the `ConnectionError` escapes *before* the channel is marked closed.
   `maybe_close_channel` swallows it, and `collect()` then detaches the transport from its
   `kombu.Connection` (`transport.client = None`).
4. `connection.close()` closes the same (still open) channel again. `_in_poll` is clear now,
   so it goes on: it drops its Redis pool, then restores the unacked message of the running
   task, which needs a new pool, whose parameters come from `transport.client.hostname`:
   AttributeError. It is not a connection error, so `ignore_errors` lets it through and the
   consumer treats it as unrecoverable; the worker shuts down cleanly (exit code 0).

It takes a task in flight (an unacked message to restore) and a pending BRPOP, which is why
nearly every restart under load hit it. No setting avoids it: `broker_connection_retry`,
transport retry options and health checks act after this point, and
`worker_cancel_long_running_tasks_on_connection_loss` only cancels tasks after the close.

The fix is the one the code means: a connection error while reading the last BRPOP reply of a
channel being closed means the reply is lost with the connection, so the close goes on and the
channel is really closed the first time (pool dropped, unacked message restored or, with Redis
down, left in the unacked hash for the visibility timeout, as kombu already does on any failed
restore). The second close is then a no-op. A message restored while its task still runs is
delivered again; the attempt fencing of CLAIM answers `stale` to it, so a flow never runs twice.
"""

from __future__ import annotations

from collections.abc import Callable
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis

_PATCHED = "_dizest_close_fix"
_LOST_REPLY_HOOKS: list[Callable[[], None]] = []


def on_lost_reply(hook: Callable[[], None]) -> None:
    """Call `hook` (in the consumer's thread; it must not block) whenever reading a BRPOP reply,
    or recording the message it brought in the unacked hash, fails on a connection error: Redis
    may have popped a message that is now in no list and in no unacked hash (a worker that lives
    on; `dizest_worker.lost_messages` finds such flows once an audit is due)."""
    _LOST_REPLY_HOOKS.append(hook)


def install() -> None:
    """Patch `kombu.transport.redis.Channel.close` once per process (idempotent), and tell
    the `on_lost_reply` hooks of every BRPOP reply lost with its connection."""
    channel_cls: Any = kombu_redis.Channel
    if getattr(channel_cls, _PATCHED, False):
        return
    original: Callable[[Any], None] = channel_cls.close

    def close(self: Any) -> None:
        self._closing = True
        if self._in_poll:
            try:
                self._brpop_read()
            except Empty:
                pass
            except self.connection_errors:
                pass  # the reply is lost with the connection: close the rest all the same
        original(self)

    read: Callable[..., Any] = channel_cls._brpop_read

    def brpop_read(self: Any, **options: Any) -> Any:
        try:
            return read(self, **options)
        except self.connection_errors:  # reading the reply, or recording what it brought
            for hook in _LOST_REPLY_HOOKS:
                hook()
            raise

    close.__doc__ = original.__doc__
    channel_cls.close = close
    channel_cls._brpop_read = brpop_read
    setattr(channel_cls, _PATCHED, True)
