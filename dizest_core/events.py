"""Run events: one shape everywhere (local callbacks, Redis, SSE, WebSocket) and their dispatch.

An event is `{id, run_id, type, flow_id, data, ts}` with DIZEST's types. `id` orders a run's
events (a counter locally, the stream id in Redis). `data` by type:

    workflow.status  {"status": run status}
    flow.status      {"status": flow status, "reason": str | None, "duration_s"?: float}
    flow.index       {"index": int}  (completion order; -1 failed or not run, -2 skipped)
    log.append       {"entry": str | {mime, data}, "stream": "print" | "output" | "engine" | "cache"}
                     ("output": the flow's stdout and stderr, one stream so their order holds)
    log.clear        {}
    result           {"name": str, "value": {mime, data}}

The run's final `workflow.status` is always its last event.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from dizest_core.status import RUN_FINAL_VALUES

log = logging.getLogger("dizest.events")

WORKFLOW_STATUS = "workflow.status"
FLOW_STATUS = "flow.status"
FLOW_INDEX = "flow.index"
LOG_APPEND = "log.append"
LOG_CLEAR = "log.clear"
RESULT = "result"
TYPES = frozenset({WORKFLOW_STATUS, FLOW_STATUS, FLOW_INDEX, LOG_APPEND, LOG_CLEAR, RESULT})
ANY = "*"
WIRE_KEYS = ("id", "run_id", "type", "flow_id", "data", "ts")  # Event's fields, in order


@dataclass(frozen=True)
class Event:
    id: str
    run_id: str
    type: str
    flow_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @cached_property
    def wire(self) -> str:
        """Compact JSON of `to_dict()`, made once per object: one live event goes to every
        stream client of an API process. Built from the fields directly: `asdict` deep-copies
        `data` first, which was most of the CPU an SSE connect spent framing its replay."""
        fields = (self.id, self.run_id, self.type, self.flow_id, self.data, self.ts)
        return json.dumps(dict(zip(WIRE_KEYS, fields, strict=True)), separators=(",", ":"))

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Event:
        return cls(
            str(obj["id"]),
            obj["run_id"],
            obj["type"],
            obj.get("flow_id"),
            dict(obj.get("data") or {}),
            float(obj.get("ts") or 0.0),
        )

    @property
    def final(self) -> bool:
        """True for the run's last event (a workflow.status that ends the run)."""
        return self.type == WORKFLOW_STATUS and self.data.get("status") in RUN_FINAL_VALUES


class EventFactory:
    """Makes a run's events with increasing ids."""

    def __init__(self, run_id: str, start: int = 0) -> None:
        self.run_id = run_id
        self._ids = itertools.count(start + 1)

    def __call__(
        self, type_: str, flow_id: str | None = None, *, stamp: float | None = None, **data: Any
    ) -> Event:
        """The next event; `stamp`: when it happened (default: now)."""
        ts = time.time() if stamp is None else stamp
        return Event(str(next(self._ids)), self.run_id, type_, flow_id, data, ts)


Callback = Callable[[Event], Any]


class Callbacks:
    """Any number of callbacks per event type ("*" for all); one that raises is logged and skipped."""

    def __init__(self) -> None:
        self._by_type: dict[str, list[Callback]] = {}

    def on(self, type_: str, callback: Callback) -> Callback:
        if type_ != ANY and type_ not in TYPES:
            raise ValueError(f"unknown event type {type_!r}; one of {sorted(TYPES)} or '*'")
        self._by_type.setdefault(type_, []).append(callback)
        return callback

    def off(self, type_: str, callback: Callback) -> None:
        self._by_type.get(type_, []).remove(callback)

    def dispatch(self, event: Event) -> None:
        for callback in (*self._by_type.get(event.type, ()), *self._by_type.get(ANY, ())):
            try:
                callback(event)
            except Exception:
                log.exception("event callback %r failed on %s", callback, event.type)
