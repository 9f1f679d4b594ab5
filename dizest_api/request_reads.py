"""How long a client may take to send its request to gunicorn's threads (gthread,
`dizest_api.stream_worker`): a slow or silent client must not hold a thread, nor the connection
for as long as it likes.

- The head (request line and headers) must be whole within DIZEST_REQUEST_HEAD_TIMEOUT_S of the
  connection's accept (for a kept-alive connection's next request: of its first byte, which
  woke the worker), however steadily it trickles in. No thread waits for it meanwhile:
  `Conn.gather` reads what has come without blocking, first in a thread (a new connection's
  head has usually come whole with it), then in the worker's main loop as more arrives
  (`dizest_api.idle_conns`), and a thread takes the connection only once it can parse the
  head without waiting. Past the deadline the client is answered 408 and the connection closes.
- A head is MAX_HEAD_BYTES at most, its blank line included (nginx's default
  `large_client_header_buffers 4 8k` allows as much): once that much has come without its end,
  the client is answered 431 `request_header_too_large` and the connection closes, no thread
  involved. gunicorn's own limits (100 fields of 8190 bytes) let a head of 800 KiB go on to a
  thread, whose parser waited for the rest of it until the head's deadline.
- The body: a body of known length up to BODY_BUFFER is gathered with its head the same way
  (`small_body`), each of its reads given DIZEST_REQUEST_BODY_TIMEOUT_S. A larger (or chunked)
  one is read by a thread, each read waiting at most that long for a byte (nginx's
  `client_body_timeout`). Either must also come, after its first DIZEST_REQUEST_BODY_TIMEOUT_S,
  at DIZEST_REQUEST_BODY_MIN_RATE bytes a second on average (Apache's mod_reqtimeout MinRate):
  its next byte is due by its start + the timeout + what came / the rate, if that is sooner
  (`Conn.body_due`; for a body read by a thread, its start is its first read). A steady upload
  goes on however long it takes; one that stops, or trickles a byte every 59 s, raises
  `ClientTooSlow`, answered 408, and the connection closes (a trickle held its thread, or its
  connection, for as long as its client liked: a 10 MiB body a byte a minute, 19 years).
- After the answer, what is left of a body the application did not read is dropped as far as
  it has come, never waited for: the connection closes if more is due (gunicorn waited 5 s for
  it, in the thread, to keep the connection alive).
- The response is not bounded here: streams, downloads and long waits write as long as their
  client reads (`dizest_api.response_writes`), and a WebSocket reads its socket itself.

Only plain HTTP/1 heads are gathered without a thread. With gunicorn's own TLS (or HTTP/2 prior
knowledge; neither is on under `dizest serve`) a thread reads the head as gunicorn does, by the
same deadline and gunicorn's limits. A client that sends a large body at the minimum rate keeps
its thread as long as the body lasts; such a body is read only after authentication, in one of
its user's body slots (DIZEST_USER_BODIES, `dizest_api.body_slots`), so one user's bodies hold
that many threads at most. Only a login's is read before authentication, and it must be small
enough to come whole first (`routes.accounts.LOGIN_BODY_BYTES`).
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from gunicorn import http, util
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn

from dizest_api.body_slots import BODY_BUFFER
from dizest_api.errors import ClientTooSlow, error_body

HEAD_END = b"\r\n\r\n"
MAX_HEAD_BYTES = 32 * 1024  # of a request's head, its blank line included; more: 431
CR = 0x0D
# the fields that say whether a body can be gathered with its head (`small_body`)
FRAMING = re.compile(rb"\r\n(content-length|transfer-encoding|expect)[ \t]*:([^\r\n]*)", re.I)


@dataclass(frozen=True)
class ReadLimits:
    """A worker's bounds on its clients' requests, worked out once (not per connection)."""

    head_s: float
    body_s: float
    body_rate: float = 0.0  # bytes a second a body comes at, after its first body_s (0: any)
    line_limit: int = 0  # gunicorn's limit_request_line (0: none)
    gather: bool = True  # plain HTTP/1: heads are gathered without a thread

    @classmethod
    def of(cls, app: Any, cfg: Any) -> ReadLimits:
        """The limits of the API's settings (`app`: the process's Flask app) under gunicorn's
        `cfg` (with TLS, or HTTP/2 with prior knowledge, a thread reads each head)."""
        settings = app.extensions["dizest"].settings
        h2c = getattr(cfg, "http2_cleartext", "off") in ("prior-knowledge", "both")
        return cls(
            settings.request_head_timeout_s,
            settings.request_body_timeout_s,
            settings.request_body_min_rate,
            int(cfg.limit_request_line),
            not cfg.is_ssl and not h2c,
        )


CODES = {431: "request_header_too_large"}  # else the reason's words: "request_timeout"


def json_error(sock: Any, status: int, reason: str, message: str) -> None:
    """gunicorn's own answer to a request it cannot parse (a request line over its limit, a
    control character in a header), in the API's JSON shape rather than its HTML page:
    gunicorn has no hook for that body, so the worker process sets this as `write_error`."""
    code = CODES.get(status) or reason.lower().replace(" ", "_")
    body = json.dumps(error_body(code, message or reason)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def answer_now(sock: Any, status: int, reason: str, message: str) -> None:
    """An answer before the connection closes, if the socket takes it at once."""
    with contextlib.suppress(OSError):
        json_error(sock, status, reason, message)


def head_ready(data: bytearray, start: int, line_limit: int) -> bool:
    """Whether a thread may parse the head `data` begins (its bytes from `start` not looked at
    yet) without waiting for more: it is whole; or gunicorn's parser refuses it already (a
    bare LF, a request line over its limit); or it is MAX_HEAD_BYTES long (`head_too_large`)."""
    if len(data) >= MAX_HEAD_BYTES or data.find(HEAD_END, max(0, start - 3)) >= 0:
        return True
    lf = data.find(b"\n", start)
    while lf >= 0:
        if lf == 0 or data[lf - 1] != CR:
            return True
        lf = data.find(b"\n", lf + 1)
    return 0 < line_limit < len(data) - 2 and b"\n" not in data


def head_too_large(data: bytearray) -> bool:
    """Whether the head `data` begins does not end within MAX_HEAD_BYTES."""
    return len(data) >= MAX_HEAD_BYTES and data.find(HEAD_END, 0, MAX_HEAD_BYTES) < 0


def small_body(data: bytearray, end: int) -> int:
    """How many body bytes to gather with the head `data` holds up to `end` (its request line
    and fields): its Content-Length when that is its only framing, it expects nothing first
    (100-continue) and it is at most BODY_BUFFER; else none (a thread reads the body, chunked
    or large)."""
    fields = FRAMING.findall(data, 0, end)
    if len(fields) != 1 or fields[0][0].lower() != b"content-length":
        return 0
    value = fields[0][1].strip(b" \t")
    return int(value) if value.isdigit() and int(value) <= BODY_BUFFER else 0


def wait_readable(sock: socket.socket, seconds: float) -> bool:
    poll = select.poll()
    poll.register(sock, select.POLLIN)
    return bool(poll.poll(seconds * 1000))


class Conn(TConn):  # type: ignore[misc]
    """gthread's connection, with the deadline of what its client is sending."""

    initialized: bool  # gthread's: its parser is made

    def __init__(self, cfg: Any, sock: Any, client: Any, server: Any, limits: ReadLimits) -> None:
        super().__init__(cfg, sock, client, server)
        self.limits = limits
        self.head_by: float | None = time.monotonic() + limits.head_s  # None: a body's turn
        self.req: Any = None  # the request whose body is being read
        self.body_start: float | None = None  # its body's first read (`body_due`)
        self.body_base = self.body_sent = 0  # bytes read of the connection: then, and by now
        self.by_rate = False  # whether the last deadline `body_due` set was the rate's
        self.dropping = False  # what is left of the body after the answer: never waited for
        self.gathers = limits.gather
        self.refused = False  # its head was too large: answered 431, to be closed

    def init(self) -> None:
        if self.initialized:
            return
        if self.gathers:  # plain HTTP/1: gthread's init is the parser, and a blocking mode that
            # `gather` does not need and gthread's `handle` sets again before it reads: one
            # system call (and a release of the GIL) less a connection
            self.initialized = True
            self.parser = http.get_parser(self.cfg, self.sock, self.client)
        else:
            super().init()
        if not self.is_http2:
            self.parser.unreader = TimedUnreader(self, self.parser.unreader)

    def next_head(self) -> None:
        """A thread takes the connection for a request: after a request whose body was read
        (kept alive), the next head's deadline starts now."""
        if self.head_by is None:
            self.head_by = time.monotonic() + self.limits.head_s
            self.req = None

    def reading_body(self, req: Any) -> None:
        """`req`'s head was parsed: reads wait for its body now (its pace from the first)."""
        self.head_by, self.req, self.body_start = None, req, None

    def body_from(self, sent: int) -> None:
        """The body's pace counts from now, `sent` bytes of the connection read so far."""
        self.body_start, self.body_base, self.body_sent = time.monotonic(), sent, sent

    def body_due(self) -> float:
        """When the body's next bytes are due: body_s from now, or sooner by its minimum rate
        (its start, then body_s, then a second for each body_rate bytes that came)."""
        limits, start = self.limits, self.body_start
        by = time.monotonic() + limits.body_s
        self.by_rate = False
        if limits.body_rate and start is not None:
            owed = start + limits.body_s + (self.body_sent - self.body_base) / limits.body_rate
            if owed < by:
                by, self.by_rate = owed, True
        return by

    def body_late(self) -> str:
        """Why a body's deadline passed."""
        if self.by_rate:
            return f"the request's body came slower than {self.limits.body_rate:g} bytes a second"
        return f"the request's body paused for {self.limits.body_s:g} s"

    def gather(self) -> bool:
        """Reads what the client has sent, never waiting (the main loop calls it too); whether
        that is done: a thread may take the request now, its head and a small body being whole
        (or the client closed or failed: the parser meets the end or the error), or the head
        was too large (`refused`: answered, the connection is to close)."""
        self.init()  # for a plain connection, a parser: no read
        return bool(self.parser.unreader.gather())

    def answer_late(self) -> None:
        """A 408 for a request past its deadline before a thread could parse it: said of its
        head, or of a small body being gathered with it."""
        if getattr(self.parser.unreader, "wanted", None) is not None:
            message = self.body_late()
        else:
            message = f"the request's head did not arrive within {self.limits.head_s:g} s"
        answer_now(self.sock, 408, "Request Timeout", message)

    def refuse_head(self) -> None:
        self.refused = True
        message = f"a request's head (request line and fields) is at most {MAX_HEAD_BYTES} bytes"
        answer_now(self.sock, 431, "Request Header Fields Too Large", message)


class TimedUnreader(SocketUnreader):  # type: ignore[misc]
    """The parser's reads of `conn`'s socket, each by the deadline of what is being read."""

    def __init__(self, conn: Conn, before: SocketUnreader) -> None:
        super().__init__(before.sock, before.mxchunk)
        self.buf = before.buf
        self.conn = conn
        self.gathered = bytearray()  # of the request a thread has not taken yet
        self.scanned = 0  # of its bytes, those `head_ready` has looked at
        self.wanted: int | None = None  # its length up to the end of a small body, once known
        self.line_limit = conn.limits.line_limit

    def gather(self) -> bool:
        got = self.gathered
        if not got:  # a kept-alive connection's next request may have come with the last one
            got += self.take_buffered()
        while not self._enough(got):
            try:
                data = self.sock.recv(self.mxchunk, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                break
            if not data:
                break
            got += data
        self.unread(bytes(got))
        got.clear()
        self.scanned, self.wanted = 0, None
        return True

    def _enough(self, got: bytearray) -> bool:
        """Whether a thread may take the request as `got` holds it (`head_ready`, then
        `small_body`); a small body on its way is held to its pace (`Conn.body_due`) from the
        head's end."""
        conn = self.conn
        if self.wanted is None:
            if not head_ready(got, self.scanned, self.line_limit):
                self.scanned = len(got)
                return False
            if head_too_large(got):
                self.conn.refuse_head()
                return True
            end = got.find(HEAD_END)
            if end < 0:  # the parser refuses it
                self.wanted = 0
                return True
            head = end + len(HEAD_END)
            self.wanted = head + small_body(got, end)
            conn.body_from(head)
        if len(got) >= self.wanted:
            return True
        conn.body_sent = len(got)
        conn.head_by = conn.body_due()
        return False

    def chunk(self, size_hint: int | None = None) -> bytes:
        size = self.mxchunk
        if size_hint and size_hint > size:
            size = min(size_hint, self.max_body_chunk)
        conn = self.conn
        head_by = conn.head_by
        if head_by is not None:
            wait = head_by - time.monotonic()
        elif conn.dropping:
            wait = 0.0
        else:
            if conn.body_start is None:
                conn.body_from(0)
            wait = conn.body_due() - time.monotonic()
        data = self._recv(size, wait)
        if data is not None:
            conn.body_sent += len(data)
            return data
        if head_by is not None:  # no request to answer yet: the parser sees the end
            conn.answer_late()
            return b""
        if conn.req is not None:
            conn.req.force_close()  # the answer says so, and the connection closes after it
        raise ClientTooSlow(conn.body_late())

    def _recv(self, size: int, wait: float) -> bytes | None:
        """At most `size` bytes, waiting `wait` seconds at most; None when none came."""
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket):  # a TLS record may be in part on the socket
            before = sock.gettimeout()
            sock.settimeout(max(0.001, wait if before is None else min(before, wait)))
            try:
                return sock.recv(size)
            except TimeoutError:
                return None
            finally:
                sock.settimeout(before)
        try:  # a read mostly finds its bytes there already: one system call
            return sock.recv(size, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
        if wait > 0 and wait_readable(sock, wait):
            return sock.recv(size)
        return None
