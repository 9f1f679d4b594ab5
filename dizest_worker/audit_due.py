"""A worker that lives on asks the reapers for a lost-message audit (`lost_messages`).

A BRPOP reply lost with its connection (a Redis restart, a reset network: `broker_fix` tells)
may have carried a message Redis had already popped: now in no list and in no unacked hash. The
worker reconnects and goes on, so no death of a worker starts an audit: it asks for one itself
by setting `{p}:audit_due`, once Redis answers again. That waits in a thread of its own (the
consumer's thread, which learns of the loss, must not), retrying until `GIVE_UP_S`. A worker
that lost a reply also asks again when it stops (`liveness`).
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from dizest_worker.keys import Keys
from dizest_worker.settings import WorkerSettings

log = logging.getLogger("dizest.worker")

FIRST_RETRY_S = 0.2  # doubling up to MAX_RETRY_S while Redis does not answer
MAX_RETRY_S = 5.0
GIVE_UP_S = 600.0  # then the worker's next loss, or its stop, asks again


class _State:
    lock = threading.Lock()
    lost = 0  # replies lost in this process's life
    asking = False  # a thread is asking


def lost_a_reply(settings: WorkerSettings) -> None:
    """`broker_fix`'s hook: a reply was lost; ask for an audit as soon as Redis answers."""
    with _State.lock:
        _State.lost += 1
        start, _State.asking = not _State.asking, True
    if start:
        threading.Thread(
            target=_ask, args=(settings,), name="dizest-audit-due", daemon=True
        ).start()


def lost_any() -> bool:
    """Whether this process lost a reply in its life (its stop then asks for an audit too)."""
    with _State.lock:
        return _State.lost > 0


def mark(client: redis.Redis, settings: WorkerSettings) -> None:
    """Ask the reapers for an audit now (`{p}:audit_due`; the next sweep takes it)."""
    client.set(Keys(settings.prefix).audit_due, "1")


def _ask(settings: WorkerSettings) -> None:
    from dizest_worker.connection import redis_client

    client = redis_client(settings)
    wait, deadline = FIRST_RETRY_S, time.monotonic() + GIVE_UP_S
    while True:
        with _State.lock:
            covering = _State.lost
        try:
            mark(client, settings)
        except redis.RedisError as exc:
            if time.monotonic() > deadline:
                log.warning("could not ask for a lost-message audit: %s", type(exc).__name__)
                with _State.lock:
                    _State.asking = False
                return
            time.sleep(wait)
            wait = min(wait * 2, MAX_RETRY_S)
            continue
        with _State.lock:
            if _State.lost == covering:  # no loss since this ask: done
                _State.asking = False
                return
