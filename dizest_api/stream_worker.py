"""gunicorn's gthread worker, letting an SSE stream's connection go to the event hub.

A request whose socket was handed over (`dizest_api.handover`) ends with `HandedOver`; gunicorn
would then close the connection (a half-close first, which would cut the stream the hub now
writes). This worker forgets such a connection instead: no write, no close, it no longer counts
towards `worker_connections` (the hub's own limit, DIZEST_MAX_STREAMS, covers it), and the thread
is free for the next request. A GET of a run's events (the requests that may be handed over)
passes `handover.gated`: only a few set a stream up at once.

A connection to close lingers in the main loop's poller (`dizest_api.idle_conns`), not in its
thread.

Cheaper per connection than plain gthread, for a crowd of clients connecting at once (each of
these was a system call, and a hand-off of the GIL, per connection): a connection whose request
has arrived already skips gthread's wait for it (a selector made and closed per connection); a
handed-over connection is not sent back to the main thread, which only counts it off; the
liveness file the arbiter watches is touched once a second at most, not at every accept.
Everything else is gthread unchanged.
"""

from __future__ import annotations

import json
import select
import time
from collections import deque
from concurrent.futures import Future
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from dizest_api import handover
from dizest_api.errors import error_body
from dizest_api.idle_conns import Closing

TAKEN = object()  # handle()'s result for a connection the hub now owns
STREAM_PATH_END = "/events"  # GET /api/v1/runs/<run_id>/events: SSE, maybe handed over
NOTIFY_EVERY_S = 1.0  # the arbiter's timeout (30 s by default) is far longer


def json_error(sock: Any, status: int, reason: str, message: str) -> None:
    """gunicorn's own answer to a request it cannot parse (a request line over its limit, a
    control character in a header), in the API's JSON shape rather than its HTML page:
    gunicorn has no hook for that body, so the worker process sets this as `write_error`."""
    code = reason.lower().replace(" ", "_")
    body = json.dumps(error_body(code, message or reason)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class StreamWorker(ThreadWorker):  # type: ignore[misc]
    def init_process(self) -> None:
        handover.enable()
        util.write_error = json_error  # this process serves the API alone
        self._taken: deque[None] = deque()  # one entry per connection handed over
        self._notified = 0.0
        super().init_process()  # ends in run()

    def run(self) -> None:
        self.closing = Closing(self.poller, self._closed)
        super().run()

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
        """In the main thread: a connection to close lingers in the poller
        (`dizest_api.idle_conns`); gthread keeps the others alive."""
        failed = fs.cancelled() or fs.exception() is not None
        if not failed and fs.result():
            super().finish_request(conn, fs)
        else:
            self.closing.close(conn)

    def _closed(self) -> None:
        self.nr_conns -= 1

    def murder_pending(self) -> None:
        """At every turn of the main loop (running or stopping)."""
        super().murder_pending()
        self.closing.expire(time.monotonic())

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
        if not conn.initialized and not conn.data_ready:
            ready = select.poll()  # its request is usually here already: one call to know
            ready.register(conn.sock, select.POLLIN)
            conn.data_ready = bool(ready.poll(0))  # else gthread waits for it, as ever
        keep = super().handle(conn)
        return TAKEN if handover.claimed(conn.sock) else keep

    def handle_request(self, req: Any, conn: Any) -> Any:
        if req.method == "GET" and req.path.endswith(STREAM_PATH_END):
            with handover.gated():
                return super().handle_request(req, conn)
        return super().handle_request(req, conn)
