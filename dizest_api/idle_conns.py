"""Connections the worker's main loop holds without a thread (gthread,
`dizest_api.stream_worker`): each is registered in the loop's poller, with a deadline that
`expire` (called at every turn of the loop, so at least once a second) holds it to.

- `Heads`: connections whose request head (or a small body with it) is on its way
  (`dizest_api.request_reads`). What comes is read as it comes, without blocking; the
  connection goes to a thread once the request can be parsed without waiting; past its
  deadline its client is answered 408 and it closes (a head too large: 431, at once). When
  the worker stops, those still waiting get STOP_LINGER_S more, then close.
- `Closing`: connections being closed as gunicorn closes them (RFC 9112 section 9.6: the write
  side shut at once; what the client still sends read and dropped, LINGER_BYTES at most, so
  that the kernel does not reset the connection under the answer's last bytes), until the
  client closes or LINGER_S passed. gunicorn did that in the main loop's own thread, blocking it
  LINGER_S for each client that neither read nor closed: a dozen of them held every accept and
  every answer of the process for 24 s. A connection whose client read none of its answer
  for the send timeout (`dizest_api.response_writes`) is reset instead, at once.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from dizest_api.request_reads import Conn
from dizest_api.response_writes import RESET

STOP_LINGER_S = 2.0  # as gthread's STOP_KEEPALIVE_LINGER for kept-alive connections
LINGER_S = 2.0  # gunicorn's close_graceful
LINGER_BYTES = 64 * 1024


class Heads:
    def __init__(
        self,
        poller: selectors.BaseSelector,
        dispatch: Callable[[Conn], None],
        close: Callable[[Conn], None],
    ) -> None:
        self.poller = poller
        self.dispatch = dispatch  # to a thread
        self.close = close
        self.waiting: dict[Conn, None] = {}  # in the order they came
        self.stop_by: float | None = None

    def wait(self, conn: Conn) -> None:
        self.waiting[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, conn))

    def _readable(self, conn: Conn, _sock: Any) -> None:
        if conn.gather():
            self._leave(conn)
            (self.close if conn.refused else self.dispatch)(conn)

    def _leave(self, conn: Conn) -> None:
        del self.waiting[conn]
        self.poller.unregister(conn.sock)

    def expire(self, now: float, alive: bool) -> None:
        if not alive and self.stop_by is None:
            self.stop_by = now + STOP_LINGER_S
        stopped = self.stop_by is not None and self.stop_by <= now
        for conn in [c for c in self.waiting if stopped or (c.head_by or 0.0) <= now]:
            self._leave(conn)
            if not stopped:
                conn.answer_late()
            self.close(conn)


class Closing:
    def __init__(self, poller: selectors.BaseSelector, closed: Callable[[], None]) -> None:
        self.poller = poller
        self.closed = closed  # called once a connection is closed
        self.lingering: dict[socket.socket, list[float]] = {}  # [deadline, bytes dropped]

    def close(self, conn: Conn) -> None:
        sock = conn.sock
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the client is gone
            self._end(sock)
            return
        self.lingering[sock] = [time.monotonic() + LINGER_S, 0]
        self.poller.register(sock, selectors.EVENT_READ, self._readable)

    def reset(self, conn: Conn) -> None:
        """Closes at once with a reset (nginx's `reset_timedout_connection`): the kernel drops
        the answer's bytes still queued to a client that does not read (megabytes, maybe),
        rather than keep them, and keep trying to send them, for minutes after the close."""
        with contextlib.suppress(OSError):
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
        self._end(conn.sock)

    def _readable(self, sock: socket.socket) -> None:
        entry = self.lingering[sock]
        while entry[1] < LINGER_BYTES:
            try:
                data = sock.recv(LINGER_BYTES, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                break
            entry[1] += len(data)
        self._end(sock)

    def _end(self, sock: socket.socket) -> None:
        if self.lingering.pop(sock, None) is not None:
            self.poller.unregister(sock)
        with contextlib.suppress(OSError):
            sock.close()
        self.closed()

    def expire(self, now: float) -> None:
        for sock in [s for s, (by, _) in self.lingering.items() if by <= now]:
            self._end(sock)
