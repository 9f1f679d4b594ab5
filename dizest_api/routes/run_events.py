"""A run's live events over HTTP (Server-Sent Events), and the opening of a stream that the
WebSocket (`routes.sockets`) shares: who may read the run is `routes.run_access.open_run`'s rule.
The route is on the runs blueprint (`routes.runs.bp`)."""

from __future__ import annotations

import socket
import ssl

from flask import Flask, Response, current_app, request

from dizest_api import handover
from dizest_api.auth import current
from dizest_api.endpoint import Field, endpoint
from dizest_api.errors import BadInput
from dizest_api.event_hub import Held, hub_for
from dizest_api.routes.run_access import open_run, run_allowed
from dizest_api.routes.runs import bp
from dizest_api.schemas import ERR
from dizest_api.services import services
from dizest_api.stream_access import request_reader
from dizest_api.stream_schemas import EVENTS
from dizest_api.streaming import REPLAY_BATCH, STREAM_ID, follow, sse
from dizest_core.events import Event

AFTER = {"after": "resume after this event id (or the Last-Event-ID header)"}
RESUME = {"Last-Event-ID": Field("string", pattern=f"^{STREAM_ID.pattern}$", description=(
    "resume after this event id (the last `id` received; `?after=` wins); not an event id: 400"
))}  # fmt: skip


def _after() -> str | None:
    environ = request.environ  # the query parsed only if there is one
    query = request.args.get("after") if environ.get("QUERY_STRING") else None
    after = query or environ.get("HTTP_LAST_EVENT_ID") or None
    if after is not None and not STREAM_ID.fullmatch(after):
        raise BadInput("after / Last-Event-ID must be an event id like 1700000000000-0")
    return after


def follow_run(run_id: str, sse: bool = False) -> Held[Event | None]:
    """The run's events for a stream (SSE or WebSocket): refused before anything is answered
    for a bad `after` (400), a caller who may not read the run (404), no room on the hub for the
    stream (503) or for one more of the caller's (429). Close what it returns, even unread:
    that frees the caller's place.

    An SSE stream the hub may own, of a run this process streams already (a crowd connecting),
    subscribes first (locally: the run's channel is subscribed), then reads the run's status
    (its record's existence) and its first events in one Redis round trip, not two, and gives
    its subscription back if refused. Any other stream subscribes once its events begin."""
    after = _after()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    hub = hub_for(app)
    sock = _direct_socket(app) if sse else None
    found = services()
    client, sub, batch = found.client, None, []
    try:
        if sock is not None and hub.streams(run_id):
            sub = hub.subscribe(run_id, admitted=False)
            status, batch = client.status_and_batch(run_id, after, REPLAY_BATCH)
            run_allowed(run_id, None if status is None else {"status": status})
        else:
            status = open_run(run_id).get("status")
        reader = request_reader(run_id, lambda: open_run(run_id))  # asked again while it lasts
        lease = hub.admit(
            threaded=sock is None, user=current().username, sock=sock, reader=reader,
            sub=sub,
        )  # fmt: skip
    except BaseException:
        if sub is not None:
            hub.unsubscribe(sub)
        raise
    opened = (sub, batch) if sub is not None else None
    # the heartbeat: seconds between SSE heartbeat comments and WebSocket pings on a quiet stream
    events = follow(hub, client, run_id, after, found.settings.heartbeat_s, sock, status, opened)
    return Held(hub, lease, events, sub)


def _direct_socket(app: Flask) -> socket.socket | None:
    """The client's socket when the hub may take the stream over: gunicorn with our worker
    (`handover`), plain TCP (not TLS), HTTP/1.1 (a chunked response, as the hub frames it)."""
    environ = request.environ
    sock, protocol = environ.get("gunicorn.socket"), environ.get("SERVER_PROTOCOL", "")
    plain = isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket)
    if not plain or protocol != "HTTP/1.1" or not handover.enabled():
        return None
    return sock if app.config.get("DIZEST_SSE_DIRECT", True) else None


@endpoint(bp, "GET", "/runs/<run_id>/events",
          "Live events as Server-Sent Events (resume with Last-Event-ID)", query=AFTER,
          headers=RESUME,
          responses={**EVENTS, 429: ERR, 503: ERR})  # fmt: skip
def run_events(run_id: str) -> Response:
    return sse_response(run_id)


def sse_response(run_id: str) -> Response:
    """The run's events (after `after` / Last-Event-ID) as a Server-Sent Events response."""
    events = follow_run(run_id, sse=True)
    response = Response(
        sse(events),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        direct_passthrough=True,
    )
    response.call_on_close(events.close)  # also when the body was never read
    return response
