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

Only gunicorn's own writes go through `sendall` and `sendfile` (a non-blocking socket's, as its
error pages', are Python's, never waiting): a WebSocket writes with `send` (simple-websocket),
and a handed-over SSE stream's socket is non-blocking, written by the event hub, which ends a
stream whose outbox did not move for two heartbeat periods (`dizest_api.stream_owner`). With
gunicorn's own TLS (not under `dizest serve`) the socket is gunicorn's `SSLSocket`: its writes
are not bounded here.
"""

from __future__ import annotations

import errno
import select
import socket
from typing import Any


class ResponseStalled(OSError):
    """The client took none of its answer for the send timeout."""

    def __init__(self, seconds: float) -> None:
        message = f"the client read nothing of its answer for {seconds:g} s"
        super().__init__(errno.ETIMEDOUT, message)


class SendBounded(socket.socket):
    """A connection's socket whose blocking writes wait `send_s` at most for room each time."""

    __slots__ = ("send_s",)

    def __init__(self, accepted: socket.socket, send_s: float) -> None:
        super().__init__(accepted.family, accepted.type, accepted.proto, accepted.detach())
        self.send_s = send_s

    def sendall(self, data: Any, flags: int = 0, /) -> None:
        """All of `data`, waiting `send_s` at most each time the socket has no room."""
        if self.gettimeout() is not None:  # non-blocking (gunicorn's write_nonblock): as ever
            super().sendall(data, flags)
            return
        left = memoryview(data).cast("B")
        while left:
            try:
                left = left[self.send(left, flags | socket.MSG_DONTWAIT) :]
            except BlockingIOError:
                if not writable(self, self.send_s):
                    raise ResponseStalled(self.send_s) from None

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Python's, waiting `send_s` at most each time the socket has no room."""
        if self.gettimeout() is not None:
            return super().sendfile(file, offset, count)
        self.settimeout(self.send_s)  # for this call only: reads wait by their own deadlines
        try:
            return super().sendfile(file, offset, count)
        except TimeoutError:
            raise ResponseStalled(self.send_s) from None
        finally:
            self.settimeout(None)


def writable(sock: socket.socket, seconds: float) -> bool:
    poll = select.poll()
    poll.register(sock, select.POLLOUT)
    return bool(poll.poll(seconds * 1000))
