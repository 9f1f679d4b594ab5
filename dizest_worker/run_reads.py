"""Reading a run back from Redis: its record, flows hash, snapshot, context and events.

`RunReader` holds nothing but the Redis client, the key names and a small cache of run contexts
(a run's snapshot never changes); `dizest_worker.state.RedisRuns` adds the steps that write.
Readers (the API's streams, `Client.get`) need only this half.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis

from dizest_core.events import Event
from dizest_worker.context import RunContext
from dizest_worker.keys import Keys
from dizest_worker.round_trip import pairs, round_trip
from dizest_worker.settings import WorkerSettings

CONTEXT_CACHE = 32
FEW_FLOWS = 64  # flow_states reads up to this many flows by name, more with the whole hash
STATE_FIELDS = ("", ":reason", ":index", ":duration")  # a flow's state in its run's flows hash
StatusAndBatch = tuple[str | None, list[Event]]  # a run's status, a batch of its events
# decoded events one reader keeps for its streams, in stored JSON bytes (~4x that in memory)
KEPT_EVENT_BYTES = 4 << 20


def now_ms() -> int:
    return int(time.time() * 1000)


class RunReader:
    """Reads of run state; no state of its own beyond the client and the context cache."""

    def __init__(self, client: redis.Redis, settings: WorkerSettings) -> None:
        # Any: redis-py's stubs type every reply as bytes | str; ours is always bytes
        self.client: Any = client
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self._contexts: OrderedDict[str, RunContext] = OrderedDict()
        self._decoded = DecodedEvents(KEPT_EVENT_BYTES)

    def record(self, run_id: str) -> dict[str, str] | None:
        return _record(self.client.hgetall(self.keys.run(run_id)))

    def status_and_events(self, run_id: str, after: str | None, count: int) -> StatusAndBatch:
        """The run's status (None: no such run) and `events(..., shared=True)`, in one round
        trip; the status alone: a record holds the run's inputs (megabytes, maybe)."""
        stream = self.keys.events(run_id)
        status, entries = round_trip(
            self.client,
            ("HGET", self.keys.run(run_id), "status"),
            ("XRANGE", stream, _past(after), "+", "COUNT", count),
        )  # every SSE connect of a crowd: redis-py's pipeline was most of its CPU
        found = [(entry_id, pairs(fields)) for entry_id, fields in entries]
        return None if status is None else status.decode(), self._decoded.events(stream, found)

    def wait_final(self, run_id: str, timeout_s: float) -> str | None:
        """Block until the run has ended (its final status) or `timeout_s` passes (None).

        One atomic BLMOVE from the list to itself, head to head: the status stays for other
        waiters and the key is never emptied, so it keeps the TTL its run's end gave it. (BLPOP
        then LPUSH made a new key without one: every wait left it to live for ever.)"""
        key = self.keys.done(run_id)
        got = self.client.blmove(key, key, max(timeout_s, 0.001), "LEFT", "LEFT")
        return None if got is None else str(got.decode())

    def snapshot(self, run_id: str) -> dict[str, Any] | None:
        raw = self.snapshot_json(run_id)
        return json.loads(raw) if raw else None

    def snapshot_json(self, run_id: str) -> bytes | None:
        raw = self.client.get(self.keys.package(run_id))
        return bytes(raw) if raw else None

    def flow_field(self, run_id: str, flow_id: str, name: str | None = None) -> str | None:
        field = flow_id if name is None else f"{flow_id}:{name}"
        raw = self.client.hget(self.keys.flows(run_id), field)
        return raw.decode() if raw is not None else None

    def flow_states(self, run_id: str, flow_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Status, reason, index and duration of each flow the run has, from its flows hash:
        authoritative, where the capped event stream may have lost the early ones. A few flows
        are read by name (HMGET): the whole hash of a 100,000-flow run is ~700,000 fields."""
        wanted = list(flow_ids)
        key = self.keys.flows(run_id)
        if len(wanted) <= FEW_FLOWS:
            names = [f"{f}{part}".encode() for f in wanted for part in STATE_FIELDS]
            values = self.client.hmget(key, names) if names else []
            return states_of(dict(zip(names, values, strict=True)), wanted)
        return states_of(self.client.hgetall(key), wanted)

    def context(self, run_id: str) -> RunContext | None:
        """The run's package, plan and options (cached: a run's snapshot never changes)."""
        ctx = self._contexts.get(run_id)
        if ctx is None:
            ctx = self._load_context(run_id)
            if ctx is None:
                return None
            self._contexts[run_id] = ctx
            while len(self._contexts) > CONTEXT_CACHE:
                self._contexts.popitem(last=False)
        self._contexts.move_to_end(run_id)
        return ctx

    def _load_context(self, run_id: str) -> RunContext | None:
        record, snapshot = self.record(run_id), self.snapshot(run_id)
        if record is None or snapshot is None:
            return None
        load = json.loads
        return RunContext.build(
            run_id,
            snapshot,
            load(record.get("targets", "null")),
            load(record.get("reused", "[]")),
            load(record.get("options", "{}")),
            load(record.get("inputs", "{}")),
            load(record.get("flow_inputs", "{}")),
            load(record.get("drive", "null")),
            load(record.get("account", "null")),
        )

    def events(
        self,
        run_id: str,
        after: str | None = None,
        count: int = 1000,
        block_ms: int | None = None,
        shared: bool = False,
    ) -> list[Event]:
        """Events after stream id `after` (exclusive; None = from the start). `shared`: the
        Event objects may be ones this reader decoded before (the same entry), as the API's
        streams send them: nobody may change one."""
        stream = self.keys.events(run_id)
        if block_ms is None:
            entries = self.client.xrange(stream, _past(after), "+", count=count)
        else:
            got = self.client.xread({stream: after or "0-0"}, count=count, block=block_ms)
            entries = got[0][1] if got else []
        if shared:
            return self._decoded.events(stream, entries)
        return [to_event(entry_id, fields) for entry_id, fields in entries]


def states_of(
    raw: Mapping[bytes, bytes | None], flow_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The state of each of `flow_ids` found in `raw`, a run's flows hash as Redis answers it:
    only what is read is decoded (100,000 flows: 700,000 fields, 400,000 of them read here)."""
    get = raw.get
    states: dict[str, dict[str, Any]] = {}
    for flow_id in flow_ids:
        key = flow_id.encode()
        status = get(key)
        if status is None:
            continue
        reason, index, duration = (
            get(key + b":reason"),
            get(key + b":index"),
            get(key + b":duration"),
        )
        states[flow_id] = {
            "status": status.decode(),
            "reason": None if reason is None else reason.decode(),
            "index": -1 if index is None else int(index),
            "duration_s": None if duration is None else float(duration),
        }
    return states


def _past(after: str | None) -> str:
    """XRANGE's start for the entries after stream id `after` (None: from the first)."""
    return "-" if after is None else f"({after}"


def _record(raw: Mapping[bytes, bytes]) -> dict[str, str] | None:
    return {k.decode(): v.decode() for k, v in raw.items()} if raw else None


def to_event(entry_id: bytes | str, fields: Mapping[bytes, bytes]) -> Event:
    obj = json.loads(fields[b"e"])
    obj["id"] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return Event.from_dict(obj)


class DecodedEvents:
    """Events decoded from run streams, kept by entry (the newest `max_bytes` of stored JSON):
    an entry never changes once added, and a connect storm on one run replays the same ones to
    every client (a replay of 500 events was 500 JSON decodes and 500 encodes per connect; a
    kept Event keeps its `wire` JSON too). A kept one is used only for the same stored bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._kept: OrderedDict[tuple[str, bytes], tuple[bytes, Event]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def events(
        self, stream: str, entries: Sequence[tuple[bytes, Mapping[bytes, bytes]]]
    ) -> list[Event]:
        found: list[Event | None] = []
        with self._lock:
            for entry_id, fields in entries:
                kept = self._kept.get((stream, entry_id))
                if kept is not None and kept[0] == fields[b"e"]:
                    self._kept.move_to_end((stream, entry_id))
                    found.append(kept[1])
                else:
                    found.append(None)
        out: list[Event] = []
        new: list[tuple[tuple[str, bytes], bytes, Event]] = []
        for (entry_id, fields), event in zip(entries, found, strict=True):
            if event is None:
                event = to_event(entry_id, fields)
                if len(fields[b"e"]) <= self.max_bytes // 64:  # a huge one would push out many
                    new.append(((stream, entry_id), fields[b"e"], event))
            out.append(event)
        if new:
            self._keep(new)
        return out

    def _keep(self, new: list[tuple[tuple[str, bytes], bytes, Event]]) -> None:
        with self._lock:
            for key, raw, event in new:
                old = self._kept.pop(key, None)
                if old is not None:
                    self._bytes -= len(old[0])
                self._kept[key] = (raw, event)
                self._bytes += len(raw)
            while self._bytes > self.max_bytes:
                _, (raw, _) = self._kept.popitem(last=False)
                self._bytes -= len(raw)
