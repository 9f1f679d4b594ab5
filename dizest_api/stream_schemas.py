"""What the routes that stream a run's events answer, for the OpenAPI document: the SSE
frame (its text and its schema, which schemathesis checks each frame against) and the
WebSocket's upgrade."""

from __future__ import annotations

from dizest_api.schemas import STRING, Body, Schema, ref
from dizest_core.events import TYPES

SSE_FRAME = """\
One frame per event, as the EventSource API reads them:

    id: 1700000000000-0
    event: flow.status
    data: {"id":"1700000000000-0","run_id":"...","type":"flow.status","flow_id":"a",\
"data":{"status":"running","reason":null},"ts":1700000000.5}

`data` is one `Event` (compact JSON, one line); `event` repeats its `type`, `id` its `id`.
A line starting with `:` is a heartbeat comment on a quiet stream. The stream ends after the
run's final `workflow.status` event. Reconnect with `Last-Event-ID` (or `?after=`) to resume
after an event. Event data by type:

- `workflow.status`: `{"status"}` (the run's status)
- `flow.status`: `{"status", "reason", "duration_s"?}`
- `flow.index`: `{"index"}` (completion order; -1 failed or not run, -2 skipped)
- `log.append`: `{"entry": str | {mime, data}, "stream": "print" | "output" | "engine" | "cache"}`
- `log.clear`: `{}`
- `result`: `{"name", "value": {mime, data}}`
"""

# One SSE frame as its fields (what OpenAPI 3.2 calls the stream's item schema; schemathesis
# checks each frame of a text/event-stream answer against it).
SSE_EVENT: Schema = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": STRING,
        "event": {"enum": sorted(TYPES)},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": ref("Event"),
        },
    },
}
EVENTS = {
    200: Body(
        "text/event-stream",
        SSE_EVENT,
        "The run's events as Server-Sent Events, until its final one.\n\n" + SSE_FRAME,
    )
}

WEBSOCKET = """\
A WebSocket upgrade (101): the same events as the SSE route, one `Event` JSON per text message,
closed after the final `workflow.status`. With a session cookie the Origin must be this server's
(or an allowed origin). Resume with `?after=<event id>`."""
