"""A run's live events over a WebSocket (`/api/v1/runs/<run_id>/ws`), through flask-sock.

flask-sock answers the handshake before it calls the view, so everything that may refuse the
socket runs earlier, in this blueprint's `before_request`: the principal (the app's auth hook,
401), the Origin of a cookie socket (403), the run's access (404) and room on the event hub
(503; 429 past the caller's own share of streams). A refusal is then a plain HTTP answer with a
JSON body, never a socket opened and closed. The place the socket took is given back when its
events are closed: by the view, or at the end of the request if the view never ran.

simple-websocket writes with `sock.send`, a blocking send with no timeout that may send part of
a frame, from the view's thread and its ping thread alike, and closes the socket from its ping
thread: the socket it is given is the connection's wrapped in `WholeSends`
(`dizest_api.response_writes`), which sends each frame whole, one at a time, and bounded, and
leaves the close to the server. A client that stops reading (a replay from a run's first
event, a small receive buffer, nothing read) has its connection reset after the send timeout;
the view ends there, its thread and its place given back, and the stall is logged once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, g, request
from flask.blueprints import BlueprintSetupState
from flask_sock import Sock
from simple_websocket import ConnectionClosed, Server
from wsproto.events import RejectConnection
from wsproto.utilities import RemoteProtocolError

from dizest_api.auth import current
from dizest_api.endpoint import Spec
from dizest_api.errors import Forbidden, error_response
from dizest_api.event_hub import Held
from dizest_api.response_writes import STALL_LOG, WholeSends
from dizest_api.routes.run_events import AFTER, RESUME, follow_run
from dizest_api.schemas import ERR
from dizest_api.services import services
from dizest_api.stream_schemas import WEBSOCKET
from dizest_core.events import Event

bp = Blueprint("sockets", __name__)
sock = Sock()
log = logging.getLogger("dizest.api.streaming")
SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")  # where flask-sock's Server finds it
LEFT_LOG = "%s WebSocket: the client left during the handshake (%s)"  # never the path (secret)


@bp.record_once
def _ping_at_heartbeat(state: BlueprintSetupState) -> None:
    """Pings at the heartbeat period keep idle proxies from closing a quiet socket, as SSE
    heartbeat comments do (flask-sock reads the Server's options from SOCK_SERVER_OPTIONS)."""
    options = state.app.config.setdefault("SOCK_SERVER_OPTIONS", {})
    options.setdefault("ping_interval", state.app.extensions["dizest"].settings.heartbeat_s)
    options.setdefault("thread_class", PingThread)


class PingThread(threading.Thread):
    """A Server's thread (its pings, and its reads), which the process does not wait for as it
    exits. It ends at its next read, or at its next ping once the socket is closed: a socket
    the server closed whose client did not (not yet, or never) left it waiting for the ping
    interval, and a stop in that time took the whole graceful timeout (10 s), the worker
    killed at its end."""

    def __init__(self, target: Callable[[], None]) -> None:
        super().__init__(target=target, daemon=True)


@bp.before_request
def _admit_socket() -> None:
    """Every check that may refuse the socket, before the handshake; the stream it opens
    (not started: nothing subscribed yet) waits in `g` for the view."""
    _check_origin()
    run_id = (request.view_args or {})["run_id"]
    g.dizest_socket_events = follow_run(run_id)
    environ = request.environ
    for key in SOCKET_KEYS:
        if key in environ:
            environ[key] = WholeSends(environ[key])


@bp.teardown_request
def _release_socket(_exc: BaseException | None) -> None:
    """A socket admitted whose view never took its events (a bad handshake): its place back."""
    events: Held[Event | None] | None = g.pop("dizest_socket_events", None)
    if events is not None:
        events.close()


@bp.errorhandler(RemoteProtocolError)
def _bad_handshake(exc: RemoteProtocolError) -> Response:
    """A handshake wsproto refuses (no Sec-WebSocket-Key, a version other than 13, no Host...)
    raised out of flask-sock before anything was sent: it was a 500. Now the status wsproto
    gives it (400; 426 with the version it speaks), with a JSON body."""
    hint = exc.event_hint
    status = hint.status_code if isinstance(hint, RejectConnection) else 400
    response = error_response(status, "bad_handshake", f"WebSocket handshake refused: {exc}")
    if isinstance(hint, RejectConnection):
        for name, value in hint.headers:
            response.headers[name.decode("latin-1")] = value.decode("latin-1")
    return response


@bp.errorhandler(OSError)
def _client_left(exc: OSError) -> Response:
    """A write to the client's connection that failed before the view ran: it left (reset,
    closed) or stopped reading during the handshake, which simple-websocket writes from the
    Server's constructor, in flask-sock's view. It was a 500 and two tracebacks in the log a
    connection (a client closing at once, again and again, flooded it). Now one line; the
    answer is written to nobody. Any other OSError is the server's: raised on (a 500)."""
    if not any(getattr(request.environ.get(key), "failed", None) is exc for key in SOCKET_KEYS):
        raise exc
    log.info(LEFT_LOG, request.remote_addr, exc.strerror or exc)
    return error_response(400, "client_left", "the client left during the WebSocket handshake")


def _check_origin() -> None:
    """A cookie-authenticated socket only from this server's own origin (its Host) or one of
    `allowed_origins`: browsers send the cookie with a cross-site WebSocket handshake too, and
    WebSockets have no CORS (cross-site WebSocket hijacking). Bearer sockets need no Origin."""
    if current().via != "session":
        return
    origin = request.headers.get("Origin", "")
    if origin in services().settings.allowed_origins:
        return
    scheme, _, host = origin.partition("://")
    if scheme not in ("http", "https") or host != request.host:
        raise Forbidden(f"WebSocket from origin {origin or 'none'!r} refused", {"reason": "origin"})


def _with_spec(spec: Spec) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Set the Spec before flask-sock wraps the view (its wrapper copies the attribute)."""

    def mark(view: Callable[..., Any]) -> Callable[..., Any]:
        view.dizest_spec = spec  # type: ignore[attr-defined]
        return view

    return mark


@sock.route("/runs/<run_id>/ws", bp=bp)
@_with_spec(
    Spec(
        "GET",
        "Live events over a WebSocket (resume with ?after=)",
        query=AFTER,
        headers=RESUME,
        responses={101: None, 400: ERR, 426: ERR, 429: ERR, 503: ERR},
        description=WEBSOCKET,
    )
)
def run_socket(ws: Server, run_id: str) -> None:
    """The same events as JSON text messages; closes after the final one (flask-sock closes the
    socket and ends the response)."""
    events: Held[Event | None] = g.pop("dizest_socket_events")
    try:
        for event in events:
            if event is None:  # a quiet period: the Server's pings go on in its thread
                if not ws.connected:
                    break
                continue
            try:
                ws.send(event.wire)
            except (OSError, ConnectionClosed):  # the client left, or stopped reading
                break
    finally:
        events.close()
        stalled = getattr(ws.sock, "stalled", None)  # this thread's write or the ping thread's
        if stalled is not None:
            log.info(STALL_LOG, request.remote_addr, "WebSocket", stalled.strerror)
