"""The run report: the document `dizest run --json` prints and the API serves, built from events.

Applying a run's events in order yields the report, so every runner (local or distributed) and
every reader of an event stream builds the same document. Output values come from the store's
JSON previews when the report is rendered. Logs keep the last `max_log_entries` entries, and
each flow's log and results the last of what fits its share of REPORT_BYTES (at least
FLOW_REPORT_BYTES_MIN, at most FLOW_REPORT_BYTES_MAX): a flow may print 16 MB, and a run's
report (one request of the API, read whole) held 3.4x its runs' logs in a probe.
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


REPORT_BYTES = 32 << 20  # a run's logs and results in its report, shared among its flows
FLOW_REPORT_BYTES_MIN = 64 << 10
FLOW_REPORT_BYTES_MAX = 2 << 20


def _size(item: Any) -> int:
    """About what a log entry or a result costs in the report (its text)."""
    if isinstance(item, str):
        return len(item) + 16
    if isinstance(item, dict):
        return sum(_size(v) for v in item.values()) + 16
    return 16


class ReportBuilder:
    """Folds a run's events into the run report."""

    def __init__(
        self,
        run_id: str,
        flow_ids: Iterable[str],
        max_log_entries: int = 1000,
        run_flows: int | None = None,
    ) -> None:
        """`run_flows`: how many flows the run has, when `flow_ids` are some of them (their
        part of the report is then what the whole report keeps of them)."""
        self.run_id = run_id
        self.status = "pending"
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.max_log_entries = max_log_entries
        self.flows: dict[str, dict[str, Any]] = {f: self._blank() for f in flow_ids}
        share = REPORT_BYTES // max(1, len(self.flows) if run_flows is None else run_flows)
        self.flow_bytes = max(FLOW_REPORT_BYTES_MIN, min(FLOW_REPORT_BYTES_MAX, share))

    def _blank(self) -> dict[str, Any]:
        return {
            "status": "idle",
            "reason": None,
            "index": -1,
            "duration_s": None,
            "log": deque(maxlen=self.max_log_entries),
            "results": deque(),
            "bytes": 0,  # what its log and results hold (see `_keep`)
        }

    def _keep(self, flow: dict[str, Any], into: str, item: Any) -> None:
        """Append to the flow's log or results, then drop its oldest log entries (then results)
        while they hold more than the flow's bytes; the newest item always stays."""
        kept = flow[into]
        if into == "log" and len(kept) == kept.maxlen:
            flow["bytes"] -= _size(kept[0])  # the deque drops it
        kept.append(item)
        flow["bytes"] += _size(item)
        for older in (flow["log"], flow["results"]):
            keep = 1 if older is kept else 0  # the item just added
            while flow["bytes"] > self.flow_bytes and len(older) > keep:
                flow["bytes"] -= _size(older.popleft())

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
            self._keep(flow, "log", data["entry"])
        elif event.type == ev.LOG_CLEAR:
            flow["bytes"] -= sum(_size(e) for e in flow["log"])
            flow["log"].clear()
        elif event.type == ev.RESULT:
            self._keep(flow, "results", {"name": data["name"], "value": data["value"]})

    def log(self, flow_id: str) -> list[Any]:
        return list(self.flows[flow_id]["log"])

    def results(self, flow_id: str) -> list[dict[str, Any]]:
        return list(self.flows[flow_id]["results"])

    def flow_report(self, flow_id: str, outputs: dict[str, Any]) -> dict[str, Any]:
        """One flow's part of the report; `outputs`: the JSON form of its outputs."""
        flow = self.flows[flow_id]
        return {
            "status": flow["status"],
            "reason": flow["reason"],
            "index": flow["index"],
            "duration_s": flow["duration_s"],
            "outputs": outputs,
            "log": list(flow["log"]),
            "results": list(flow["results"]),
        }

    def report(self, previews: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
        """The report; `previews(flow_id)` gives the JSON form of a flow's outputs."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "flows": {f: self.flow_report(f, previews(f)) for f in self.flows},
        }
