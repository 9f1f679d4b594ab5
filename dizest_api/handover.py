"""A stream's connection handed from the WSGI server's request thread to the event hub.

Under `dizest serve` (gunicorn, `dizest_api.stream_worker.StreamWorker`), an SSE stream holds a
server thread only while it replays the run's stream: then `follow` hands the client's socket to
the hub (`claim`) and ends the response iterator with `HandedOver`. The worker sees the claim
(`claimed`), forgets the connection without writing or closing anything, and frees the thread.

`enable()` is called by that worker in its process; without it (the Werkzeug dev server, another
gunicorn worker class), nothing is ever handed over and every stream keeps its thread.

The gate: at most `GATE` threads at a time set up a stream (`gate`, around the whole request,
authentication included); the others wait on it, off the GIL. Many threads each doing a few Redis
round trips made the GIL change hands at every one of them: with 128 threads setting streams up
at once, a connect cost twice the CPU it does one or two at a time. A thread that keeps its
stream (`leave_gate`: no handover, or a replay too long for one batch) leaves the gate before it
writes any event, so a client that does not read cannot hold it.
"""

from __future__ import annotations

import errno
import queue
import socket
import threading

GATE = 2  # threads setting a stream up at once: two overlap one's Redis round trips

_state = {"enabled": False}
_claimed: set[socket.socket] = set()
_lock = threading.Lock()
_inside = threading.local()


class HandedOver(OSError):
    """Ends a response iterator whose socket the hub now owns: gunicorn takes an ENOTCONN for a
    client gone (logged at debug level) and writes nothing more."""

    def __init__(self) -> None:
        super().__init__(errno.ENOTCONN, "the stream's socket was handed to the event hub")


def enable() -> None:
    """This process's server lets a stream take its socket over (StreamWorker calls it)."""
    _state["enabled"] = True


def enabled() -> bool:
    return _state["enabled"]


def claim(sock: socket.socket) -> None:
    """The hub owns `sock` from now on: the server must neither write to it nor close it."""
    with _lock:
        _claimed.add(sock)


def claimed(sock: socket.socket) -> bool:
    """Whether `sock` was handed over (asked once, by the server, when the request ends)."""
    with _lock:
        if sock in _claimed:
            _claimed.discard(sock)
            return True
        return False


class Gate:
    """At most `places` threads inside at once: `with gate:` around a request that may become a
    handed-over stream (the server's call). Its free places are tokens in a queue of C, where a
    semaphore's are a Condition of Python (~20 Python calls a stream set up, more if it waited)."""

    def __init__(self, places: int) -> None:
        self._free: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(places):
            self._free.put(None)

    def __enter__(self) -> None:
        self._free.get()
        _inside.held = True

    def __exit__(self, *_exc: object) -> None:
        leave_gate()

    def leave(self) -> None:
        self._free.put(None)


gate = Gate(GATE)


def leave_gate() -> None:
    """The calling thread leaves the gate if it holds it (a stream keeping its thread calls this
    before writing any event; harmless elsewhere)."""
    if getattr(_inside, "held", False):
        _inside.held = False
        gate.leave()
