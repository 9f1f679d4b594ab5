"""A stream's place among a process's and its user's streams (`EventHub.admit`), and the
errors of a stream refused for want of one; a queued client's subscription and the control
items the hub queues to it.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dizest_api.errors import ApiError
from dizest_api.stream_access import Reader
from dizest_api.stream_owner import Stream

if TYPE_CHECKING:
    from dizest_api.event_hub import EventHub


RESYNC: Any = object()  # queued to every client after the hub (re)subscribed: catch up
CLOSING: Any = object()  # queued to every client when the process stops: end the stream


class TooManyStreams(ApiError):
    status, code = 503, "too_many_streams"


class TooManyOfYourStreams(ApiError):
    status, code = 429, "too_many_streams"


def streams_per_user(max_clients: int) -> int:
    """One user's share of a process's streams: a tenth, at least 8."""
    return max(8, max_clients // 10)


@dataclass(eq=False)
class Subscription:
    run_id: str
    size: int  # its queue's bound
    dropped: bool = False
    admitted: bool = True  # False: taken before its stream's admission, not counted by `admit`
    _queue: queue.Queue[Any] | None = field(default=None, repr=False)

    @property
    def queue(self) -> queue.Queue[Any]:
        """Its client's queue, made at first use: a stream the hub takes over at once (an SSE
        connect) mostly needs none, and a queue is a lock and three conditions (~7 us)."""
        made = self._queue
        if made is None:
            with _MAKING:
                made = self._queue
                if made is None:
                    made = self._queue = queue.Queue(self.size)
        return made

    def take_all(self) -> list[Any]:
        """What its queue holds, taken out (none, if it has no queue yet)."""
        taken: list[Any] = []
        if self._queue is not None:
            with contextlib.suppress(queue.Empty):
                while True:
                    taken.append(self._queue.get_nowait())
        return taken


_MAKING = threading.Lock()  # a subscription's queue is made once


def resync_pending(sub: Subscription) -> bool:
    """Whether `sub`'s queue ends with a RESYNC its client has not read: another one now would
    catch up nothing more (a catch-up reads the run's stream when its RESYNC is read, so after
    whatever made this one), and would take a place in a queue sized for events."""
    made = sub._queue
    if made is None:
        return False
    with made.mutex:
        return bool(made.queue) and made.queue[-1] is RESYNC


@dataclass(eq=False)
class Lease:
    """One stream's place among its user's (`EventHub.admit`)."""

    user: str | None
    sock: socket.socket | None = None  # the socket the hub may take over (`own`)
    threaded: bool = False  # the stream holds a server thread for its life
    stream: Stream | None = None  # the owned stream, once it has been
    released: bool = False
    reader: Reader | None = None  # asked again while the stream lasts (`stream_access`)
    revoked: bool = False  # the reader was refused: the stream ends

    def alive(self) -> bool:
        return not self.released and (self.stream is None or not self.stream.gone)


T = TypeVar("T")


class Held(Iterator[T], Generic[T]):
    """A stream's events holding its lease: closing them (the stream ended, was refused or
    never started) gives the place back, unless the hub owns the stream by then."""

    def __init__(
        self, hub: EventHub, lease: Lease, events: Iterator[T], sub: Subscription | None = None
    ) -> None:
        self.hub, self.lease, self._events = hub, lease, events
        self.sub = sub  # taken before `events` began (they may never): given back at close too
        self._closed = False

    def __iter__(self) -> Held[T]:
        return self

    def __next__(self) -> T:
        if self.lease.revoked:  # its reader may no longer read the run (`stream_access`)
            raise StopIteration
        return next(self._events)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._events, "close", None)
            if close is not None:
                close()
        finally:
            if self.sub is not None:
                self.hub.unsubscribe(self.sub)
            self.hub.release(self.lease)
