"""How long a response may wait for its client to read it (gthread,
`dizest_api.stream_worker`): a client that stops reading must not hold a thread for good.

gunicorn writes an answer with blocking writes on the connection's socket (`sendall`; a file's
bytes with `sendfile`), and a write waits for as long as the client's TCP window stays shut: a
client that asked for a large answer (a run's package, a report, a file) with a small receive
buffer and read none of it held its thread for good, and as many such connections as threads
stopped the API process for everyone. Each connection's socket is a `SendBounded` one: a write
that makes no progress (the socket takes no byte of it: the client read none of what was sent)
for DIZEST_RESPONSE_SEND_TIMEOUT_S raises `ResponseStalled`, and the worker ends the response
there and resets the connection (`idle_conns.Closing.reset`). As nginx's `send_timeout`, it
bounds the pause between two writes, not the whole answer: a slow client that reads gets all of
its download, however long that takes. The default is nginx's, 60 s: far longer than a reading
client's pauses (TCP's own retransmissions back off to seconds), and a client that reads nothing
for a minute is gone or hostile.

The writes stay blocking system calls, the GIL released for all of one (a loop of non-blocking
writes and polls took the GIL back at every wake-up: a 64 MiB file took 5x as long to send with
4 busy threads in the process): what the socket does not take at once is sent with SO_SNDTIMEO
set to a tick, an eighth of the timeout, so that a write returns at least every tick, with what
it sent or with nothing (`Progress`). A write stalls once nothing was sent for the timeout, a
tick later at most; never before.

gunicorn's own writes go through `sendall` and `sendfile` (a non-blocking socket's, as its error
pages', are Python's, never waiting). A WebSocket's go through `WholeSends`: simple-websocket
writes each frame with one blocking `send` and no timeout, ignoring what a partial send left
out, from two threads (the view's, and its Server's ping thread) with no lock; over a
`SendBounded` socket, each frame is now sent whole by `sendall`, one at a time, and a stall
resets the connection (SO_LINGER 0, both directions shut: the ping thread's read ends too)
and makes every later send fail at once (the close frame flask-sock sends after the view). A
handed-over SSE stream's socket is non-blocking, written by the event hub, which ends a stream
whose outbox did not move for two heartbeat periods (`dizest_api.stream_owner`).

With gunicorn's own TLS (a certfile: not under `dizest serve`) the connection is an
`ssl.SSLSocket` made over the descriptor (`TConn.init`; the `SendBounded` is detached), and its
writes (all of them: gunicorn never uses sendfile with TLS) are not bounded here. SO_SNDTIMEO
does not bound them: at the tick's EAGAIN OpenSSL says WANT_WRITE, and a blocking SSLSocket's
write tries again in C, for as long as the client neither reads nor leaves (a 0.25 s tick: the
write still blocked 3 s later, until the client closed). What would: the SSLSocket's own timeout
(`settimeout`: its waits become polls, TimeoutError at the tick), writing one TLS record (16 KiB)
at a time, since a write is all or nothing to Python and OpenSSL takes the same record again
after WANT_WRITE (4 MiB to a client pausing 0.25 s between reads came intact through 257 such
timeouts), in an SSLSocket class that gunicorn's `ssl_context` hook would set as the context's
`sslsocket_class`. Not built: that timeout is the socket object's, so a WebSocket's ping thread,
reading the same object while the view writes, would have its reads time out with it (and end
the socket); such an SSL object is read and written by two threads at once already, which
OpenSSL does not support; and a Python call per 16 KiB record has not been weighed against the
encryption's own cost. TLS belongs to the proxy in front (deploy/nginx.conf), as with
`dizest serve`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

TICKS = 8  # a stalled write is seen within the send timeout and an eighth of it
NO_TIMEOUT = struct.pack("ll", 0, 0)
RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, for 0 s: close() sends a reset
STALL_LOG = "%s %s: %s; the connection is reset"  # client, method, why: never the path (secret)


class ResponseStalled(OSError):
    """The client took none of its answer for the send timeout."""

    def __init__(self, seconds: float) -> None:
        message = f"the client read nothing of its answer for {seconds:g} s"
        super().__init__(errno.ETIMEDOUT, message)
        self.seconds = seconds


class Progress:
    """Blocking writes that return within a tick (SO_SNDTIMEO), and the time of the last one
    that sent something."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.last = time.monotonic()

    def sent(self, write: Callable[..., int], *args: Any) -> int:
        """What `write(*args)` sent, tried again each tick it sends nothing; ResponseStalled
        once nothing was sent for `seconds`."""
        while True:
            try:
                n = write(*args)
            except BlockingIOError:  # a tick, and nothing sent
                if time.monotonic() - self.last >= self.seconds:
                    raise ResponseStalled(self.seconds) from None
                continue
            self.last = time.monotonic()
            return n


class SendBounded(socket.socket):
    """A connection's socket whose blocking writes stall after `send_s` without progress."""

    __slots__ = ("send_s", "tick")

    def __init__(self, fileno: int, send_s: float, kind: tuple[int, int, int]) -> None:
        """Connection `fileno`, of `kind` (its family, type and protocol: its listener's)."""
        super().__init__(*kind, fileno)
        self.send_s = send_s
        tick_us = max(1, round(send_s / TICKS * 1e6))
        self.tick = struct.pack("ll", *divmod(tick_us, 1_000_000))  # a struct timeval

    @classmethod
    def accept_from(
        cls, listener: Any, send_s: float, kind: tuple[int, int, int]
    ) -> tuple[SendBounded, Any]:
        """A connection of `listener` (a socket of `kind`, or gunicorn's wrapper of one), and
        its address: one socket object made over the descriptor accepted, not Python's first
        and then this one (each a getsockname of it, the first's family and type as enums)."""
        fileno, address = listener._accept()
        return cls(fileno, send_s, kind), address

    def sendall(self, data: Any, flags: int = 0, /) -> None:
        """Python's, a blocking send at a time, ResponseStalled once none sent a byte for
        send_s."""
        if self.gettimeout() is not None:  # non-blocking (gunicorn's write_nonblock): as ever
            super().sendall(data, flags)
            return
        left = memoryview(data).cast("B")
        with contextlib.suppress(BlockingIOError):  # most answers fit at once: one system call
            left = left[self.send(left, flags | socket.MSG_DONTWAIT) :]
        if left:
            with self._ticking() as progress:
                while left:
                    left = left[progress.sent(self.send, left, flags) :]

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Python's, with os.sendfile's blocking calls bounded as `sendall`'s."""
        if self.gettimeout() is not None:
            return super().sendfile(file, offset, count)
        fileno = file.fileno()  # a regular file, as Python's own sendfile wants
        if count is None:
            count = os.fstat(fileno).st_size - offset
        done = 0
        with self._ticking() as progress:
            while done < count:
                n = progress.sent(os.sendfile, self.fileno(), fileno, offset + done, count - done)
                if not n:  # the file ended first
                    break
                done += n
        file.seek(offset + done)
        return done

    @contextlib.contextmanager
    def _ticking(self) -> Iterator[Progress]:
        self.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, self.tick)
        try:
            yield Progress(self.send_s)
        finally:
            self.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, NO_TIMEOUT)


class WholeSends:
    """A WebSocket's socket, as simple-websocket writes to it (`dizest_api.routes.sockets`): its
    `send` sends all of its bytes (the wrapped socket's `sendall`: bounded if it is a
    `SendBounded`), one frame at a time (the view's thread and the Server's ping thread both
    write). Once a write stalled, the connection is reset (its reads end too: the ping thread's)
    and every later send raises at once, so that nothing waits another timeout. It is not closed
    here: all else is the wrapped socket's."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.stalled: ResponseStalled | None = None  # the first stall, if any
        self.failed: OSError | None = None  # the first write the connection refused, if any
        self._lock = threading.Lock()

    def send(self, data: bytes, flags: int = 0, /) -> int:
        with self._lock:
            if self.stalled is not None:
                raise ResponseStalled(self.stalled.seconds)
            try:
                self.sock.sendall(data, flags)
            except ResponseStalled as exc:
                self.stalled = self.failed = exc
                with contextlib.suppress(OSError):
                    self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
                    self.sock.shutdown(socket.SHUT_RDWR)
                raise
            except OSError as exc:  # the client left: reset, closed, gone
                self.failed = self.failed or exc
                raise
        return len(data)

    def close(self) -> None:
        """Nothing: the connection is its server's to close, after the request (gunicorn's
        worker: `idle_conns.Closing`, with the reset's SO_LINGER 0 if it stalled). The ping
        thread closed it as it ended, while the worker's poller might hold it: a connection
        accepted next with the same descriptor number crashed the worker (the poller's
        KeyError: already registered)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)
