"""The event hub behind live run streams (`dizest_api.streaming` writes them to clients).

One `EventHub` per API process (per app) holds ONE Redis pubsub subscription to the events
channel (`{prefix}:events`, every event of every run), read by a background thread started on
first use, which fans events out to per-client bounded queues. A client whose queue overflows is
dropped (its stream ends; it resumes with Last-Event-ID / `?after=`). Whenever the hub
(re)subscribes it queues RESYNC to every client, which then catches up from the run's stream.

Direct writes (SSE under gunicorn, HTTP/1.1, a plain socket): once a client has caught up, its
request thread lends its socket to the hub (`adopt`) and sleeps; the hub thread then writes each
live event's chunk straight to every adopted socket of the run (a non-blocking send under the hub
lock), instead of waking one thread per client per event (CPU per delivery on this machine: 3.5
us against 47 us). Anything unusual hands the socket back with what is left to send (`Handback`):
a send that would block (a slow client, then served by its thread and bounded queue), a closed
socket, the final event. The thread also takes it back (`release`) before writing anything itself:
a heartbeat and cheap catch-up every idle period, RESYNC, CLOSING. Only one side ever writes.

Each stream holds one server thread for its life, so a hub takes at most `max_clients` of them
(the rest of the threads stay free for ordinary requests; one over answers 503). `shutdown()`
(on SIGTERM, see serve.py) ends every stream at once, cleanly: clients resume with Last-Event-ID
on another process instead of being cut when the graceful timeout runs out.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import threading
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask

from dizest_api.errors import ApiError
from dizest_core.events import Event

log = logging.getLogger("dizest.api.streaming")  # the name the logs have always used

RESYNC: Any = object()  # queued to every client after the hub (re)subscribed: catch up
CLOSING: Any = object()  # queued to every client when the process stops: end the stream


class TooManyStreams(ApiError):
    status, code = 503, "too_many_streams"


def stream_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(eq=False)
class Subscription:
    run_id: str
    queue: queue.Queue[Any]
    dropped: bool = False
    sock: socket.socket | None = None  # while adopted: the hub writes live events to it
    last: str | None = None  # while adopted: the last event id written to it


@dataclass(frozen=True)
class Handback:
    """The hub gives an adopted socket back: `last` is the last event written, `rest` the bytes
    of a chunk it could only partly send (to send raw, first); `done`: final event sent, or the
    client is gone."""

    last: str | None
    rest: bytes = b""
    done: bool = False


def sse_frame(event: Event) -> bytes:
    return f"id: {event.id}\nevent: {event.type}\ndata: {event.wire}\n\n".encode()


def chunk(data: bytes) -> bytes:
    """`data` as one HTTP/1.1 chunk, exactly as gunicorn frames a chunked response's writes."""
    return b"%X\r\n%s\r\n" % (len(data), data)


class EventHub:
    """One pubsub subscription fanned out to per-client queues."""

    def __init__(
        self, redis_url: str, channel: str, queue_size: int = 1000, max_clients: int = 1000
    ) -> None:
        self.redis_url = redis_url
        self.channel = channel
        self.queue_size = queue_size
        self.max_clients = max_clients
        self.closing = False
        self._subs: dict[str, set[Subscription]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.ready = threading.Event()

    def subscribe(self, run_id: str, wait_s: float = 5.0) -> Subscription:
        sub = Subscription(run_id, queue.Queue(self.queue_size))
        with self._lock:
            self._subs.setdefault(run_id, set()).add(sub)
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="dizest-event-hub", daemon=True
                )
                self._thread.start()
        # Not fatal if slow: the client is sent RESYNC once the subscription is confirmed.
        self.ready.wait(wait_s)
        return sub

    def admit(self) -> None:
        """Raise TooManyStreams unless one more stream may start (checked before the response
        starts, so the refusal is a real 503; a race may let a few more in)."""
        if self.closing:
            raise TooManyStreams("this server is stopping; reconnect", {"retry_after": 1})
        if self.clients() >= self.max_clients:
            raise TooManyStreams(
                f"this server already streams to {self.max_clients} clients; retry shortly",
                {"max_streams": self.max_clients, "retry_after": 2},
            )

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.run_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.run_id]

    def clients(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subs.values())

    def shutdown(self) -> None:
        """End every stream now (the process is stopping) and refuse new ones."""
        with self._lock:
            self.closing = True
        self._broadcast(CLOSING)

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            client = redis.Redis.from_url(self.redis_url, decode_responses=True)
            pubsub = client.pubsub()
            try:
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.ready.set()
                        self._broadcast(RESYNC)
                    elif message["type"] == "message":
                        self._dispatch(message["data"])
            except Exception:  # Redis went away: resubscribe, clients catch up on RESYNC
                log.warning("event hub lost its subscription; retrying", exc_info=True)
                self.ready.clear()
                self._stop.wait(0.5)
            finally:
                with contextlib.suppress(Exception):  # closing a broken connection
                    pubsub.close()
                    client.close()

    def _broadcast(self, item: Any) -> None:
        with self._lock:
            subs = [s for group in self._subs.values() for s in group]
        for sub in subs:
            self._offer(sub, item)

    def _dispatch(self, raw: str) -> None:
        with self._lock:
            if not self._subs:
                return
        try:
            event = Event.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable event on %s: %.200s", self.channel, raw)
            return
        # Writes and queueing both under the lock: a client adopted or released between the two
        # would otherwise get a later event on its socket before an earlier one in its queue.
        with self._lock:
            subs = self._subs.get(event.run_id, set())
            data, slow = None, []
            for sub in subs:
                if sub.sock is not None:
                    data = data or chunk(sse_frame(event))
                    self._write(sub, event, data)
                    continue
                try:
                    sub.queue.put_nowait(event)
                except queue.Full:  # a slow client: drop it, it resumes with Last-Event-ID
                    sub.dropped = True
                    slow.append(sub)
            subs.difference_update(slow)
            if not subs:
                self._subs.pop(event.run_id, None)

    def _write(self, sub: Subscription, event: Event, data: bytes) -> None:
        """One live event to an adopted socket (hub lock held); hand it back when unusual."""
        assert sub.sock is not None
        if sub.last is not None and stream_key(event.id) <= stream_key(sub.last):
            return
        try:
            sent = sub.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:  # the client is gone
            self._hand_back(sub, Handback(sub.last, done=True))
            return
        if sent < len(data):  # a slow client: its own thread sends the rest and takes over
            self._hand_back(sub, Handback(event.id, data[sent:], done=event.final))
            return
        sub.last = event.id
        if event.final:
            self._hand_back(sub, Handback(event.id, done=True))

    def _hand_back(self, sub: Subscription, handback: Handback) -> None:
        assert sub.sock is not None
        sub.sock.setblocking(True)
        sub.sock, sub.last = None, None
        sub.queue.put_nowait(handback)  # holds only control items while adopted: never full

    def adopt(self, sub: Subscription, sock: socket.socket, last: str | None) -> bool:
        """Lend `sock` to the hub for live events after `last`, first writing the events queued
        meanwhile. Not when a control item waits (the thread acts on it first) or the hub is
        closing; if a write hands the socket back, the rest stays queued after the Handback.
        False if refused: retrying before the thread takes that item moves the whole backlog
        out and back under the lock at every event, until the backlog overflows (a drop)."""
        with self._lock:
            if self.closing or sub.dropped:
                return False
            held = []
            while True:
                try:
                    held.append(sub.queue.get_nowait())
                except queue.Empty:
                    break
            events = [i for i in held if isinstance(i, Event)]
            if len(events) < len(held):  # a control item (RESYNC, CLOSING): the thread acts
                for item in held:
                    sub.queue.put_nowait(item)
                return False
            sock.setblocking(False)
            sub.sock, sub.last = sock, last
            for event in events:
                if sub.sock is None:  # handed back meanwhile: the thread sends the rest
                    sub.queue.put_nowait(event)
                else:
                    self._write(sub, event, chunk(sse_frame(event)))
            return True

    def release(self, sub: Subscription, last: str | None) -> str | None:
        """Take an adopted socket back (blocking again); the last event id the client has."""
        with self._lock:
            if sub.sock is None:
                return last
            sub.sock.setblocking(True)
            written, sub.sock, sub.last = sub.last, None, None
            return written

    def _offer(self, sub: Subscription, item: Any) -> None:
        """A control item (RESYNC, CLOSING) to one client."""
        try:
            sub.queue.put_nowait(item)
        except queue.Full:  # a slow client: drop it, it resumes with Last-Event-ID
            sub.dropped = True
            self.unsubscribe(sub)


def hub_for(app: Flask) -> EventHub:
    """The app's hub, made on first use."""
    with _HUBS_LOCK:
        hub: EventHub | None = app.extensions.get("dizest.events")
        if hub is None:
            found = app.extensions["dizest"]
            worker = found.settings.worker
            hub = EventHub(
                worker.redis_url,
                found.client.event_channel,
                int(app.config.get("DIZEST_EVENT_QUEUE_SIZE", 1000)),
                found.settings.max_streams,
            )
            app.extensions["dizest.events"] = hub
        return hub


_HUBS_LOCK = threading.Lock()
