"""gunicorn's gthread worker, letting an SSE stream's connection go to the event hub.

A request whose socket was handed over (`dizest_api.handover`) ends with `HandedOver`; gunicorn
would then close the connection (a half-close first, which would cut the stream the hub now
writes). This worker forgets such a connection instead: no write, no close, it no longer counts
towards `worker_connections` (the hub's own limit, DIZEST_MAX_STREAMS, covers it), and the thread
is free for the next request. A GET of a run's events (the requests that may be handed over)
passes `handover.gate`: only a few set a stream up at once.

A slow or silent client holds no thread (`dizest_api.request_reads`): a connection goes to a
thread once its request's head (and a small body) can be parsed without waiting; until then, and
while a connection is being closed, the main loop holds it in its poller (`dizest_api.idle_conns`),
each by a deadline. A body a thread reads waits for each of its reads by a deadline too, and so
does each write of an answer (`dizest_api.response_writes`): a client that stops reading has its
connection reset.

Cheaper per connection than plain gthread, for a crowd of clients connecting at once (each of
these was a system call, and a hand-off of the GIL, per connection): a connection whose request
has arrived already is read at once, with no wait (gthread made and closed a selector per
connection); a handed-over connection is not sent back to the main thread, which only counts it
off; the liveness file the arbiter watches is touched once a second at most, not at every accept.
Everything else is gthread unchanged.
"""

from __future__ import annotations

import errno
import time
from collections import deque
from concurrent.futures import Future
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from dizest_api import handover
from dizest_api.idle_conns import Closing, Heads
from dizest_api.request_reads import Conn, ReadLimits, json_error
from dizest_api.response_writes import STALL_LOG, ResponseStalled, SendBounded

TAKEN = object()  # handle()'s result for a connection the hub now owns
WAIT_HEAD = object()  # handle()'s result for a connection whose head is still on its way
STALLED = object()  # handle()'s result for a connection whose client stopped reading its answer
STREAM_PATH_END = "/events"  # GET /api/v1/runs/<run_id>/events: SSE, maybe handed over
NOTIFY_EVERY_S = 1.0  # the arbiter's timeout (30 s by default) is far longer
DROP_BYTES = 64 * 1024  # of a body left unread, dropped at most to keep its connection (gthread's)


class StreamWorker(ThreadWorker):  # type: ignore[misc]
    def init_process(self) -> None:
        handover.enable()
        util.write_error = json_error  # this process serves the API alone
        self._taken: deque[None] = deque()  # one entry per connection handed over
        self._notified = 0.0
        self._listeners: dict[Any, tuple[Any, tuple[int, int, int]]] = {}  # its address, kind
        super().init_process()  # ends in run()

    def run(self) -> None:
        self.limits = ReadLimits.of(self.wsgi, self.cfg)  # the app is loaded by now
        self.send_s = self.wsgi.extensions["dizest"].settings.response_send_timeout_s
        self.closing = Closing(self.poller, self._closed)
        self.heads = Heads(self.poller, self.enqueue_req, self.closing.close)
        super().run()

    def accept(self, listener: Any) -> None:
        """gthread's, with the connection class that bounds its reads, and a socket whose
        writes are bounded."""
        known = self._listeners.get(listener)
        if known is None:  # a listener's address and kind are asked once, not at every accept
            kind = (int(listener.family), int(listener.type), listener.proto)
            known = self._listeners[listener] = (listener.getsockname(), kind)
        server, kind = known
        try:
            sock, client = SendBounded.accept_from(listener, self.send_s, kind)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self.enqueue_req(Conn(self.cfg, sock, client, server, self.limits))

    def enqueue_req(self, conn: Any) -> None:
        fs = self.tpool.submit(self.handle, conn)
        fs.add_done_callback(lambda done: self._finished(conn, done))

    def _finished(self, conn: Any, fs: Future[Any]) -> None:
        """In the request's thread: a handed-over connection is only counted off (by the main
        thread, in `notify`); any other goes back to the main thread as in gthread."""
        if not fs.cancelled() and fs.exception() is None and fs.result() is TAKEN:
            self._taken.append(None)
            return
        self.method_queue.defer(self.finish_request, conn, fs)

    def finish_request(self, conn: Any, fs: Future[Any]) -> None:
        """In the main thread: a head on its way waits in the poller, a connection to close
        lingers there (`dizest_api.idle_conns`); gthread keeps the others alive."""
        failed = fs.cancelled() or fs.exception() is not None
        result = False if failed else fs.result()
        if result is WAIT_HEAD:
            self.heads.wait(conn)
        elif result is STALLED:
            self.closing.reset(conn)
        elif result:
            super().finish_request(conn, fs)
        else:
            self.closing.close(conn)

    def _closed(self) -> None:
        self.nr_conns -= 1

    def murder_pending(self) -> None:
        """At every turn of the main loop (running or stopping)."""
        super().murder_pending()
        now = time.monotonic()
        self.heads.expire(now, self.alive)
        self.closing.expire(now)

    def notify(self) -> None:
        """Called by the main loop at every turn: count off handed-over connections, and tell
        the arbiter this worker lives (at most once a second)."""
        while self._taken:
            self._taken.popleft()
            self.nr_conns -= 1  # the hub's now: gunicorn neither writes to nor closes it
        now = time.monotonic()
        if now - self._notified >= NOTIFY_EVERY_S:
            self._notified = now
            super().notify()

    def handle(self, conn: Any) -> Any:
        conn.next_head()
        if conn.gathers and not conn.gather():
            return WAIT_HEAD  # no thread waits for it
        if conn.refused:
            return False  # answered 431: the connection closes
        keep = super().handle(conn)
        return TAKEN if handover.claimed(conn.sock) else keep

    def _keepalive_after(self, conn: Any, keepalive: Any) -> Any:
        """gthread's, but the rest of a body the application left unread is dropped only as far
        as it has come: if more is due, the connection closes (lingering in the poller). A
        response its client stopped reading (STALLED) is not kept alive either."""
        if not keepalive or keepalive is STALLED:
            return keepalive
        conn.dropping = True
        try:
            return bool(conn.parser.finish_body(max_bytes=DROP_BYTES))
        finally:
            conn.dropping = False

    def handle_request(self, req: Any, conn: Any) -> Any:
        conn.reading_body(req)
        try:
            if req.method == "GET" and req.path.endswith(STREAM_PATH_END):
                with handover.gate:
                    return super().handle_request(req, conn)
            return super().handle_request(req, conn)
        except ResponseStalled as exc:
            self.log.info(STALL_LOG, conn.client, req.method, exc.strerror)
            return STALLED
