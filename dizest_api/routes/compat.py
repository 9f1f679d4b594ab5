"""DIZEST-compatible routes for existing callers: `/dizest/api/run/<workflow>` runs a stored
workflow and answers with its final outputs; `/dizest/api/stream/<workflow>` runs it and streams
its events as real Server-Sent Events.

Inputs follow DIZEST's mapping (reference §6): each request value (query string for GET; JSON
object or form for POST) fills every unconnected output-type input of that name. Unlike DIZEST:
an input left out keeps its default (it is not passed as None), a name no flow asks for is a 400,
outputs are keyed by flow (`{flow: {output: value}}`, so two flows' `result` never collide), and
answers carry real HTTP status codes: 404 unknown workflow, 422 invalid package, 429 too many
runs, 422 `run_failed` with every failing flow's reason (the workflow, not the server,
failed), 504 `run_timeout` with the run id.

`GET /api/v1/workflows/<id>/spec` says what these routes take and give for a workflow: each input
name with the run inputs it fills (`flow.name`), and each flow's final outputs; the console's API
panel is built from it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import MethodNotAllowed

from dizest_api.auth import current
from dizest_api.body_slots import give_back
from dizest_api.data.library import StoredWorkflow, WorkflowNotFound
from dizest_api.endpoint import endpoint, json_value
from dizest_api.errors import ApiError, BadInput, Forbidden, NotFound
from dizest_api.event_hub import hub_for
from dizest_api.routes.files import user_drive
from dizest_api.routes.health import require_worker
from dizest_api.routes.run_events import RESUME, sse_response
from dizest_api.routes.runs import index, within_limit
from dizest_api.routes.workflows import open_workflow
from dizest_api.schemas import ERR
from dizest_api.services import services
from dizest_api.stream_schemas import EVENTS
from dizest_api.streaming import STREAM_ID
from dizest_core import dwp
from dizest_core.errors import ExecutionError
from dizest_core.run_inputs import api_inputs
from dizest_core.workflow import package_spec, parse_value

Spec = tuple[dict[str, dict[str, None]], dict[str, list[str]]]  # `package_spec`'s answer

bp = Blueprint("compat", __name__)

WAIT_S = 600.0
RESUME_RUNS = 20  # a reconnect looks for its run among the caller's newest of the workflow


class RunFailed(ApiError):
    status, code = 422, "run_failed"


class RunTimeout(ApiError):
    status, code = 504, "run_timeout"


def _values() -> dict[str, Any]:
    if request.method == "GET":
        return {k: parse_value(v) for k, v in request.args.items()}
    if request.is_json:
        body = json_value()
        if not isinstance(body, dict):
            raise BadInput("the body must be a JSON object of input values")
        return body
    return {k: parse_value(v) for k, v in request.form.items()}


def _start(wf_id: str) -> tuple[str, dict[str, list[str]]]:
    """Submit the workflow with the request's inputs; the run id and its final outputs."""
    found, principal = services(), current()
    if request.method == "HEAD":  # Flask answers HEAD on a GET route: it must start nothing
        raise MethodNotAllowed(["GET", "POST"], "a HEAD request starts no run")
    if request.method != "POST" and principal.via == "session":
        # a GET cannot carry the CSRF token, and this one starts a run
        raise Forbidden(
            "with a session cookie, start runs by POST (with X-CSRF-Token) or use a bearer token",
            {"reason": "csrf"},
        )
    wf, version, raw, (requested, finals) = _latest(wf_id, "run")
    values, accepted = _values(), api_inputs(requested)
    unknown = sorted(set(values) - set(accepted))
    if unknown:
        raise BadInput(
            f"no flow asks for input(s): {', '.join(unknown)}",
            {"unknown": unknown, "inputs": sorted(accepted)},
        )
    inputs = {
        key: values[name] for name, keys in accepted.items() if name in values for key in keys
    }
    give_back()  # the body is read whole: its slot is not held through the run's wait
    require_worker()
    with within_limit() as account:
        run_id = found.client.submit(
            raw, inputs, account=account, drive=user_drive().path,
            stored=lambda new: index().claim(new, principal.username, wf.id, version=version),
        )  # fmt: skip
    return run_id, finals


def _latest(wf_id: str, right: str) -> tuple[StoredWorkflow, int, Any, Spec]:
    """The workflow's latest version (what these routes run), if the caller holds `right` on
    it: its number, its package and the package's `spec()`."""
    wf, found = open_workflow(wf_id, right), services()
    try:
        _, version, raw = found.library.package(wf.id)
    except WorkflowNotFound as exc:
        raise NotFound(str(exc)) from None
    return wf, version, raw, package_spec(dwp.load(raw, extra_apps=found.plugins.apps()))


def _run(wf_id: str) -> Response:
    """The run's final outputs. Its wait holds a server thread up to WAIT_S: a place among the
    caller's streams that keep a thread, taken before the run starts (refused: 429, no run),
    as a WebSocket's is; a probe's 20 waits of one user left none of 16 threads for others."""
    hub = hub_for(current_app._get_current_object())  # type: ignore[attr-defined]
    lease = hub.admit(threaded=True, user=current().username)
    try:
        run_id, finals = _start(wf_id)
        try:
            report = services().client.wait(run_id, timeout=WAIT_S)
        except ExecutionError:
            raise RunTimeout(
                f"run {run_id} still running after {WAIT_S:g} s", {"run_id": run_id}
            ) from None
    finally:
        hub.release(lease)
    flows = report["flows"]
    failed = {f: d["reason"] for f, d in flows.items() if d["status"] == "error"}
    if report["status"] != "ready":
        raise RunFailed(
            f"run {run_id} ended {report['status']}", {"run_id": run_id, "flows": failed}
        )
    outputs = {
        f: {n: flows[f]["outputs"][n] for n in names if n in flows[f]["outputs"]}
        for f, names in finals.items()
    }
    body = {"run_id": run_id, "status": report["status"], "outputs": outputs}
    return Response(json.dumps(body), mimetype="application/json")


def _stream(wf_id: str) -> Response:
    # a stream the hub would refuse must not start a run first: each retry would start another
    hub_for(current_app._get_current_object()).ensure_room(current().username)  # type: ignore[attr-defined]
    run_id = _resumed(wf_id) or _start(wf_id)[0]
    give_back()  # a stream that keeps its thread (HTTP/1.0, TLS) waits on no body
    response = sse_response(run_id)
    response.headers["X-Dizest-Run-Id"] = run_id
    return response


def _resumed(wf_id: str) -> str | None:
    """The run a reconnecting stream follows: an EventSource sends the last event's id again
    on every reconnect (a dropped connection, a proxy's timeout), and each reconnect started a
    new run of the workflow. With Last-Event-ID, the stream resumes the caller's run of this
    workflow that holds that event (its newest RESUME_RUNS), after it; none: 404, never a
    second run."""
    last = request.headers.get("Last-Event-ID")
    if not last:
        return None
    if request.method == "HEAD":  # as `_start`: no stream for a request that reads no body
        raise MethodNotAllowed(["GET", "POST"], "a HEAD request follows no run")
    if not STREAM_ID.fullmatch(last):
        raise BadInput("Last-Event-ID must be an event id like 1700000000000-0")
    wf, client = open_workflow(wf_id, "run"), services().client
    for run_id in index().latest_of(current().username, wf.id, RESUME_RUNS):
        if client.has_event(run_id, last):
            return run_id
    raise NotFound(
        f"no run of workflow {wf_id} of yours holds event {last} (it expired, or is not yours):"
        " connect without Last-Event-ID to start a run",
        {"last_event_id": last},
    )


def _route(
    kind: str, answer: Callable[[str], Response], summary: str, responses: Any, **more: Any
) -> None:
    """`kind` on GET and POST alike (DIZEST took both): one view each, for its own Spec and
    operationId (`compat_run_get`, ...)."""
    for method in ("GET", "POST"):

        def view(wf_id: str) -> Response:
            return answer(wf_id)

        view.__name__ = f"{kind}_{method.lower()}"
        rule = f"/dizest/api/{kind}/<wf_id>"
        endpoint(bp, method, rule, summary, scope="run", responses=responses, **more)(view)


# what starting a run answers (a bad input 400, the user's runs at their quota 413, a package
# or input refused 422, too many runs or streams 429, no worker or a full process 503)
STARTS = {400: ERR, 413: ERR, 422: ERR, 429: ERR, 503: ERR}
_route("run", _run, "DIZEST-compatible: run, wait, final outputs",
       {200: "CompatResult", **STARTS, 504: ERR})  # fmt: skip
_route("stream", _stream, "DIZEST-compatible: run and stream events (Last-Event-ID: resume that run)",
       {**EVENTS, **STARTS, 404: ERR}, headers=RESUME)  # fmt: skip


@endpoint(bp, "GET", "/api/v1/workflows/<wf_id>/spec", "What the DIZEST-compatible routes "
          "take and give for a workflow (its latest version): each input name with the run "
          "inputs it fills, and each flow's final outputs", responses={200: "WorkflowSpec"})  # fmt: skip
def workflow_spec(wf_id: str) -> Response:
    wf, version, _, (requested, finals) = _latest(wf_id, "read")
    body = {"workflow_id": wf.id, "version": version, "inputs": api_inputs(requested),
            "outputs": finals}  # fmt: skip
    return Response(json.dumps(body), mimetype="application/json")
