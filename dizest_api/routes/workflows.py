"""Stored workflows over HTTP: CRUD with versions, .dwp download, and grants.

Bodies: POST and PUT take `{"title": str, "package": {...the .dwp object...}}` (an envelope, so the
package itself stays exactly what DIZEST writes). Who may do what (`open_workflow`):
owner and admin: everything; editor: read + run + write; runner: read + run; viewer: read. A caller
with no right at all gets 404, as for a workflow that does not exist; one who may read but not
do the thing asked gets 403.

Limits per owner (`dizest_api.data.library_quota`, GET /workflows/usage): 422 `quota_workflows`
past DIZEST_MAX_WORKFLOWS_PER_USER workflows, 413 `quota_bytes` past DIZEST_LIBRARY_QUOTA_BYTES
of kept versions; a save keeps the last DIZEST_WORKFLOW_VERSIONS_KEPT versions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from dizest_api.auth import current
from dizest_api.automation.service import automation, drop_made_by
from dizest_api.data.accounts import UserNotFound
from dizest_api.data.library import StoredWorkflow, WorkflowNotFound
from dizest_api.endpoint import LIMIT, OFFSET, Field, endpoint, json_body, query_number
from dizest_api.errors import BadInput, Forbidden, NotFound
from dizest_api.import_check import missing_modules
from dizest_api.masking import stored_masked
from dizest_api.routes.files import workflow_body
from dizest_api.routes.packages import live_environments
from dizest_api.schemas import ERR, Body, page_of
from dizest_api.services import services

bp = Blueprint("workflows", __name__)

RIGHTS = {
    "viewer": frozenset({"read"}),
    "runner": frozenset({"read", "run"}),
    "editor": frozenset({"read", "run", "write"}),
}
NEW = {"title": Field("string"), "package": Field("object", True, description="the .dwp object")}
REPLACE = {
    "title": Field("string"),
    "package": Field("object", True),
    "base_version": Field(
        "integer",
        description="the version this edit started from: 409 if it is no longer the latest",
    ),
}
CHECK = {"package": Field("object", True, description="the .dwp object to check")}
GRANTS = {"grants": Field("object", True, description="username -> viewer|runner|editor")}
VERSION = {"version": Field("integer", description="a version number (default: the latest)",
                          minimum=1)}  # fmt: skip


OWNER_RIGHTS = ("read", "run", "write", "share", "delete")


def rights_on(wf: StoredWorkflow) -> list[str]:
    """What the caller may do with `wf` (the console offers only those actions): by its grant,
    and only reading with a credential that lacks the run scope (every change needs it)."""
    principal = current()
    if principal.is_admin or wf.owner == principal.username:
        held: frozenset[str] = frozenset(OWNER_RIGHTS)
    else:
        level = services().library.level(wf, principal.username)
        held = RIGHTS[level] if level is not None else frozenset()
    if "run" not in principal.scopes:
        held = held & {"read"}
    return [r for r in OWNER_RIGHTS if r in held]


def open_workflow(wf_id: str, right: str) -> StoredWorkflow:
    """The workflow, if the caller holds `right` (read, run, write, share or delete) on it."""
    principal, library = current(), services().library
    try:
        wf = library.get(wf_id)
    except WorkflowNotFound:
        raise NotFound(f"no workflow {wf_id!r}") from None
    if principal.is_admin or wf.owner == principal.username:
        return wf
    level = library.level(wf, principal.username)
    if level is None:
        raise NotFound(f"no workflow {wf_id!r}")
    if right not in RIGHTS[level]:
        raise Forbidden(f"your {level} grant does not allow {right}")
    return wf


def shown_to_caller(wf: StoredWorkflow, package: Any) -> Any:
    """A package of `wf` as the caller may read it: with the values its flows store in password
    fields masked unless the caller may write it (its owner, an admin, an editor: whatever
    their credential's scopes, so an owner's read-only token still backs it up whole)."""
    principal = current()
    if principal.is_admin or wf.owner == principal.username:
        return package
    level = services().library.level(wf, principal.username)
    return package if level is not None and "write" in RIGHTS[level] else stored_masked(package)


def workflow_title(wf_id: str | None) -> str | None:
    """The workflow's title, if the caller may read it (else None: a run's reader who lost the
    workflow's grant, or a deleted workflow, is not told what it is called now)."""
    if not wf_id:
        return None
    try:
        return open_workflow(wf_id, "read").title
    except (NotFound, Forbidden):
        return None


def made_while_allowed(wf_id: str, right: str, undo: Callable[[], None]) -> None:
    """After storing something that needs `right` on the workflow (a schedule, a trigger, a
    workflow webhook): if the right went meanwhile, undo it and refuse. A revoke writes the
    grants, then deletes what the grantee made; a request that passed `open_workflow` before
    the revoke and stored its thing after the deletion would leave it in place (a probe's
    schedule survived 1 time in 20). Checked again after the store, one of the two always
    sees the other."""
    try:
        open_workflow(wf_id, right)
    except (NotFound, Forbidden):
        undo()
        raise


@endpoint(bp, "GET", "/workflows", "Workflows you own or were granted, newest first",
          query={"title": "title substring", "offset": OFFSET, "limit": LIMIT},
          responses={200: page_of("ListedWorkflow")})  # fmt: skip
def list_workflows() -> Response:
    principal = current()
    offset, limit = query_number("offset", 0, OFFSET), query_number("limit", 50, LIMIT)
    owner = None if principal.is_admin else principal.username
    page = services().library.visible(owner, request.args.get("title", ""), offset, limit)
    items = [{**wf.to_dict(), "rights": rights_on(wf)} for wf in page.items]  # what to offer
    return jsonify({"items": items, "total": page.total, "offset": offset, "limit": limit})


@endpoint(bp, "POST", "/workflows", "Store a validated .dwp as a new workflow: the envelope, "
          "the .dwp itself (JSON) or a .dwp file (multipart)", body=NEW,
          query={"title": "the title of a bare .dwp (default: its file name)"},
          responses={201: "SavedWorkflow", 422: ERR})  # fmt: skip
def create_workflow() -> tuple[Response, int, dict[str, str]]:
    body = workflow_body(NEW)
    saved = services().library.create(
        current().username, body.get("title", "Untitled"), body["package"]
    )
    where = url_for(".get_workflow", wf_id=saved.workflow.id)
    return jsonify(saved.to_dict()), 201, {"Location": where}


@endpoint(bp, "GET", "/workflows/usage", "What your stored workflows hold against your limits "
          "(workflows owned, bytes of every kept version, versions kept per workflow)",
          responses={200: "LibraryUsage"})  # fmt: skip
def library_usage() -> Response:
    return jsonify(services().library.usage(current().username))


@endpoint(bp, "GET", "/workflows/<wf_id>", "A workflow with its package", query=VERSION,
          responses={200: "WorkflowVersion"})  # fmt: skip
def get_workflow(wf_id: str) -> Response:
    wf, number, package = _version(open_workflow(wf_id, "read"))
    rights = rights_on(wf)
    package = shown_to_caller(wf, package)
    return jsonify(
        {**wf.to_dict(), "latest_version": wf.version, "version": number, "package": package,
         "rights": rights}
    )  # fmt: skip


@endpoint(bp, "PUT", "/workflows/<wf_id>", "Store a new version (editors), none when the package "
          "is the latest version's (stored: false); with base_version, 409 version_conflict "
          "when someone saved a newer one since", body=REPLACE,
          responses={200: "SavedWorkflow", 409: ERR, 422: ERR})  # fmt: skip
def replace_workflow(wf_id: str) -> Response:
    body = json_body(REPLACE)
    open_workflow(wf_id, "write")
    saved = services().library.replace(
        wf_id, body["package"], body.get("title"), body.get("base_version")
    )
    return jsonify(saved.to_dict())


@endpoint(bp, "POST", "/workflows/validate", "Every problem of a .dwp (errors and warnings, "
          "naming flow, app and field), without storing it", body=CHECK, scope="read",
          responses={200: "Validation"})  # fmt: skip
def validate_workflow() -> Response:
    package = json_body(CHECK)["package"]
    problems = services().library.problems(package)
    problems += missing_modules(package, live_environments())
    items = [p.to_dict() for p in problems]
    return jsonify({"valid": not any(p.severity == "error" for p in problems), "problems": items})


@endpoint(bp, "DELETE", "/workflows/<wf_id>", "Delete a workflow and all its versions, with "
          "its schedules, triggers and workflow hooks", responses={204: None})  # fmt: skip
def delete_workflow(wf_id: str) -> Response:
    open_workflow(wf_id, "delete")
    services().library.delete(wf_id)
    found = automation()  # what would otherwise fire (or list) for a workflow that is gone
    found.schedules.delete_for_workflow(wf_id)
    found.triggers.delete_for_workflow(wf_id)
    found.hooks.delete_for_workflow(wf_id)
    return Response(status=204)


@endpoint(bp, "GET", "/workflows/<wf_id>/dwp", "Download the .dwp file", query=VERSION,
          responses={200: Body("application/json", "Package", "the .dwp file (an attachment)")})  # fmt: skip
def download_workflow(wf_id: str) -> Response:
    wf, number, package = _version(open_workflow(wf_id, "read"))
    package = shown_to_caller(wf, package)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", wf.title).strip("_") or wf.id
    return Response(
        json.dumps(package, ensure_ascii=False, indent=1),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}.v{number}.dwp"'},
    )


@endpoint(bp, "GET", "/workflows/<wf_id>/grants", "Who else may use a workflow",
          responses={200: "Grants"})  # fmt: skip
def get_grants(wf_id: str) -> Response:
    open_workflow(wf_id, "read")
    return jsonify({"grants": services().library.grants(wf_id)})


@endpoint(
    bp,
    "PUT",
    "/workflows/<wf_id>/grants",
    "Replace the grants (owner or admin)",
    body=GRANTS,
    responses={200: "Grants"},
)
def set_grants(wf_id: str) -> Response:
    body, found = json_body(GRANTS), services()
    open_workflow(wf_id, "share")
    unknown = []
    for username in body["grants"]:
        try:
            found.accounts.get_user(username)
        except UserNotFound:
            unknown.append(username)
    if unknown:
        raise BadInput(f"unknown user(s): {', '.join(sorted(unknown))}", {"unknown_users": unknown})
    before = found.library.grants(wf_id)
    granted = found.library.set_grants(wf_id, body["grants"])
    # a grantee who may no longer run it loses what they made on it (schedules, triggers, hooks)
    lost = {u for u, level in before.items() if level != "viewer"} - {
        u for u, level in granted.items() if level != "viewer"
    }
    if lost:
        drop_made_by(automation(), wf_id, lost)
    return jsonify({"grants": granted})


def _version(wf: StoredWorkflow) -> tuple[StoredWorkflow, int, object]:
    version = query_number("version", wf.version, VERSION["version"])
    try:
        return services().library.package(wf.id, version)
    except WorkflowNotFound as exc:
        raise NotFound(str(exc)) from None
