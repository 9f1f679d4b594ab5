"""Schedules over HTTP: a workflow's cron schedules, run as their owner (see
`dizest_api.automation.schedules`).

Who may do what: making a schedule needs the run right on the workflow; a schedule is read,
changed and deleted by its owner (and admins). A workflow's list shows the caller's own
schedules, all of them to the workflow's owner and admins.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from dizest_api.auth import current
from dizest_api.automation.schedules import Schedule, ScheduleNotFound
from dizest_api.automation.service import automation
from dizest_api.data.library import WorkflowNotFound
from dizest_api.endpoint import Field, endpoint, json_body, query_number
from dizest_api.errors import NotFound
from dizest_api.masking import masked_joined
from dizest_api.routes.runs import OPTIONS_HELP
from dizest_api.routes.workflows import made_while_allowed, open_workflow, workflow_title
from dizest_api.schemas import ERR, items_of
from dizest_api.services import services
from dizest_core import dwp, limits, run_inputs
from dizest_worker.client import check_run_options

bp = Blueprint("schedules", __name__)

FIELDS = {
    "cron": Field("string", description="5 fields (minute hour day month weekday) or @daily..."),
    "timezone": Field("string", description="IANA time zone, e.g. Europe/Paris (default UTC)"),
    "inputs": Field("object", description="run inputs: name or flow.name -> JSON value"),
    "options": Field("object", description=OPTIONS_HELP),
    "enabled": Field("boolean", description="default true"),
    "catchup": Field("string", description="a tick missed while no beat ran: once | skip"),
}
NEW = {**FIELDS, "cron": Field("string", True, description=FIELDS["cron"].description)}
HISTORY = {"limit": Field("integer", description="history records (1 to 100, default 20)",
                          minimum=1, maximum=100)}  # fmt: skip


def _checked(body: dict[str, Any]) -> dict[str, Any]:
    """Options and inputs as a submit would check them (types, size, then the bounds a submit
    enforces): nothing a tick's submit would refuse is ever stored."""
    engine = services().settings.worker.engine
    budget = limits.Budget.of(engine)
    if "options" in body:
        limits.check_inputs(body["options"], engine, "option", budget)
        check_run_options(body["options"], services().settings.worker)
    if "inputs" in body:
        limits.check_inputs(body["inputs"], engine, "input", budget)
    return body


def _read(inputs: dict[str, Any] | None, wf_id: str) -> None:
    """Inputs a flow of the workflow's latest version reads, as its ticks' submits check them
    (`dizest_core.run_inputs`, 400 `unknown_input`): a typo is refused now, not at each tick."""
    if not inputs:
        return
    try:
        raw = services().library.package(wf_id)[2]
    except WorkflowNotFound:
        raise NotFound(f"no workflow {wf_id!r}") from None
    run_inputs.check(inputs, dwp.load(raw, extra_apps=services().plugins.apps()))


def open_schedule(sid: str, workflow_owner: bool = False) -> Schedule:
    """The schedule, if the caller owns it or is an admin (or, with `workflow_owner`, owns its
    workflow: to see and delete a grantee's schedules, which count against her workflow's
    places); else 404."""
    try:
        sched = automation().schedules.get(sid)
    except ScheduleNotFound:
        raise NotFound(f"no schedule {sid!r}") from None
    principal = current()
    if principal.is_admin or sched.owner == principal.username:
        return sched
    if workflow_owner:
        with contextlib.suppress(WorkflowNotFound):
            if services().library.get(sched.workflow_id).owner == principal.username:
                return sched
    raise NotFound(f"no schedule {sid!r}")


@dataclass
class _Read:
    """What one request read of the schedules' workflows: each one's latest package and
    title, once."""

    packages: dict[str, Any] = field(default_factory=dict)
    titles: dict[str, str | None] = field(default_factory=dict)


def _out(sched: Schedule, read: _Read | None = None) -> dict[str, Any]:
    """A schedule as its caller may see it: its workflow's title where the caller may read it
    (`workflow_title`), and the values its owner gave password inputs masked for anyone else
    (the workflow's owner, an admin), as in the runs it makes."""
    read = read or _Read()
    wf_id = sched.workflow_id
    out = sched.to_dict(automation().celery)
    if wf_id not in read.titles:
        read.titles[wf_id] = workflow_title(wf_id)
    out["workflow_title"] = read.titles[wf_id]
    if sched.owner != current().username and sched.inputs:
        if wf_id not in read.packages:
            try:
                read.packages[wf_id] = services().library.package(wf_id)[2]
            except WorkflowNotFound:  # gone: every value masked
                read.packages[wf_id] = None
        out["inputs"] = masked_joined(sched.inputs, read.packages[wf_id])
    return out


@endpoint(bp, "POST", "/workflows/<wf_id>/schedules",
          "Run a workflow on a cron schedule, as you (needs the run right)", body=NEW,
          responses={201: "Schedule", 422: ERR})  # fmt: skip
def create_schedule(wf_id: str) -> tuple[Response, int, dict[str, str]]:
    body = _checked(json_body(NEW))
    wf = open_workflow(wf_id, "run")
    _read(body.get("inputs"), wf.id)
    sched = automation().schedules.create(current().username, wf.id, **body)
    made_while_allowed(wf.id, "run", lambda: automation().schedules.delete(sched.id))
    return jsonify(_out(sched)), 201, {"Location": url_for(".get_schedule", sid=sched.id)}


@endpoint(bp, "GET", "/workflows/<wf_id>/schedules", "A workflow's schedules",
          responses={200: items_of("Schedule")})  # fmt: skip
def workflow_schedules(wf_id: str) -> Response:
    wf, principal = open_workflow(wf_id, "read"), current()
    everyone = principal.is_admin or wf.owner == principal.username
    found = automation().schedules.find(None if everyone else principal.username, wf.id)
    read = _Read()
    return jsonify({"items": [_out(s, read) for s in found]})


@endpoint(bp, "GET", "/schedules", "Your schedules (admins: all), newest first",
          query={"workflow_id": "only this workflow's"},
          responses={200: items_of("Schedule")})  # fmt: skip
def list_schedules() -> Response:
    principal = current()
    owner = None if principal.is_admin else principal.username
    found = automation().schedules.find(owner, request.args.get("workflow_id") or None)
    read = _Read()
    return jsonify({"items": [_out(s, read) for s in found]})


@endpoint(bp, "GET", "/schedules/<sid>", "A schedule with its latest ticks", query=HISTORY,
          responses={200: "ScheduleHistory"})  # fmt: skip
def get_schedule(sid: str) -> Response:
    sched = open_schedule(sid, workflow_owner=True)
    history = automation().schedules.history(sid, query_number("limit", 20, HISTORY["limit"]))
    return jsonify({**_out(sched), "history": history})


@endpoint(bp, "PATCH", "/schedules/<sid>",
          "Change a schedule (cron, zone, inputs, options, catchup) or enable/disable it",
          body=FIELDS,
          responses={200: "Schedule", 422: ERR})  # fmt: skip
def update_schedule(sid: str) -> Response:
    body = _checked(json_body(FIELDS))
    sched = open_schedule(sid)
    if body.get("enabled") and not sched.enabled:
        open_workflow(sched.workflow_id, "run")  # re-enabling needs the right to run it still
    _read(body.get("inputs"), sched.workflow_id)
    return jsonify(_out(automation().schedules.update(sid, body)))


@endpoint(bp, "DELETE", "/schedules/<sid>", "Delete a schedule (yours, or any on a workflow of "
          "yours)", responses={204: None})  # fmt: skip
def delete_schedule(sid: str) -> Response:
    open_schedule(sid, workflow_owner=True)
    automation().schedules.delete(sid)
    return Response(status=204)
