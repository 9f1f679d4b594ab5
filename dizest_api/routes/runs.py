"""Runs over HTTP: submit (a stored workflow or an inline .dwp), list, report, cancel, outputs,
rerun, and live events (Server-Sent Events; the WebSocket is in `routes.sockets`).

Who may see a run, and do what with it: `routes.run_access`; the reads of a run in parts (its
flows' states alone, one flow's part of the report): `routes.run_reads`. The per-user limit is
checked and the run claimed under a per-user lock (`within_limit`), so simultaneous submits
cannot pass it together.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from redis.exceptions import LockError

from dizest_api.auth import current
from dizest_api.data.library import WorkflowNotFound
from dizest_api.data.run_index import run_status
from dizest_api.endpoint import LIMIT, OFFSET, Field, endpoint, query_number
from dizest_api.errors import ApiError, BadInput, NotFound
from dizest_api.routes.files import attach, submit_body, user_drive
from dizest_api.routes.health import require_worker
from dizest_api.routes.run_access import index, open_run, snapshot_shown
from dizest_api.routes.run_query import RUN_FILTERS, SHARED, run_page
from dizest_api.routes.run_query import summary as _summary
from dizest_api.routes.run_reads import FLOWS, REPORTS, run_report
from dizest_api.routes.workflows import open_workflow, workflow_title
from dizest_api.schemas import ERR, page_of
from dizest_api.services import services
from dizest_core.errors import DizestError
from dizest_core.options import RUN_OPTIONS
from dizest_core.status import RunStatus
from dizest_worker.keys import Keys

bp = Blueprint("runs", __name__)

OPTIONS_HELP = ", ".join(RUN_OPTIONS)  # dizest_core.options: the one list of run options
SUBMIT = {
    "workflow_id": Field("string", description="a stored workflow (needs the run right)"),
    "version": Field("integer", description="its version (default: the latest)"),
    "package": Field("object", description="an inline .dwp, instead of workflow_id"),
    "inputs": Field("object", description="input values: name or flow.name -> JSON value"),
    "flows": Field("array", items="string", description="target flows (default: all)"),
    "options": Field("object", description=OPTIONS_HELP),
}
IDEMPOTENCY_HEADER = "Idempotency-Key"
KEYED = {IDEMPOTENCY_HEADER: Field("string", minimum=1, maximum=200, description=(
    "start the run once: a later submit with this key (yours) answers 200 with its run"
))}  # fmt: skip


class TooManyRuns(ApiError):
    status, code = 429, "too_many_runs"


class InvalidRun(ApiError):
    status, code = 422, "invalid_run"


def _status(run_id: str) -> str | None:
    return run_status(services().client, run_id)


@contextlib.contextmanager
def within_limit(check: bool | Callable[[], bool] = True) -> Iterator[str]:
    """Around a submit: with the caller's submit lock held, refuse (429) when the caller has
    `max_runs_per_user` unfinished runs, and (413) when the caller's runs hold their storage
    quota (`run_quota`); the body must submit for the account it is given (the caller's name)
    and `claim` its run. `check` may be a function, asked with the lock held: whether the
    limits apply (not to a submit whose idempotency key names a run already)."""
    principal, limit = current(), services().settings.worker.max_runs_per_user
    # Threads of this process queue on a local lock (no polling); only one of them at a time
    # polls the Redis lock that other API processes take too.
    with _LOCAL_LOCKS[principal.username]:
        lock = index().submitting(principal.username)
        if not lock.acquire():  # False after its blocking_timeout
            raise TooManyRuns("another of your submits is still running; retry", {"retry_after": 1})
        try:
            check = check() if callable(check) else check
            if check and index().active(principal.username, _status) >= limit:
                raise TooManyRuns(
                    f"you already have {limit} unfinished run(s)", {"max_runs_per_user": limit}
                )
            if check:
                index().quota.check(principal.username)
            else:  # CREATE checks the quota itself, should the key expire meanwhile
                index().quota.prune(principal.username)
            yield principal.username
        finally:
            with contextlib.suppress(LockError):  # expired (a submit over 30 s): nothing to free
                lock.release()


_LOCAL_LOCKS: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)


@endpoint(bp, "POST", "/runs", "Start a run of a stored workflow or of an inline .dwp",
          body=SUBMIT, headers=KEYED,
          responses={201: "SubmittedRun", 200: "SubmittedRun",  # a known key
                                  413: ERR, 422: ERR, 429: ERR, 503: ERR})  # fmt: skip
def submit_run() -> tuple[Response, int, dict[str, str]]:
    (body, parts), found, principal = submit_body(SUBMIT), services(), current()
    if ("workflow_id" in body) == ("package" in body):
        raise BadInput("give exactly one of workflow_id and package")
    if "version" in body and "workflow_id" not in body:
        raise BadInput("version goes with workflow_id")
    # checked by dizest_core.options with the package's (422 invalid_options, every problem
    # named: an unknown name, a wrong type, a value past the server's bounds)
    options = body.get("options", {})
    wf_id: str | None = body.get("workflow_id")
    version = None
    if wf_id is not None:
        wf = open_workflow(wf_id, "run")
        try:
            _, version, package = found.library.package(wf.id, body.get("version", wf.version))
        except WorkflowNotFound as exc:
            raise NotFound(str(exc)) from None
    else:
        package = body["package"]
    key = request.headers.get(IDEMPOTENCY_HEADER)
    scoped = None
    if key is not None:
        if not key.strip() or len(key) > 200:
            raise BadInput(f"{IDEMPOTENCY_HEADER} must have 1 to 200 characters")
        scoped = f"{principal.username}:{key}"  # one user's key never names another's run

    def seen() -> bool:  # a retry of a submit that made its run: no limit applies again
        idem = Keys(found.settings.worker.prefix).idempotency(scoped) if scoped else None
        return idem is not None and bool(found.redis.exists(idem))

    if not seen():
        require_worker()
    attached, run_id, claimed = attach(parts), None, []

    def own(stored: str) -> None:  # before its flows are sent: its owner sees it at once
        claimed.append(index().claim(stored, principal.username, wf_id, version=version))

    with within_limit(check=lambda: not seen()) as account:
        try:
            run_id = found.client.submit(
                package, body.get("inputs"), body.get("flows"), scoped, options,
                drive=user_drive().path, prepare=attached.prepare if parts else None,
                account=account, stored=own,
            )  # fmt: skip
        except ValueError as exc:  # dizest errors (ValidationError...) go through the table
            if isinstance(exc, (DizestError, LookupError)):
                raise
            raise InvalidRun(str(exc)) from None
        finally:
            attached.settle(run_id)
    created = claimed[0]
    info = index().get(run_id) or {}
    answer = {**_summary(run_id, found.client.record(run_id), info), "version": version}
    location = url_for(".get_run", run_id=run_id)
    return jsonify(answer), 201 if created else 200, {"Location": location}


@endpoint(bp, "GET", "/runs", "Your runs, newest first (admins: all runs), filtered",
          query={**RUN_FILTERS, "shared": SHARED, "offset": OFFSET, "limit": LIMIT},
          responses={200: page_of("ListedRun")})  # fmt: skip
def list_runs() -> Response:
    principal = current()
    offset, limit = query_number("offset", 0, OFFSET), query_number("limit", 50, LIMIT)
    wanted = {k: request.args[k] for k in RUN_FILTERS if request.args.get(k)}
    statuses = [str(s) for s in RunStatus]
    if wanted.get("status", statuses[0]) not in statuses:  # a typo would list nothing, silently
        raise BadInput(
            f"unknown status {wanted['status']!r}; one of {', '.join(statuses)}",
            {"statuses": statuses},
        )
    shared = request.args.get("shared", "")
    if shared not in ("", "0", "1"):
        raise BadInput(f"shared must be 1 or 0, not {shared!r}")
    if shared == "1":  # only the pairs `open_run` lets the caller read: the owner's runs
        pairs = services().library.shared_with(principal.username)
        pager = lambda start, count: index().of_workflows(pairs, start, count)  # noqa: E731
        items, total = run_page(index(), services().client, None, wanted, offset, limit, pager)
        return jsonify({"items": titled(items), "total": total, "offset": offset, "limit": limit})
    owner = None if principal.is_admin else principal.username
    asked = wanted.pop("owner", None)
    if asked is not None and principal.is_admin:
        owner = asked
    elif asked is not None and asked != owner:  # another user's runs: only those `open_run`
        if not _shared_with_caller(wanted.get("workflow_id"), asked):  # lets a grantee read
            return jsonify({"items": [], "total": 0, "offset": offset, "limit": limit})
        owner = asked
    items, total = run_page(index(), services().client, owner, wanted, offset, limit)
    return jsonify({"items": titled(items), "total": total, "offset": offset, "limit": limit})


def titled(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs with their workflows' titles, as the caller may read them (each asked once)."""
    titles = {
        wf_id: workflow_title(wf_id) for wf_id in {i.get("workflow_id") for i in items} if wf_id
    }
    return [{**item, "workflow_title": titles.get(item.get("workflow_id"))} for item in items]


def _shared_with_caller(wf_id: str | None, owner: str) -> bool:
    """Whether `owner`'s runs of `wf_id` are the caller's to read: `owner` owns it and the
    caller holds a grant on it (as `open_run` decides for each of them)."""
    if not wf_id:
        return False
    try:
        return open_workflow(wf_id, "read").owner == owner
    except NotFound:
        return False


@endpoint(bp, "GET", "/runs/usage", "Your runs' bytes in Redis and flow slots, with the limits",
          responses={200: "RunUsage"})  # fmt: skip
def run_usage() -> Response:
    found = index().quota
    return jsonify({**found.usage(current().username), "ttl_s": found.ttl_s})


@endpoint(bp, "GET", "/runs/<run_id>", "The run report (flows=states: the flows' states alone)",
          query=FLOWS, responses={200: REPORTS})  # fmt: skip
def get_run(run_id: str) -> Response:
    return jsonify(run_report(run_id, open_run(run_id)))


@endpoint(bp, "GET", "/runs/<run_id>/dwp", "The .dwp package the run runs (its snapshot)",
          responses={200: "Package"})  # fmt: skip
def get_run_package(run_id: str) -> Response:
    info = open_run(run_id)
    stored = services().client.snapshot_json(run_id)  # as stored: 41 MB at 100,000 flows
    if stored is None:
        raise NotFound(f"run {run_id} expired")
    if b'"password"' in stored:  # else no password field to mask: sent unparsed
        shown = snapshot_shown(info, json.loads(stored))
        return Response(json.dumps(shown), mimetype="application/json")
    return Response(stored, mimetype="application/json")


@endpoint(bp, "POST", "/runs/<run_id>/cancel", "Cancel a run",
          responses={200: "Cancelled"})  # fmt: skip
def cancel_run(run_id: str) -> Response:
    open_run(run_id, "cancel")
    answer = services().client.cancel(run_id)
    return jsonify({"run_id": run_id, "result": answer, "status": _status(run_id)})


@endpoint(bp, "GET", "/runs/<run_id>/flows/<flow_id>/outputs", "A flow's outputs (JSON previews)",
          responses={200: "Outputs"})  # fmt: skip
def get_outputs(run_id: str, flow_id: str) -> Response:
    open_run(run_id)
    return jsonify({"outputs": services().client.outputs(run_id, flow_id)})


@endpoint(bp, "POST", "/runs/<run_id>/flows/<flow_id>/rerun",
          "Run one flow again, reusing the run's upstream outputs",
          responses={201: "Run", 413: ERR, 429: ERR})  # fmt: skip
def rerun_flow(run_id: str, flow_id: str) -> tuple[Response, int, dict[str, str]]:
    info = open_run(run_id, "rerun")
    given_by = info.get("inputs_by") or info.get("owner")  # the inputs stay theirs
    username = current().username
    with within_limit() as account:
        new_id = services().client.rerun(
            run_id,
            flow_id,
            account,
            stored=lambda new: index().claim(
                new,
                username,
                info.get("workflow_id"),
                given_by,
                info.get("version"),
                {"kind": "rerun", "id": run_id},
            ),  # the run's snapshot: its version
            drive=user_drive().path,  # the rerunning user's, not the run owner's
        )
    record = services().client.record(new_id)
    answer = _summary(new_id, record, index().get(new_id) or {})
    return jsonify(answer), 201, {"Location": url_for(".get_run", run_id=new_id)}
