"""The event hub's one pubsub connection: a channel per run that someone streams here.

Each run's events go live on its own channel (`Client.run_channel`), so an API process receives
(and decodes) only the events of runs it streams: a run nobody watches here, however much it
logs, costs this process nothing, and cannot fill the Redis output buffer of its connection.

`RunChannels.serve` runs in the hub's thread. It subscribes the base channel first (each run's
final event: its confirmation says the connection works), then keeps the set of run channels
subscribed equal to `wanted()`: at once when `want()` is called (a stream of a run not yet
subscribed), else at least every `RECONCILE_S` (streams that ended: their runs' channels are
unsubscribed). Callbacks, all from that thread:

- `on_subscribed(None)`: the connection is (again) subscribed; whatever was published while
  it was not is lost: every stream must catch up from its run's stream.
- `on_subscribed(run_id)`: the run's channel is now subscribed; what was published on it before
  is in the run's stream only: its streams, which replayed meanwhile, must catch up.
- `on_events(items)`: messages of subscribed runs as one batch of (run, message), in the order
  Redis sent them (a confirmation always comes after the messages received before it); also
  called with none after a read that found nothing (the hub's floods end on time).
- `on_lost()`: the connection failed; it is made again after a short wait.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable

import redis

from dizest_api.pubsub_read import waiting

log = logging.getLogger("dizest.api.streaming")  # the name the logs have always used

BATCH = 500  # pubsub messages read at once at most
RECONCILE_S = 1.0  # runs nobody streams here any more are unsubscribed within this
IDLE_S = 0.5  # the longest a read waits (the stop flag is looked at this often)


class RunChannels:
    def __init__(
        self,
        redis_url: str,
        base: str,
        run_channel: Callable[[str], str],
        wanted: Callable[[], set[str]],
        on_subscribed: Callable[[str | None], None],
        on_events: Callable[[list[tuple[str, str]]], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.redis_url, self.base, self.run_channel = redis_url, base, run_channel
        self.wanted, self.on_subscribed = wanted, on_subscribed
        self.on_events, self.on_lost = on_events, on_lost
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._asked = threading.Event()  # want() since the last reconcile

    def want(self) -> None:
        """A run may want subscribing: reconcile now (any thread)."""
        if not self._asked.is_set() and self._wake_w >= 0:
            self._asked.set()
            with contextlib.suppress(BlockingIOError):  # a wake-up is pending already
                os.write(self._wake_w, b"\0")

    def close(self) -> None:
        """Once: closed fd numbers are soon another object's, which a second close, or a
        wake-up written after it, would close or write into."""
        fds, (self._wake_r, self._wake_w) = (self._wake_r, self._wake_w), (-1, -1)
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def serve(self, stop: threading.Event) -> None:
        """Until `stop` is set: (re)connect, subscribe, read, hand batches on."""
        while not stop.is_set():
            client = redis.Redis.from_url(self.redis_url, decode_responses=True)
            pubsub = client.pubsub()
            runs: dict[str, str] = {}  # channel -> run, of the run channels subscribed
            try:
                pubsub.subscribe(self.base)
                next_reconcile = 0.0  # once the first read has had the base's confirmation
                while not stop.is_set():
                    self._read(pubsub, runs)
                    if self._asked.is_set() or time.monotonic() >= next_reconcile:
                        self._asked.clear()
                        self._reconcile(pubsub, runs)
                        next_reconcile = time.monotonic() + RECONCILE_S
            except Exception:  # Redis went away: subscribe again; every stream catches up
                log.warning("event hub lost its subscription; retrying", exc_info=True)
                self.on_lost()
                stop.wait(IDLE_S)
            finally:
                with contextlib.suppress(Exception):  # closing a broken connection
                    pubsub.close()
                    client.close()

    def _reconcile(self, pubsub: redis.client.PubSub, runs: dict[str, str]) -> None:
        wanted = {self.run_channel(run): run for run in self.wanted()}
        add = [channel for channel in wanted if channel not in runs]
        drop = [channel for channel in runs if channel not in wanted]
        if add:
            pubsub.subscribe(*add)
        if drop:
            pubsub.unsubscribe(*drop)
        for channel in drop:
            del runs[channel]
        runs.update((channel, wanted[channel]) for channel in add)

    def _read(self, pubsub: redis.client.PubSub, runs: dict[str, str]) -> None:
        """What has arrived (waiting up to IDLE_S for something, or a wake-up), as batches."""
        self._wait(pubsub)
        raws: list[tuple[str, str]] = []
        message = waiting(pubsub)
        while message is not None:
            kind, channel = message["type"], message["channel"]
            if kind == "subscribe":
                self.on_events(raws)  # what came before the confirmation, first
                raws = []
                if channel == self.base:
                    self.on_subscribed(None)
                elif channel in runs:
                    self.on_subscribed(runs[channel])
            elif kind == "message" and channel in runs:
                raws.append((runs[channel], message["data"]))
            # whatever else is waiting, as one batch: one send per client
            message = waiting(pubsub) if len(raws) < BATCH else None
        self.on_events(raws)

    def _wait(self, pubsub: redis.client.PubSub) -> None:
        """Until some of a message has arrived, `want()` was called, or IDLE_S passed."""
        conn = pubsub.connection
        if conn is None or conn.can_read(timeout=0):  # read already buffered, first
            return
        sock = getattr(conn, "_sock", None)  # redis-py's socket: no public name for it
        fds = [self._wake_r] if sock is None else [self._wake_r, sock]
        ready, _, _ = select.select(fds, [], [], IDLE_S)
        if self._wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)
