"""Who may see a run, and do what with it.

Its owner (who submitted it), admins, and, through a grant on the run's stored workflow, users
the workflow's owner shared it with, for the runs of that owner only: a grant shares a workflow
with its owner's results, never one grantee's runs (their inputs and outputs) with another.
Such a grantee may read (report, outputs, events) with any grant, rerun with the run right and
cancel with the write right (editor). Anyone else gets 404, as for a run that does not exist. A
run submitted outside the API (no owner) is visible to admins only.

Who owns which run is kept by `dizest_api.data.run_index.RunIndex`.
"""

from __future__ import annotations

from typing import Any

from dizest_api.auth import current
from dizest_api.data.library import WorkflowNotFound
from dizest_api.data.run_index import RunIndex
from dizest_api.errors import NotFound
from dizest_api.masking import stored_masked
from dizest_api.routes.workflows import open_workflow, rights_on, shown_to_caller
from dizest_api.services import services

RUN_RIGHTS = {"read": "read", "rerun": "run", "cancel": "write"}  # on the run's workflow


def index() -> RunIndex:
    return services().run_index


def open_run(run_id: str, right: str = "read") -> dict[str, Any]:
    """The run's record, if the caller may `right` (read, rerun or cancel) it; else 404 (or 403
    for a grantee whose grant does not allow it)."""
    return run_allowed(run_id, services().client.record(run_id), right)


def run_allowed(run_id: str, record: dict[str, str] | None, right: str = "read") -> dict[str, Any]:
    """`open_run` on the run's record read already (None: there is none)."""
    if record is None:
        raise NotFound(f"no run {run_id!r}")
    principal, info = current(), index().get(run_id) or {}
    if principal.is_admin or info.get("owner") == principal.username:
        return {**record, **info}
    wf_id = info.get("workflow_id")
    try:
        wf = open_workflow(wf_id, "read") if wf_id else None
    except NotFound:
        wf = None
    if wf is None or info.get("owner") != wf.owner:
        raise NotFound(f"no run {run_id!r}")
    open_workflow(wf.id, RUN_RIGHTS[right])
    return {**record, **info}


def run_rights(info: dict[str, Any]) -> list[str]:
    """What the caller may do with a run it may read (`open_run`'s rule, for each right)."""
    principal = current()
    if "run" not in principal.scopes:  # a read-only token: rerun and cancel need the run scope
        return ["read"]
    if principal.is_admin or info.get("owner") == principal.username:
        return list(RUN_RIGHTS)
    try:
        held = rights_on(services().library.get(info.get("workflow_id") or ""))
    except WorkflowNotFound:  # deleted since `open_run` let the caller in
        held = []
    return [right for right, needs in RUN_RIGHTS.items() if needs in held]


def snapshot_shown(info: dict[str, Any], package: Any) -> Any:
    """A run's package snapshot as the caller may read it (`shown_to_caller` for its workflow);
    of a run of no stored workflow, as its owner gave it to its owner and admins, masked for
    anyone else; of a workflow deleted since, whole to admins alone: its stored values were
    its writers', and the run's owner may be a runner of it, to whom they were masked (a
    runner's own run read them whole once its workflow was deleted: the probe's find)."""
    principal = current()
    try:
        wf = services().library.get(info.get("workflow_id") or "")
    except WorkflowNotFound:
        given = not info.get("workflow_id") and info.get("owner") == principal.username
        return package if principal.is_admin or given else stored_masked(package)
    return shown_to_caller(wf, package)
