"""A run read in parts, for a page of a big run (100,000 flows): its flows' states alone, and one
flow's part of the report.

The run report (`Client.get`, `dizest_worker.reports`) folds the whole event stream and reads
every flow's output previews; at 100,000 flows its JSON held every flow's log and results (12 MB)
and its first read took the API 4-11 s. A list of flows needs each flow's status, reason, index
and duration, which the run's flows hash holds (authoritative), the run's status and times from
its record, and where to follow the run's events from: `last_event_id`, the newest event's id.
A panel needs one flow's log, results and previews: the stream is scanned for that flow's
events (a byte test before any JSON is decoded: 0.3 s for 100,000 events, where folding them
all cost 3.4 s and ~180 MB kept per API process).

Invariants: `states` reads the record, the flows hash and the newest event id in one
transaction (one moment of the run): a reader that follows the events after `last_event_id`
misses no change after the states it was given. Flows of the snapshot absent from the hash (not
in the run's plan) are idle, as in the report. A flow's part is what the whole report keeps of
it (the same builder, with the run's flow count), and its `last_event_id` the newest event the
scan read: that flow's later events are after it. The flows of the last `max_runs` runs read
are kept (a snapshot never changes; parsing that of 100,000 flows took 2.4 s). An ended run's
states cannot change any more (its final status and `final` are set in one step, after which
no step writes its flows): those of the last ended runs read, up to `max_ended_flows` flows in
all, are kept as tuples and given again while the run exists (a read of 100,000 flows' states
cost the API ~0.8 s of CPU and Redis ~0.4 s).
"""

from __future__ import annotations

import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from typing import Any

from dizest_core.errors import UnknownFlowError
from dizest_core.report import ReportBuilder, iso
from dizest_worker.redis_store import RedisStore
from dizest_worker.run_reads import RunReader, states_of, to_event

KEPT_RUNS = 8  # runs whose flow ids are kept
KEPT_ENDED_FLOWS = 200_000  # flows of the ended runs whose states are kept, in all
STATE = ("status", "reason", "index", "duration_s")  # a flow's state
SCAN_BATCH = 256  # events read at once (each may hold a 1 MB log line)
IDLE = {"status": "idle", "reason": None, "index": -1, "duration_s": None}  # not in the plan
PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]+")  # written as is in an event's JSON (no escapes)


class RunParts:
    """Reads of runs in parts (one instance per Client, shared by its threads)."""

    def __init__(
        self,
        runs: RunReader,
        store: RedisStore,
        max_log_entries: int,
        max_runs: int = KEPT_RUNS,
        max_ended_flows: int = KEPT_ENDED_FLOWS,
    ) -> None:
        self.runs, self.store, self.max_runs = runs, store, max_runs
        self.max_log_entries, self.max_ended_flows = max_log_entries, max_ended_flows
        self._flow_ids: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        # ended run -> (its answer but flows, its flows, their states as STATE tuples)
        self._ended: OrderedDict[str, tuple[dict[str, Any], tuple[str, ...], tuple[Any, ...]]]
        self._ended = OrderedDict()
        self._lock = threading.Lock()

    def states(self, run_id: str) -> dict[str, Any] | None:
        """The run's status and times, each flow's state, how many flows have each status,
        and `last_event_id`; None if there is no such run."""
        kept = self._kept(run_id)
        if kept is not None:
            return kept
        answer = self._read(run_id)
        if answer is not None and answer.pop("final"):
            self._keep_ended(run_id, answer)
        return answer

    def _kept(self, run_id: str) -> dict[str, Any] | None:
        """The kept answer of an ended run that still exists (a new copy), if any."""
        with self._lock:
            kept = self._ended.get(run_id)
            if kept is not None:
                self._ended.move_to_end(run_id)
        if kept is None or not self.runs.client.exists(self.runs.keys.run(run_id)):
            return None
        head, flow_ids, rows = kept
        flows = {
            f: {"status": status, "reason": reason, "index": index, "duration_s": duration}
            for f, (status, reason, index, duration) in zip(flow_ids, rows, strict=True)
        }
        return {**head, "flows": flows, "counts": dict(head["counts"])}

    def _read(self, run_id: str) -> dict[str, Any] | None:
        keys = self.runs.keys
        pipe = self.runs.client.pipeline()  # MULTI/EXEC: one moment of the run
        pipe.hgetall(keys.run(run_id))
        pipe.hgetall(keys.flows(run_id))
        pipe.xrevrange(keys.events(run_id), count=1)
        raw_record, raw_flows, newest = pipe.execute()
        flow_ids = self.flow_ids(run_id) if raw_record else None
        if flow_ids is None:
            return None
        record = {k.decode(): v.decode() for k, v in raw_record.items()}
        found = states_of(raw_flows, flow_ids)
        flows = {f: found.get(f) or dict(IDLE) for f in flow_ids}
        return {
            "run_id": run_id,
            **run_times(record),
            "flows": flows,
            "counts": dict(Counter(state["status"] for state in flows.values())),
            "last_event_id": newest[0][0].decode() if newest else None,
            "final": record.get("final") == "1",  # (set with the final status, in one step)
        }

    def _keep_ended(self, run_id: str, answer: dict[str, Any]) -> None:
        """Keep an ended run's answer, its states as tuples (100,000 flows: ~15 MB)."""
        flows = answer["flows"]
        if len(flows) > self.max_ended_flows:
            return
        rows = tuple(tuple(state[k] for k in STATE) for state in flows.values())
        head = {k: v for k, v in answer.items() if k != "flows"}
        with self._lock:
            self._ended[run_id] = (head, tuple(flows), rows)
            self._ended.move_to_end(run_id)
            while sum(len(ids) for _, ids, _ in self._ended.values()) > self.max_ended_flows:
                self._ended.popitem(last=False)

    def flow(self, run_id: str, flow_id: str) -> dict[str, Any] | None:
        """Flow `flow_id`'s part of the run report and `last_event_id`; None if there is no
        such run, UnknownFlowError if the run has no such flow."""
        flow_ids = self.flow_ids(run_id)
        if flow_ids is None:
            return None
        if flow_id not in flow_ids:
            raise UnknownFlowError(f"run {run_id} has no flow {flow_id!r}")
        builder = ReportBuilder(run_id, [flow_id], self.max_log_entries, len(flow_ids))
        # its events name it so (the EMIT script writes the body); others are never decoded
        mark = f'"flow_id":"{flow_id}"'.encode() if PLAIN_ID.fullmatch(flow_id) else b""
        stream, start, last = self.runs.keys.events(run_id), "-", None
        while True:
            batch = self.runs.client.xrange(stream, start, "+", count=SCAN_BATCH)
            for entry_id, fields in batch:
                if (
                    mark in fields[b"e"]
                    and (event := to_event(entry_id, fields)).flow_id == flow_id
                ):
                    builder.apply(event)
            if batch:
                last = batch[-1][0].decode()
                start = f"({last}"
            if len(batch) < SCAN_BATCH:
                break
        builder.flows[flow_id].update(self.runs.flow_states(run_id, [flow_id]).get(flow_id, {}))
        part = builder.flow_report(flow_id, self.store.previews(run_id, flow_id))
        return {**part, "last_event_id": last}

    def flow_ids(self, run_id: str) -> tuple[str, ...] | None:
        """The flows of the run's snapshot (which never changes), in its order."""
        with self._lock:
            ids = self._flow_ids.get(run_id)
        if ids is None:
            snapshot = self.runs.snapshot(run_id)
            if snapshot is None:
                return None
            ids = tuple(snapshot.get("flow", {}))
            self._keep(self._flow_ids, run_id, ids)
        return ids

    def _keep(self, cache: OrderedDict[str, Any], run_id: str, value: Any) -> None:
        """Keep `value` of `run_id` in `cache`, least recently read out first."""
        with self._lock:
            cache[run_id] = value
            cache.move_to_end(run_id)
            while len(cache) > self.max_runs:
                cache.popitem(last=False)


def run_times(record: Mapping[str, str]) -> dict[str, Any]:
    """The run's status and times from its record: its first events may have been trimmed."""
    times = {}
    for name, field in (("started_at", "created_at"), ("finished_at", "finished_at")):
        if record.get(field):
            times[name] = iso(float(record[field]))
    return {"status": record["status"], **times}
