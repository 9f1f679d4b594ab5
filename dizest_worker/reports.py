"""Run reports for a reader of the cluster (the API): each run's event stream folded once, then
advanced by the events that came since.

A report is the fold of the run's events (`dizest_core.report.ReportBuilder`), the flows'
authoritative states laid over it, and each flow's output previews. Folding the whole stream
on every read cost a poller ~50 ms of the API's CPU per request at 1,000 flows (4,000 events
read and decoded each time; ~5 s at 100,000 flows). `Reports` keeps, per run, the builder and
the id of the last event it folded: a read folds only the events after it, reads the states
(one HGETALL, always: they are the truth), and reads again only the previews of the flows whose
state changed since their previews were read (a flow's outputs change only as it runs again).

Invariants: a cached fold equals a fresh one of the same events (states are laid over the
builder after every fold, as a fresh read does, so what they set wins either way); a run has
one fold at a time, advanced under its own lock from reading events to storing the cursor,
one reader at a time: a fold is in the cache from its first read on, so a second reader of a
run being folded waits for that fold (`fold_waits`) and then reads only what came after it,
rather than folding the same events again beside it (each event is read and folded once:
`events_folded`, counted under the cache's lock); the cache holds at most `max_runs` runs
and `max_bytes` of their logs and results (the builder counts them), least recently read out
first; a run whose report alone is larger is folded afresh on every read, as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dizest_core.events import Event
from dizest_core.report import ReportBuilder
from dizest_worker.redis_store import RedisStore
from dizest_worker.run_reads import RunReader

REPORT_BATCH = 256  # events read at once: each may hold a 1 MB log line
MAX_RUNS = 64
MAX_BYTES = 64 << 20

State = dict[str, Any]


@dataclass
class Source:
    """Where one run's report comes from (`dizest_worker.state.RedisRuns`, the store)."""

    flow_ids: Callable[[], Iterable[str]]  # the run's flows (its snapshot's)
    events: Callable[[str | None, int], list[Event]]  # up to n events after an id
    states: Callable[[list[str]], dict[str, State]]  # flow -> status, reason, index, duration
    previews: Callable[[list[str]], dict[str, dict[str, Any]]]  # flow -> output previews

    @classmethod
    def of(cls, runs: RunReader, store: RedisStore, run_id: str) -> Source:
        """Run `run_id` in Redis: its snapshot, event stream, flows hash and outputs."""
        return cls(
            flow_ids=lambda: (runs.snapshot(run_id) or {}).get("flow", {}),
            events=lambda after, n: runs.events(run_id, after, count=n),
            states=lambda flows: runs.flow_states(run_id, flows),
            previews=lambda flows: store.previews_of(run_id, flows),
        )


@dataclass
class _Fold:
    builder: ReportBuilder | None = None  # made by its first reader, under its lock
    after: str | None = None  # the last event folded
    previews: dict[str, dict[str, Any]] = field(default_factory=dict)
    read_at: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # flow -> its state then
    lock: threading.Lock = field(default_factory=threading.Lock)

    def size(self) -> int:
        assert self.builder is not None
        return sum(flow["bytes"] for flow in self.builder.flows.values())


class Reports:
    """The folds of the runs read lately (one instance per Client, shared by its threads)."""

    def __init__(self, max_log_entries: int, max_runs: int = MAX_RUNS, max_bytes: int = MAX_BYTES):
        self.max_log_entries = max_log_entries
        self.max_runs, self.max_bytes = max_runs, max_bytes
        self._folds: OrderedDict[str, _Fold] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()
        self.events_folded = 0  # events read and folded in all (what the cache saves)
        self.fold_waits = 0  # reads that waited for another's fold of their run

    def report(self, run_id: str, source: Source) -> dict[str, Any]:
        with self._lock:  # a new run's fold is shared at once: a second reader waits for it
            fold = self._folds.setdefault(run_id, _Fold())
            self._folds.move_to_end(run_id)
        if not fold.lock.acquire(blocking=False):
            with self._lock:
                self.fold_waits += 1
            fold.lock.acquire()
        try:
            if fold.builder is None:
                fold.builder = ReportBuilder(run_id, source.flow_ids(), self.max_log_entries)
            folded = self._advance(fold, fold.builder, source)
            report = fold.builder.report(lambda f: dict(fold.previews[f]))  # theirs to change
            size = fold.size()
        finally:
            fold.lock.release()
        self._keep(run_id, fold, size, folded)
        return report

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._folds.pop(run_id, None)
            self._sizes.pop(run_id, None)

    def _advance(self, fold: _Fold, builder: ReportBuilder, source: Source) -> int:
        """Fold the events after the fold's cursor (its lock held); how many there were."""
        folded = 0
        while True:  # small batches: an event may hold a 1 MB line, and the report keeps less
            batch = source.events(fold.after, REPORT_BATCH)
            for event in batch:
                builder.apply(event)
            folded += len(batch)
            if batch:
                fold.after = batch[-1].id
            if len(batch) < REPORT_BATCH:
                break
        flows = builder.flows
        states = source.states(list(flows))
        for flow_id, state in states.items():
            flows[flow_id].update(state)
        stale = [f for f in flows if fold.read_at.get(f) != _mark(states.get(f))]
        if stale:
            fold.previews.update(source.previews(stale))
            fold.read_at.update((f, _mark(states.get(f))) for f in stale)
        return folded

    def _keep(self, run_id: str, fold: _Fold, size: int, folded: int) -> None:
        with self._lock:
            self.events_folded += folded
            self._sizes.pop(run_id, None)
            self._folds.pop(run_id, None)
            if size > self.max_bytes:
                return
            self._folds[run_id], self._sizes[run_id] = fold, size
            while len(self._folds) > self.max_runs or sum(self._sizes.values()) > self.max_bytes:
                oldest, _ = self._folds.popitem(last=False)
                self._sizes.pop(oldest, None)  # a fold still being made has no size yet


def _mark(state: State | None) -> tuple[Any, ...]:
    """What tells a flow's outputs may have changed: its state (None: it has none yet)."""
    if state is None:
        return ()
    return (state["status"], state["index"], state["duration_s"])
