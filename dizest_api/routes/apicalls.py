"""An app's `api` functions over HTTP: `POST /runs/<run>/flows/<flow>/api/<name>`.

The call runs on a worker, in a sandboxed child like a flow (`dizest_worker.apicalls`), with
the flow's inputs and outputs of that run. Who may call: whoever may rerun the run (its owner,
admins, grantees with the runner right on its workflow); anyone else gets 404 as for a run that
does not exist. POST only: a call runs user code, so it carries the session's CSRF token like
every other write (DIZEST's any-method routes would let a cross-site GET run it).

The request's values reach the function by name: query parameters, then the keys of a JSON
object body (a body that is not an object is `dizest.request.json()` only). The body is at most
MAX_BODY_BYTES (413 above), `?timeout=` seconds bounds the call (default 30, at most 300).
The answer is the function's own: its status, media type and body (JSON, text or bytes);
errors of the function are 422 with its traceback as plain text.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from dizest_api.auth import current
from dizest_api.endpoint import endpoint, json_value
from dizest_api.errors import BadInput, BodyTooLarge
from dizest_api.routes.health import require_worker
from dizest_api.routes.runs import open_run
from dizest_api.schemas import ERR, Body
from dizest_api.services import services
from dizest_worker.client import CALL_TIMEOUT_S, MAX_CALL_TIMEOUT_S, Answer, CallTask, new_call_id

bp = Blueprint("apicalls", __name__)

MAX_BODY_BYTES = 1 << 20
HEADERS = ("Accept", "Accept-Language", "Content-Type", "User-Agent")  # never credentials
QUERY = {"timeout": f"seconds the call may take (default {CALL_TIMEOUT_S:g}, "
         f"at most {MAX_CALL_TIMEOUT_S:g}); other parameters are request values"}  # fmt: skip

ANSWER = Body({"*/*": None}, description="what the api function answers: its status, type, body")


@endpoint(bp, "POST", "/runs/<run_id>/flows/<flow_id>/api/<name>",
          "Call one of the flow's app `api` functions (runner right); answers what it answers",
          query=QUERY,
          responses={200: ANSWER, 413: ERR, 422: ERR, 429: ERR, 503: ERR, 504: ERR})  # fmt: skip
def call_api(run_id: str, flow_id: str, name: str) -> Response:
    open_run(run_id, "rerun")
    size = request.content_length or 0
    if size > MAX_BODY_BYTES or len(request.get_data(cache=True)) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"an api call's body is at most {MAX_BODY_BYTES} bytes")
    body = json_value() if request.get_data(cache=True) else None
    params: dict[str, Any] = {k: v for k, v in request.args.items() if k != "timeout"}
    if isinstance(body, dict):
        params.update(body)
    task = CallTask(
        new_call_id(), run_id, flow_id, name, _timeout(), "POST", params, body,
        headers={k: request.headers[k] for k in HEADERS if k in request.headers},
    )  # fmt: skip
    require_worker()
    answer = services().client.call_api(task, caller=current().username)
    return Response(answer.body, status=answer.status, mimetype=None,
                    content_type=answer.media_type, headers=_headers(answer))  # fmt: skip


def _timeout() -> float:
    raw = request.args.get("timeout")
    if raw is None:
        return CALL_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_CALL_TIMEOUT_S:
        raise BadInput(f"timeout must be a number of seconds in (0, {MAX_CALL_TIMEOUT_S:g}]")
    return value


def _headers(answer: Answer) -> dict[str, str]:
    """A function's answer is served as data, never as a page of this origin: it could be
    HTML or script the function made from a user's input."""
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    essence = answer.media_type.split(";", 1)[0].strip().lower()  # "a/b, c/d" is none of them
    if essence not in ("application/json", "text/plain"):
        headers["Content-Disposition"] = "attachment"
        headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return headers
