"""gunicorn's gthread worker, letting an SSE stream's connection go to the event hub.

A request whose socket was handed over (`dizest_api.handover`) ends with `HandedOver`; gunicorn
would then close the connection (a half-close first, which would cut the stream the hub now
writes). This worker forgets such a connection instead: no write, no close, it no longer counts
towards `worker_connections` (the hub's own limit, DIZEST_MAX_STREAMS, covers it), and the thread
is free for the next request. Everything else is gthread unchanged.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from dizest_api import handover

TAKEN = object()  # handle()'s result for a connection the hub now owns


class StreamWorker(ThreadWorker):  # type: ignore[misc]
    def init_process(self) -> None:
        handover.enable()
        super().init_process()

    def handle(self, conn: Any) -> Any:
        keep = super().handle(conn)
        return TAKEN if handover.claimed(conn.sock) else keep

    def finish_request(self, conn: Any, fs: Future[Any]) -> None:
        if not fs.cancelled() and fs.exception() is None and fs.result() is TAKEN:
            self.nr_conns -= 1  # the hub's now: gunicorn neither writes to nor closes it
            return
        super().finish_request(conn, fs)
