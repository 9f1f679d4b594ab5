"""The API's answer shapes: the OpenAPI components routes name in their `responses=`.

A route says what it answers next to its `@endpoint` (`responses={201: "Token", 204: None}`);
the names here are the only place each shape is written down, and `tests/api/test_fuzz.py`
checks real answers against them. Fields every answer has are `required`; objects stay open to
new fields (a field added to an answer is not a breaking change), except `Error`, whose shape is
the one error table's (`dizest_api.errors`).

Also here: the run event (`Event`), which the SSE and WebSocket routes carry one per frame or
message, and `SSE_FRAME`, the text of one Server-Sent Events frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dizest_core.events import TYPES

Schema = dict[str, Any]
ERR = "Error"  # an error answer a route names beyond those `openapi` adds itself

STRING: Schema = {"type": "string"}
NUMBER: Schema = {"type": "number"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
OBJECT: Schema = {"type": "object"}
ANY_JSON: Schema = {}


@dataclass(frozen=True)
class Body:
    """A declared answer that is not (only) one JSON component: its media type(s), each with a
    schema (a component name or a schema); None: any JSON for JSON types, else any bytes."""

    media: str | tuple[str, ...] | Mapping[str, str | Schema | None]
    schema: str | Schema | None = None
    description: str = ""

    def content(self) -> dict[str, str | Schema | None]:
        if isinstance(self.media, Mapping):
            return dict(self.media)
        media = (self.media,) if isinstance(self.media, str) else self.media
        return {m: self.schema for m in media}


# What a route's `responses=` maps a status to: a component name, a schema, a Body, or None
# (an answer without a body, e.g. 204).
Reply = str | Schema | Body | None


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """`schema` or null (OpenAPI 3.1: JSON Schema's type list)."""
    return {"anyOf": [schema, {"type": "null"}]}


def obj(doc: str = "", /, **props: Schema) -> Schema:
    """An object whose `props` are all present (values may still be null where they say so)."""
    out: Schema = {"type": "object", "required": sorted(props), "properties": props}
    return out | ({"description": doc} if doc else {})


def extend(base: str, doc: str = "", /, **props: Schema) -> Schema:
    """Component `base` with more required fields."""
    return {"allOf": [ref(base), obj(doc, **props)]}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def items_of(name: str) -> Schema:
    """`{"items": [name...]}`: an unpaginated listing."""
    return obj(items=array(ref(name)))


def page_of(name: str) -> Schema:
    """A paginated listing of `name`."""
    return obj(items=array(ref(name)), total=INTEGER, offset=INTEGER, limit=INTEGER)


def map_of(schema: Schema) -> Schema:
    return {"type": "object", "additionalProperties": schema}


TIME = {**NUMBER, "description": "seconds since the epoch"}
MAYBE_STRING = nullable(STRING)
# what started a run, where a run is answered (lists, its report)
ORIGIN: Schema = {
    **nullable(obj(kind={"enum": ["schedule", "trigger", "rerun"]}, id=MAYBE_STRING)),
    "description": "what started it (null: its owner's submit): a schedule, a trigger or a "
    "rerun, by the schedule's, trigger's or rerun run's id (null but to the run's owner and "
    "admins)",
}
WORKFLOW_TITLE = {**MAYBE_STRING, "description": "its workflow's title, if you may read it"}
RIGHTS = {"enum": ["read", "run", "write", "share", "delete"], "description": "by grant"}
WORKFLOW_RIGHTS = {**array(RIGHTS), "description": "what the caller may do with it"}
MAYBE_TIME = nullable(TIME)
ISO_TIME = nullable({"type": "string", "format": "date-time"})
RUN_STATUS = {**STRING, "description": "pending, running, ready (done), error, cancelled..."}

_ERROR_BODY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["code", "message", "details"],
    "properties": {
        "code": {**STRING, "description": "stable, for programs: not_found, bad_request..."},
        "message": {**STRING, "description": "for people"},
        "details": {"description": "what the code needs to be acted on (or null)"},
    },
}

COMPONENTS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "additionalProperties": False,
        "required": ["error"],
        "properties": {"error": _ERROR_BODY},
    },
    "Status": obj(status=STRING),
    "Ready": obj(
        status={"const": "ready"},
        workers=array(STRING),
        sandbox=map_of(map_of({"enum": ["active", "missing"]})),
    ),
    "Worker": obj(
        "A live worker: what it says of itself with its beat (null: a worker that did not)",
        name=STRING,
        host=MAYBE_STRING,
        pid={**nullable(INTEGER), "description": "its main process"},
        version={**MAYBE_STRING, "description": "its dizest version"},
        queues=nullable(array(STRING)),
        started_at=MAYBE_TIME,
        last_beat_s={**NUMBER, "description": "seconds since its last beat (live: under 5)"},
        slots={**INTEGER, "description": "flows it runs at once (0: not known yet)"},
        running={**INTEGER, "description": "flows its processes run now"},
        flows=array(obj(run_id=STRING, flow_id=STRING, attempt=INTEGER)),
        load={**nullable(array(NUMBER)), "description": "its machine's load average, 1/5/15 min"},
        memory={
            **nullable(obj(available=INTEGER, total=INTEGER)),
            "description": "its machine's memory, bytes (sampled every 5 s, as load and disk)",
        },
        disk={
            **nullable(map_of(nullable(obj(free=INTEGER, total=INTEGER)))),
            "description": "bytes on the file systems of its artifacts and runs directories",
        },
        sandbox={**map_of(STRING), "description": "flow sandbox layer -> active, or why not"},
    ),
    # accounts
    "User": obj(username=STRING, role={"enum": ["admin", "user"]}, created_at=TIME),
    "Login": obj(user=ref("User"), csrf_token=STRING),
    "Me": obj(user=ref("User"), via={"enum": ["token", "session"]}, scopes=array(STRING)),
    "Token": obj(
        "An API token (never its secret)",
        id=STRING,
        owner=STRING,
        name=STRING,
        scopes=array({"enum": ["read", "run", "admin"]}),
        created_at=TIME,
        expires_at=MAYBE_TIME,
    ),
    "NewToken": extend("Token", token={**STRING, "description": "the secret, shown this once"}),
    # workflows
    "Workflow": obj(
        id=STRING, owner=STRING, title=STRING, version=INTEGER, created_at=TIME, updated_at=TIME
    ),
    "ListedWorkflow": extend("Workflow", rights=WORKFLOW_RIGHTS),
    "SavedWorkflow": extend(
        "Workflow",
        "A workflow as a save left it",
        stored={**BOOLEAN, "description": "false: the package was the latest version's"},
        warnings=array({**OBJECT, "description": "what is wrong but stored all the same"}),
    ),
    "WorkflowVersion": extend(
        "Workflow",
        "A workflow with the package of one version",
        latest_version=INTEGER,
        package={**OBJECT, "description": "the .dwp object"},
        rights=WORKFLOW_RIGHTS,
    ),
    "Validation": obj(
        valid={**BOOLEAN, "description": "no problem is an error (warnings may remain)"},
        problems=array({**OBJECT, "description": "severity, message, and the flow/app/field"}),
    ),
    "Package": {**OBJECT, "description": "a .dwp object (apps, flow...)"},
    "Grants": obj(grants=map_of({"enum": ["viewer", "runner", "editor"]})),
    "LibraryUsage": obj(
        workflows=INTEGER,
        max_workflows=INTEGER,
        bytes=INTEGER,
        quota_bytes=INTEGER,
        versions_kept=INTEGER,
    ),
    "RunUsage": obj(
        bytes={**INTEGER, "description": "what your live runs wrote to Redis"},
        quota_bytes=INTEGER,
        ttl_s={**INTEGER, "description": "a run's bytes are freed this long after it started"},
        flows_running={**INTEGER, "description": "flow slots your runs' flows hold now"},
        flows_parked={**INTEGER, "description": "your flows waiting for one of your slots"},
        flow_slots={
            **INTEGER,
            "description": "a hard cap on the flows your runs run at once, above your fair "
            "share of the cluster's worker slots (0: none, the share alone)",
        },
    ),
    "App": obj(
        id=STRING,
        title=STRING,
        plugin=STRING,
        inputs=array(OBJECT),
        outputs=array(STRING),
    ),
    "AppDetail": obj(
        id=STRING,
        title=STRING,
        description=STRING,
        code=STRING,
        inputs=array(OBJECT),
        outputs=array(STRING),
        plugin=obj(name=STRING, title=STRING, version=STRING),
    ),
    # runs
    "Run": obj(
        "A run as lists show it",
        run_id=STRING,
        status=nullable(RUN_STATUS),
        created_at=MAYBE_TIME,
        finished_at=MAYBE_TIME,
        owner=MAYBE_STRING,
        workflow_id=MAYBE_STRING,
        version={**nullable(INTEGER), "description": "the workflow's version it runs"},
        origin=ORIGIN,
    ),
    "SubmittedRun": extend("Run"),
    "ListedRun": extend("Run", workflow_title=WORKFLOW_TITLE),
    "FlowState": obj(
        status=STRING,
        reason=MAYBE_STRING,
        index={**INTEGER, "description": "completion order; -1 failed or not run, -2 skipped"},
        duration_s=nullable(NUMBER),
    ),
    "FlowReport": extend(
        "FlowState",
        outputs={**OBJECT, "description": "output name -> JSON preview"},
        log=array(ANY_JSON),
        results=array(ANY_JSON),
    ),
    "RunReport": obj(
        "The run report: every flow's status, log, results and output previews",
        run_id=STRING,
        status=RUN_STATUS,
        started_at=ISO_TIME,
        finished_at=ISO_TIME,
        flows=map_of(ref("FlowReport")),
        inputs=OBJECT,
        flow_inputs=OBJECT,
        options=OBJECT,
        owner=MAYBE_STRING,
        workflow_id=MAYBE_STRING,
        workflow_title=WORKFLOW_TITLE,
        origin=ORIGIN,
        rights=array(
            {
                "enum": ["read", "rerun", "cancel"],
                "description": "what the caller may do with it (by grant)",
            }
        ),
    ),
    "RunStates": obj(
        "The run report without logs, results or outputs (GET /runs/{run_id}?flows=states)",
        run_id=STRING,
        status=RUN_STATUS,
        flows=map_of(ref("FlowState")),
        counts={**map_of(INTEGER), "description": "status -> how many flows have it"},
        last_event_id={**MAYBE_STRING, "description": "the run's newest event: follow after it"},
        inputs=OBJECT,
        flow_inputs=OBJECT,
        options=OBJECT,
        owner=MAYBE_STRING,
        workflow_id=MAYBE_STRING,
        workflow_title=WORKFLOW_TITLE,
        rights=array({"enum": ["read", "rerun", "cancel"]}),
    ),
    "FlowPart": extend(
        "FlowReport",
        "One flow's part of the run report",
        run_id=STRING,
        flow_id=STRING,
        last_event_id={**MAYBE_STRING, "description": "the newest event this part holds"},
    ),
    "Cancelled": obj(run_id=STRING, result=STRING, status=nullable(RUN_STATUS)),
    "Outputs": obj(outputs={**OBJECT, "description": "output name -> JSON preview"}),
    "Event": obj(
        "One run event: one SSE frame's data, one WebSocket text message",
        id={**STRING, "description": "orders the run's events; resume after it"},
        run_id=STRING,
        type={"enum": sorted(TYPES)},
        flow_id=MAYBE_STRING,
        data={**OBJECT, "description": "by type; see the SSE operation"},
        ts=TIME,
    ),
    "WorkflowSpec": obj(
        "What the DIZEST-compatible routes take and give for a workflow",
        workflow_id=STRING,
        version={**INTEGER, "description": "the version they run: the latest"},
        inputs=map_of({**array(STRING), "description": "the run inputs (flow.name) it fills"}),
        outputs=map_of({**array(STRING), "description": "the flow's final outputs"}),
    ),
    "CompatResult": obj(
        run_id=STRING, status=STRING, outputs=map_of({**OBJECT, "description": "output -> value"})
    ),
    # files
    "DriveEntry": obj(
        name=STRING,
        path=STRING,
        type={"enum": ["file", "directory"]},
        size=nullable(INTEGER),
        modified=TIME,
    ),
    # files: files and folders; attached_*: of the totals, what files attached to live runs hold
    "Usage": obj(
        bytes=INTEGER,
        files=INTEGER,
        quota_bytes=INTEGER,
        quota_files=INTEGER,
        attached_bytes=INTEGER,
        attached_files=INTEGER,
    ),
    "Listing": obj(
        path=STRING, items=array(ref("DriveEntry")), truncated=BOOLEAN, usage=ref("Usage")
    ),
    "Uploaded": obj(items=array(ref("DriveEntry")), usage=ref("Usage")),
    # automation
    "Schedule": obj(
        id=STRING,
        workflow_id=STRING,
        owner=STRING,
        cron=STRING,
        timezone=STRING,
        inputs=OBJECT,
        options=OBJECT,
        enabled=BOOLEAN,
        catchup={"enum": ["once", "skip"]},
        created_at=TIME,
        updated_at=TIME,
        workflow_title=WORKFLOW_TITLE,
    ),
    "ScheduleHistory": extend("Schedule", history=array(OBJECT)),
    "Hook": obj(id=STRING, url=STRING, owner=STRING, workflow_id=MAYBE_STRING, created_at=TIME),
    "NewHook": extend("Hook", secret={**STRING, "description": "HMAC key, shown this once"}),
    "HookDeliveries": extend("Hook", deliveries=array(OBJECT)),
    "Trigger": obj(
        id=STRING, workflow_id=STRING, owner=STRING, rate_per_min=INTEGER, created_at=TIME
    ),
    "NewTrigger": extend(
        "Trigger",
        secret={**STRING, "description": "shown this once"},
        url={**STRING, "description": "POST here to start a run"},
    ),
    "TriggeredRun": obj(run_id=STRING, workflow_id=STRING, version=INTEGER, trigger_id=STRING),
}
