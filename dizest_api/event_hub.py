"""The event hub behind live run streams (`dizest_api.streaming` is one client's side).

One `EventHub` per API process (per app) holds ONE Redis pubsub connection, subscribed to the
channel of each run it streams (`dizest_api.run_channels`: a run nobody streams here costs this
process nothing), read by a background thread started on first use. It reads whatever messages
are waiting at once and fans them out, per run:

- to the SSE streams it owns (`dizest_api.stream_owner`): once a stream has replayed the run's
  stream in its request thread, the socket is handed to the hub (`own`) and the thread is free.
  Each event is framed once and the same bytes go to every client of the run, one non-blocking
  send per client per batch; no thread per client.
- to per-client bounded queues for the streams that keep a thread (WebSocket; SSE where the
  server cannot hand a socket over: the dev server, TLS, HTTP/1.0). A client whose queue
  overflows is dropped (its stream ends; it resumes with Last-Event-ID / `?after=`).

Whenever the hub (re)subscribes, it queues RESYNC to every queued client and has every owned one
caught up from its run's stream; once a run's channel is subscribed, the same for that run's.
A run whose events come faster than the hub hands them on is caught up from its stream the same
way while it floods, its channel unsubscribed meanwhile, so the other runs' events are not held
up behind its (`dizest_api.floods`). `shutdown()` (on SIGTERM, see gunicorn_app.py) ends every stream
at once, cleanly: clients resume with Last-Event-ID on another process instead of being cut when
the graceful timeout runs out. Limits: `max_clients` streams in all, `max_threads` of them
holding a thread (the rest of the server's threads stay free for ordinary requests); one over
answers 503. And `per_user` streams of one user (SSE and WebSocket alike; by default a tenth of
`max_clients`, at least 8): one over answers 429, so one user cannot take every place.

A stream's place is a `Lease`, taken by `admit` (counted under the hub lock, so streams opened
at once cannot pass the per-user limit together) and held by the stream's events (`Held`) until
they are closed; once the hub owns the stream's socket (`own`), the owned stream holds it
instead, until the stream is gone.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

from flask import Flask

from dizest_api import handover
from dizest_api.floods import Floods
from dizest_api.run_channels import RunChannels
from dizest_api.sse_frames import chunk, sse_frame, stream_key
from dizest_api.stream_access import AccessWatch, Reader
from dizest_api.stream_leases import (
    CLOSING,
    RESYNC,
    Held,
    Lease,
    Subscription,
    TooManyOfYourStreams,
    TooManyStreams,
    resync_pending,
    streams_per_user,
)
from dizest_api.stream_owner import OwnedStreams, RunFeed
from dizest_core.events import Event
from dizest_worker.client import run_channel

__all__ = ["CLOSING", "RESYNC", "EventHub", "Subscription", "chunk", "hub_for", "sse_frame"]
__all__ += ["Held", "Lease", "TooManyOfYourStreams", "TooManyStreams", "stream_key"]
__all__ += ["streams_per_user"]

log = logging.getLogger("dizest.api.streaming")  # the name the logs have always used


class EventHub:
    """One pubsub subscription fanned out to owned sockets and per-client queues."""

    def __init__(
        self,
        redis_url: str,
        channel: str,
        queue_size: int = 1000,
        max_clients: int = 1000,
        max_threads: int | None = None,
        heartbeat_s: float = 15.0,
        per_user: int | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.channel = channel
        self.queue_size = queue_size
        self.max_clients = max_clients
        self.max_threads = max_clients if max_threads is None else max_threads
        self.per_user = streams_per_user(max_clients) if per_user is None else per_user
        # of them, streams that hold a server thread (WebSocket, SSE over HTTP/1.0 or TLS): a
        # share of the threads, else one user's could take every one (the cap above is larger)
        self.per_user_threads = min(self.per_user, streams_per_user(self.max_threads))
        # user -> their streams' leases (those of owned streams that ended go at the cap)
        self._leases: dict[str, set[Lease]] = {}
        self._by_sock: dict[socket.socket, Lease] = {}  # leases of streams `own` may take
        self.closing = False
        self._subs: dict[str, set[Subscription]] = {}
        self._lock = threading.Lock()
        self.owned = OwnedStreams(self._lock, queue_size, heartbeat_s)
        self.access = AccessWatch(self._read_leases, self.revoke, heartbeat_s)
        self.floods = Floods()  # the pubsub thread's
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.channels = RunChannels(
            redis_url, channel, partial(run_channel, channel), self._wanted,
            self._subscribed, self._dispatch_all, self.ready.clear,
        )  # fmt: skip

    def subscribe(self, run_id: str, wait_s: float = 5.0, admitted: bool = True) -> Subscription:
        sub = Subscription(run_id, self.queue_size, admitted=admitted)
        with self._lock:
            subs = self._subs.setdefault(run_id, set())
            if not subs and run_id not in self.owned.by_run:
                self.channels.want()  # its channel is subscribed from the hub's thread
            subs.add(sub)
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="dizest-event-hub", daemon=True
                )
                self._thread.start()
        # Not fatal if slow: the client is sent RESYNC once the subscription is confirmed.
        if not self.ready.is_set():
            handover.leave_gate()  # a wait (Redis away?) must not hold up other streams' setup
            self.ready.wait(wait_s)
        return sub

    def streams(self, run_id: str) -> bool:
        """Whether streams of `run_id` are served here (its channel subscribed): a hint."""
        return run_id in self._subs or run_id in self.owned.by_run  # no lock: one dict read each

    def admit(self, threaded: bool = True, user: str | None = None,
              sock: socket.socket | None = None, reader: Reader | None = None,
              sub: Subscription | None = None) -> Lease:  # fmt: skip
        """A place for one more stream (of `user`: at most `per_user` of theirs), or
        TooManyStreams (503) / TooManyOfYourStreams (429), before the response starts. Totals
        are counted from the streams running, so a race may let a few more in; a user's own
        from their leases, taken here under the lock, so none can. `threaded`: the stream will
        hold a server thread for its life; `sock`: the socket the hub may take over; `reader`:
        asked again while the stream lasts (`stream_access`); `sub`: the stream's subscription,
        taken before (not `admitted`: not counted until now)."""
        if self.closing:
            raise TooManyStreams("this server is stopping; reconnect", {"retry_after": 1})
        with self._lock:
            mine = self._room_of(user) if user is not None else set()  # the user's caps first
            if threaded and sum(h.threaded for h in mine if h.alive()) >= self.per_user_threads:
                raise TooManyOfYourStreams(
                    f"you already hold {self.per_user_threads} requests that each keep a server "
                    "thread (WebSocket, HTTP/1.0 streams, DIZEST-compatible runs); end one",
                    {"max_streams_per_user": self.per_user_threads, "retry_after": 2},
                )
            threads = sum(s.admitted for group in self._subs.values() for s in group)
            total = threads + self.owned.count()
            if total >= self.max_clients or (threaded and threads >= self.max_threads):
                limit = self.max_threads if total < self.max_clients else self.max_clients
                raise TooManyStreams(
                    f"this server already streams to {limit} clients; retry shortly",
                    {"max_streams": limit, "retry_after": 2},
                )
            lease = Lease(user, sock, threaded=threaded, reader=reader)
            if reader is not None:
                self.access.want()
            if user is not None:
                mine.add(lease)
                self._leases[user] = mine
            if sock is not None:
                self._by_sock[sock] = lease
            if sub is not None:
                sub.admitted = True
            return lease

    def ensure_room(self, user: str) -> None:
        """TooManyOfYourStreams now if `user` may open no other stream (for a caller that must
        not start anything, a run, for a stream that would be refused; `admit` still decides)."""
        with self._lock:
            self._room_of(user)

    def _room_of(self, user: str) -> set[Lease]:
        """`user`'s leases (under the lock), or TooManyOfYourStreams if they hold every place.
        Counted in O(1); only at the cap are the leases of streams that ended looked for."""
        mine = self._leases.get(user, set())
        if len(mine) >= self.per_user:
            mine = {held for held in mine if held.alive()}
            self._leases[user] = mine
            if len(mine) >= self.per_user:
                raise TooManyOfYourStreams(
                    f"you already have {self.per_user} live streams open on this server; "
                    "close one, or retry shortly",
                    {"max_streams_per_user": self.per_user, "retry_after": 2},
                )
        return mine

    def _read_leases(self) -> list[Lease]:
        with self._lock:
            return [held for mine in self._leases.values() for held in mine if held.alive()]

    def revoke(self, lease: Lease) -> None:
        """`lease`'s reader may no longer read its run: its stream ends (`stream_access`)."""
        with self._lock:
            lease.revoked = True
            if lease.stream is not None:
                self.owned.end(lease.stream)

    def release(self, lease: Lease) -> None:
        """The stream's thread is done with it: its place is free, unless the hub owns it (then
        it is free once the owned stream is gone)."""
        with self._lock:
            if lease.sock is not None and self._by_sock.get(lease.sock) is lease:
                del self._by_sock[lease.sock]
            if lease.stream is not None or lease.released:
                return
            lease.released = True
            if lease.user is None:
                return
            mine = self._leases.get(lease.user)
            if mine is not None:
                mine.discard(lease)
                if not mine:
                    del self._leases[lease.user]

    def own(
        self,
        sub: Subscription,
        sock: socket.socket,
        last: str | None,
        runs: RunFeed,
        replay: Sequence[Event] = (),
    ) -> bool:
        """Take `sock` over from `sub`'s thread, which has written every event up to `last`:
        `replay` (the rest of the run's stream, as read after subscribing) and the events queued
        meanwhile go out first, in one send. False if the client was dropped meanwhile or the hub
        is stopping (the thread ends the response itself)."""
        with self._lock:
            if self.closing or sub.dropped or getattr(self._by_sock.get(sock), "revoked", False):
                return False
            self._forget(sub)
            held = sub.take_all()
            handover.claim(sock)
            stream = self.owned.add(sub.run_id, sock, last, runs)
            lease = self._by_sock.pop(sock, None)
            if lease is not None:  # its place is the owned stream's from now on
                lease.stream = stream
            queued = [i for i in held if isinstance(i, Event)]
            self.owned.deliver_each(stream, [*replay, *queued], {})
            if RESYNC in held:
                self.owned.resync([sub.run_id])
            return True

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._forget(sub)

    def _forget(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.run_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.run_id]

    def clients(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subs.values()) + self.owned.count()

    def shutdown(self) -> None:
        """End every stream now (the process is stopping) and refuse new ones."""
        self.closing = True  # first: refused at once, even while the lock is busy
        with self._lock:
            self.owned.end_all()
            self._broadcast(CLOSING)

    def close(self) -> None:
        self.access.stop()
        self._stop.set()
        self.channels.want()  # wakes its thread
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        self.owned.stop()
        if thread is None or not thread.is_alive():
            self.channels.close()

    def _run(self) -> None:
        self.channels.serve(self._stop)

    def _wanted(self) -> set[str]:
        """The runs streamed here (their channels are subscribed), but those flooding (the
        pubsub thread's, as `floods`: they are caught up from their streams meanwhile)."""
        with self._lock:
            wanted = {*self._subs, *self.owned.by_run}
        return wanted.difference(self.floods.until)

    def _subscribed(self, run_id: str | None) -> None:
        """The connection (None), or one run's channel, is subscribed: what was published
        before is in the runs' streams only: their clients catch up."""
        if run_id is None:
            self.ready.set()
        with self._lock:  # one step: a stream handed over meanwhile misses neither
            runs = None if run_id is None else [run_id]
            self.owned.resync(runs)
            self._broadcast(RESYNC, runs)

    def _broadcast(self, item: Any, runs: Iterable[str] | None = None) -> None:
        """A control item (RESYNC, CLOSING) to every queued client, or those of `runs` (hub
        lock held)."""
        for run in list(self._subs) if runs is None else runs:
            group = self._subs.get(run)
            if group is not None:
                self._queue_all(group, [item], skip=resync_pending if item is RESYNC else None)
                if not group:
                    del self._subs[run]

    def _dispatch(self, raw: str) -> None:
        """One message, as if read alone (tests)."""
        self._dispatch_all([(str(json.loads(raw).get("run_id")), raw)])

    def _dispatch_all(self, items: list[tuple[str, str]]) -> None:
        """One read's messages, (run, raw), in Redis's order; a flooding run's are not decoded:
        its streams catch up from its stream instead (`dizest_api.floods`)."""
        now = time.monotonic()
        counts = Counter(run for run, _ in items)
        flooding, ended, started = self.floods.note(counts, now)
        if started or ended:
            self.channels.want()  # their channels unsubscribed, or subscribed again
        by_run: dict[str, list[Event]] = {}
        for run, raw in items:
            if run in flooding:
                continue
            try:
                event = Event.from_dict(json.loads(raw))
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable event on %s: %.200s", self.channel, raw)
                continue
            by_run.setdefault(event.run_id, []).append(event)
        told = self.floods.tell(flooding, now)
        if not (by_run or ended or told):
            return
        with self._lock:
            for run in ended:  # live again once what was skipped is caught up
                self.owned.resync([run])
                self._broadcast(RESYNC, [run])
            self.owned.resync(told)
            self._broadcast(RESYNC, told)
            for run_id, events in by_run.items():
                self.owned.deliver(run_id, events, {})  # frames by id: of one run only
                subs = self._subs.get(run_id)
                if subs:
                    self._queue_all(subs, events)
                    if not subs:
                        self._subs.pop(run_id, None)

    def _queue_all(
        self,
        subs: set[Subscription],
        events: list[Any],
        skip: Callable[[Subscription], bool] | None = None,
    ) -> None:
        slow = []
        for sub in subs:
            if skip is not None and skip(sub):
                continue
            try:
                for event in events:
                    sub.queue.put_nowait(event)
            except queue.Full:  # a slow client: drop it, it resumes with Last-Event-ID
                sub.dropped = True
                slow.append(sub)
        subs.difference_update(slow)


def hub_for(app: Flask) -> EventHub:
    """The app's hub, made on first use."""
    with _HUBS_LOCK:
        hub: EventHub | None = app.extensions.get("dizest.events")
        if hub is None:
            found = app.extensions["dizest"]
            settings = found.settings
            hub = EventHub(
                settings.worker.redis_url,
                found.client.event_channel,
                int(app.config.get("DIZEST_EVENT_QUEUE_SIZE", 1000)),
                settings.max_streams,
                settings.max_stream_threads,
                settings.heartbeat_s,
            )
            app.extensions["dizest.events"] = hub
        return hub


_HUBS_LOCK = threading.Lock()
