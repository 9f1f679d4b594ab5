"""The one place where exceptions become HTTP: a table of exception -> status and error code.

Every error answer has the body `{"error": {"code", "message", "details"}}`. Bad input is never a
500; an unexpected exception is logged with its traceback and answered with a bare 500.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

import redis
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import (
    ClientDisconnected,
    HTTPException,
    MethodNotAllowed,
    RequestEntityTooLarge,
)
from werkzeug.routing import WebsocketMismatch

from dizest_api.data.accounts import AccountError, InvalidCredentials, LoginLocked, UserExists
from dizest_api.data.library import GrantError, VersionConflict
from dizest_api.data.library_quota import BytesQuota
from dizest_core.errors import (
    AuthError,
    DizestError,
    InputError,
    InvalidOptions,
    UnknownFlowError,
    UnknownInputError,
    ValidationError,
    WorkflowError,
)
from dizest_worker.client import RunsQuota, TooManyCalls

log = logging.getLogger("dizest.api")


class ApiError(DizestError):
    """An error the API raises itself, with its status, code and details."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.details = details


class BadInput(ApiError):
    status, code = 400, "bad_request"


class Unauthenticated(ApiError):
    status, code = 401, "unauthenticated"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError, LookupError):
    status, code = 404, "not_found"


class BodyTooLarge(ApiError):
    status, code = 413, "body_too_large"


class Conflict(ApiError):
    status, code = 409, "conflict"


class ClientTooSlow(TimeoutError):
    """A request's client sent nothing more of its body for DIZEST_REQUEST_BODY_TIMEOUT_S, or
    sent it slower than DIZEST_REQUEST_BODY_MIN_RATE (the server's reads raise it:
    `dizest_api.request_reads`): 408, and the connection closes. A TimeoutError, so gunicorn's
    own reads of a body take it as one, and Werkzeug's body streams as a client gone
    (ClientDisconnected, raised while handling it)."""


# First match wins: subclasses before their bases.
TABLE: list[tuple[type[BaseException], int, str]] = [
    (LoginLocked, 429, "too_many_attempts"),
    (TooManyCalls, 429, "too_many_calls"),
    (InvalidCredentials, 401, "unauthenticated"),
    (AuthError, 401, "unauthenticated"),
    (UserExists, 409, "conflict"),
    (VersionConflict, 409, "version_conflict"),
    (InvalidOptions, 422, "invalid_options"),
    (BytesQuota, 413, "quota_bytes"),
    (RunsQuota, 413, "quota_runs"),
    (UnknownInputError, 400, "unknown_input"),  # a name no flow reads: fix the request
    (InputError, 422, "invalid_input"),  # the code is the error's own: input_too_deep, ...
    (ValidationError, 422, "invalid_workflow"),
    (WorkflowError, 422, "invalid_workflow"),
    (LookupError, 404, "not_found"),
    (AccountError, 400, "bad_request"),
    (GrantError, 400, "bad_request"),
]


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON body of every error the API answers."""
    return {"error": {"code": code, "message": message, "details": details}}


CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dizest"'}  # with every 401


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    if status == 401:
        response.headers.update(CHALLENGE)
    return response


def _details(exc: BaseException) -> Any:
    if isinstance(exc, ApiError | InputError):
        return exc.details
    if isinstance(exc, ValidationError):
        return [p.to_dict() for p in exc.problems]
    if isinstance(exc, LoginLocked):
        return {"retry_after": exc.retry_after}
    if isinstance(exc, VersionConflict):
        return {"base_version": exc.base, "latest_version": exc.latest}
    return None


def handle_domain(exc: Exception) -> Response:
    if isinstance(exc, ApiError):
        response = error_response(exc.status, exc.code, str(exc), exc.details)
        if isinstance(exc.details, dict) and "retry_after" in exc.details:
            response.headers["Retry-After"] = str(exc.details["retry_after"])
        return response
    if isinstance(exc, UnknownFlowError) and "flow_id" in (request.view_args or {}):
        return error_response(404, "not_found", str(exc))  # the path names it: no such resource
    for cls, status, code in TABLE:
        if isinstance(exc, cls):
            message = str(exc).split("\n", 1)[0]
            if isinstance(exc, LookupError) and exc.args:
                message = str(exc.args[0])  # KeyError's str() adds quotes
            if isinstance(exc, InputError):
                code = exc.code
            response = error_response(status, code, message, _details(exc))
            if isinstance(exc, LoginLocked):
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
    return handle_unexpected(exc)


def handle_http(exc: HTTPException) -> Response:
    if isinstance(exc, ClientDisconnected) and isinstance(exc.__context__, ClientTooSlow):
        return handle_too_slow(exc.__context__)
    code = (exc.name or "error").lower().replace(" ", "_")
    message = exc.description or exc.name or ""
    if isinstance(exc, WebsocketMismatch):  # a plain request of a WebSocket route (or back)
        message = (
            "this is a WebSocket endpoint: connect with 'Upgrade: websocket' (over plain "
            "HTTP, GET /api/v1/runs/<run_id>/events streams the same events)"
        )
    details = None
    if isinstance(exc, RequestEntityTooLarge) and _over_limit():
        size, limit = request.content_length, request.max_content_length
        message = f"the request body is {size} bytes; this route takes at most {limit}"
        details = {"content_length": size, "limit": limit}
    response = error_response(exc.code or 500, code, message, details)
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _over_limit() -> bool:
    """The body's declared length is over the request's limit (Werkzeug's words for that said
    no number: "The data value transmitted exceeds the capacity limit.")."""
    limit = request.max_content_length
    return limit is not None and (request.content_length or 0) > limit


def handle_too_slow(exc: ClientTooSlow) -> Response:
    return error_response(408, "request_timeout", str(exc))


def handle_unavailable(exc: Exception) -> Response:
    """Redis unreachable or every pooled connection busy: the client should retry shortly."""
    log.warning("redis unavailable: %s", exc)
    response = error_response(503, "unavailable", "the state store is unavailable; retry shortly")
    response.headers["Retry-After"] = "2"
    return response


def handle_os(exc: OSError) -> Response:
    """A full disk (or quota) under a request is the server's state, not a bug: 507, retry
    later. Any other OSError is unexpected."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        log.warning("disk full: %s", exc.strerror)
        response = error_response(507, "insufficient_storage", "the server's disk is full; retry later")  # fmt: skip
        response.headers["Retry-After"] = "60"
        return response
    return handle_unexpected(exc)


def handle_unexpected(exc: Exception) -> Response:
    if type(exc).__module__ == "gunicorn.http.errors":  # the body, read in a view, is broken
        # (a bad chunk size, a body cut short); the server parsed the head before the app ran
        return error_response(400, "bad_request", f"malformed request body: {exc}")
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


# A refused body up to this size is read to its end before the 413 goes out (`read_refused`)
REFUSED_BODY_READ_BYTES = 16 << 20


def read_refused(response: Response) -> Response:
    """A 413 answered before its body was read: the body is read (and dropped) when it is no
    larger than REFUSED_BODY_READ_BYTES. Else the server closes the connection with the body
    unread, the kernel answers what the client still sends with a reset, and a client that
    sends its whole body before reading (urllib, requests, curl without 100-continue) gets a
    broken pipe instead of the 413 that says what the limit is (gunicorn itself drains 64 KB)."""
    if response.status_code != 413:  # every other answer: nothing to read (no header parsed)
        return response
    size = request.content_length
    if size is not None and size <= REFUSED_BODY_READ_BYTES:
        stream = request.environ.get("wsgi.input")
        try:
            while stream is not None and stream.read(1 << 16):
                pass
        except OSError:  # the client went away (gunicorn's NoMoreData too): it hears nothing
            pass
    return response


def register(app: Flask) -> None:
    app.after_request(read_refused)
    app.register_error_handler(HTTPException, handle_http)
    # DizestError only: a bare KeyError from a bug must stay a 500, not become a 404.
    app.register_error_handler(DizestError, handle_domain)
    app.register_error_handler(redis.ConnectionError, handle_unavailable)
    app.register_error_handler(redis.TimeoutError, handle_unavailable)
    app.register_error_handler(ClientTooSlow, handle_too_slow)
    app.register_error_handler(OSError, handle_os)
    app.register_error_handler(Exception, handle_unexpected)
