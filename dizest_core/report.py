"""The run report: the document `dizest run --json` prints and the API serves, built from events.

Applying a run's events in order yields the report, so every runner (local or distributed) and
every reader of an event stream builds the same document. Output values come from the store's
JSON previews when the report is rendered. Logs keep the last `max_log_entries` entries.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from dizest_core import events as ev
from dizest_core.events import Event


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


class ReportBuilder:
    """Folds a run's events into the run report."""

    def __init__(self, run_id: str, flow_ids: Iterable[str], max_log_entries: int = 1000) -> None:
        self.run_id = run_id
        self.status = "pending"
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.max_log_entries = max_log_entries
        self.flows: dict[str, dict[str, Any]] = {f: self._blank() for f in flow_ids}

    def _blank(self) -> dict[str, Any]:
        return {
            "status": "idle",
            "reason": None,
            "index": -1,
            "duration_s": None,
            "log": deque(maxlen=self.max_log_entries),
            "results": [],
        }

    def apply(self, event: Event) -> None:
        data = event.data
        if event.type == ev.WORKFLOW_STATUS:
            self.status = data["status"]
            if self.started_at is None:
                self.started_at = event.ts or time.time()
            if event.final:
                self.finished_at = event.ts or time.time()
            return
        flow = self.flows.setdefault(event.flow_id or "", self._blank())
        if event.type == ev.FLOW_STATUS:
            flow["status"] = data["status"]
            flow["reason"] = data.get("reason")
            if "duration_s" in data:
                flow["duration_s"] = data["duration_s"]
        elif event.type == ev.FLOW_INDEX:
            flow["index"] = data["index"]
        elif event.type == ev.LOG_APPEND:
            flow["log"].append(data["entry"])
        elif event.type == ev.LOG_CLEAR:
            flow["log"].clear()
        elif event.type == ev.RESULT:
            flow["results"].append({"name": data["name"], "value": data["value"]})

    def log(self, flow_id: str) -> list[Any]:
        return list(self.flows[flow_id]["log"])

    def results(self, flow_id: str) -> list[dict[str, Any]]:
        return list(self.flows[flow_id]["results"])

    def report(self, previews: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
        """The report; `previews(flow_id)` gives the JSON form of a flow's outputs."""
        flows = {}
        for flow_id, flow in self.flows.items():
            flows[flow_id] = {
                "status": flow["status"],
                "reason": flow["reason"],
                "index": flow["index"],
                "duration_s": flow["duration_s"],
                "outputs": previews(flow_id),
                "log": list(flow["log"]),
                "results": list(flow["results"]),
            }
        return {
            "run_id": self.run_id,
            "status": self.status,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "flows": flows,
        }
