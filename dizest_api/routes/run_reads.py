"""Reading a run: its report, whole or as its flows' states alone, and one flow's part of it.

The whole report (`GET /runs/<id>`) holds every flow's log, results and output previews, folded
from the run's event stream: at 100,000 flows tens of MB, seconds to build and to read. A page
listing a big run's flows reads `?flows=states` instead (each flow's status, reason, index and
duration from the run's flows hash, counts by status, and `last_event_id`: it follows the
run's events after that id), then one flow's part (`GET /runs/<id>/flows/<flow>`) when that flow
is shown. Every read is `open_run`'s to allow.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request

from dizest_api.auth import current
from dizest_api.endpoint import endpoint
from dizest_api.errors import BadInput
from dizest_api.masking import masked
from dizest_api.routes.run_access import open_run, run_rights
from dizest_api.routes.run_query import shown_origin
from dizest_api.routes.workflows import workflow_title
from dizest_api.schemas import ref
from dizest_api.services import services

bp = Blueprint("run_reads", __name__)

FLOW_PARTS = ("states",)  # what `?flows=` may ask for
FLOWS = {
    "flows": "states: the run's record and each flow's state alone (status, reason, index, "
    "duration_s), `counts` of flows by status and `last_event_id` (follow the run's events "
    "after it): no logs, results or outputs, for runs of many flows; any other value: 400"
}
REPORTS = {"anyOf": [ref("RunReport"), ref("RunStates")]}


def run_report(run_id: str, info: dict[str, Any]) -> dict[str, Any]:
    """The report of a run the caller may read (its record `info`), as `?flows=` asks."""
    flows = request.args.get("flows")
    if flows is not None and flows not in FLOW_PARTS:
        raise BadInput(
            f"flows must be one of {', '.join(FLOW_PARTS)}, not {flows!r}",
            {"allowed": list(FLOW_PARTS)},
        )
    client = services().client
    report = client.states(run_id) if flows == "states" else client.get(run_id)
    wf_id = info.get("workflow_id")
    return {**report, **_given(run_id, info), "owner": info.get("owner"), "workflow_id": wf_id,
            "workflow_title": workflow_title(wf_id), "origin": shown_origin(info),
            "rights": run_rights(info)}  # fmt: skip


def _given(run_id: str, info: dict[str, Any]) -> dict[str, Any]:
    """The run's inputs and options, the password values masked for anyone but who gave them."""
    given = {k: json.loads(info.get(k) or "{}") for k in ("inputs", "flow_inputs", "options")}
    mine = (info.get("inputs_by") or info.get("owner")) == current().username
    if not mine and (given["inputs"] or given["flow_inputs"]):  # (the snapshot: 41 MB at 100k)
        snapshot = services().client.snapshot(run_id)
        given["inputs"], given["flow_inputs"] = masked(given["inputs"], given["flow_inputs"], snapshot)  # fmt: skip
    return given


@endpoint(bp, "GET", "/runs/<run_id>/flows/<flow_id>",
          "One flow's part of the run report: its state, log, results and output previews",
          responses={200: "FlowPart"})  # fmt: skip
def get_flow(run_id: str, flow_id: str) -> Response:
    open_run(run_id)
    part = services().client.flow_report(run_id, flow_id)
    return jsonify({"run_id": run_id, "flow_id": flow_id, **part})
