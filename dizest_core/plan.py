"""Run planning and the run state machine: which flows run, and which become ready when one ends.

`make_plan` decides once, before anything runs, which flows of a package a run executes, which it
reuses (outputs already stored), and which it cannot run (they need an inactive flow's output that
does not exist). `RunState` is the run as data, advanced only by `start`, `finish` and `cancel`,
each returning what became ready or was skipped: a flow is ready the moment its last parent
finishes (no level barriers, no polling). The same transitions drive local runs and, with the
counters kept in Redis, distributed ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dizest_core.errors import UnknownFlowError
from dizest_core.graph import Graph
from dizest_core.model import Package
from dizest_core.status import FlowStatus, Reason


@dataclass(frozen=True)
class Plan:
    """The flows a run executes (topological order) and their parents inside the run."""

    run: tuple[str, ...]
    parents: dict[str, tuple[str, ...]]
    children: dict[str, tuple[str, ...]]
    reused: frozenset[str] = frozenset()
    skipped: dict[str, str] = field(default_factory=dict)
    # inactive flows the run needs or would have run, that it does not run (and has no outputs of)
    inactive: frozenset[str] = frozenset()

    def roots(self) -> list[str]:
        return [f for f in self.run if not self.parents[f] and f not in self.skipped]


def make_plan(
    package: Package,
    graph: Graph | None = None,
    targets: Iterable[str] | None = None,
    available: Callable[[str], bool] = lambda flow_id: False,
) -> Plan:
    """Plan a full run (targets None) or the runs of `targets` plus the upstream they need.

    `available(flow)` tells whether a flow's outputs already exist in the run's store; in a
    targeted run such upstream flows are reused instead of run again.
    """
    graph = graph or Graph.from_package(package)
    wanted = set(targets) if targets is not None else None
    for flow_id in wanted or ():
        package.flow(flow_id)  # raises UnknownFlowError
    runs, reused, missing = _select(package, graph, wanted, available)
    order = [f for f in graph.topological_order() if f in runs]
    parents = {f: tuple(p for p in graph.parents[f] if p in runs) for f in order}
    children = {f: tuple(c for c in graph.children[f] if c in runs) for f in order}
    skipped: dict[str, str] = {}
    for flow_id in order:
        for parent in graph.parents[flow_id]:
            if parent in missing:
                skipped[flow_id] = Reason.NEEDS_INACTIVE.format(flow=parent)
                break
            if parent in skipped:
                skipped[flow_id] = skipped[parent]
                break
    return Plan(tuple(order), parents, children, frozenset(reused), skipped, frozenset(missing))


def _select(
    package: Package, graph: Graph, wanted: set[str] | None, available: Callable[[str], bool]
) -> tuple[set[str], set[str], set[str]]:
    runs: set[str] = set()
    reused: set[str] = set()
    missing: set[str] = set()
    if wanted is None:
        for flow in package.flows.values():
            if flow.active:
                runs.add(flow.id)
            elif available(flow.id):
                reused.add(flow.id)
            else:
                missing.add(flow.id)
        return runs, reused, missing
    todo = list(wanted)
    seen = set(todo)
    while todo:
        flow_id = todo.pop()
        if flow_id not in wanted and available(flow_id):
            reused.add(flow_id)
            continue
        if flow_id not in wanted and not package.flows[flow_id].active:
            missing.add(flow_id)
            continue
        runs.add(flow_id)
        for parent in graph.parents[flow_id]:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return runs, reused, missing


@dataclass(frozen=True)
class Transition:
    """What one state change caused: flows that became ready and flows that will not run."""

    ready: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


class RunState:
    """The statuses of a run's flows and the count of unfinished parents of each."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.status: dict[str, FlowStatus] = dict.fromkeys(plan.run, FlowStatus.IDLE)
        self.reason: dict[str, str | None] = dict.fromkeys(plan.run)
        self.waiting: dict[str, int] = {f: len(plan.parents[f]) for f in plan.run}
        self.unresolved = len(plan.run)
        self.failed = False

    def start(self) -> Transition:
        """Skip what cannot run and return the roots, now pending."""
        skipped = [(f, r) for f, r in self.plan.skipped.items()]
        for flow_id, reason in skipped:
            self._resolve(flow_id, FlowStatus.IDLE, reason)
        ready = self.plan.roots()
        for flow_id in ready:
            self.status[flow_id] = FlowStatus.PENDING
        return Transition(ready, skipped)

    def running(self, flow_id: str) -> None:
        self._check(flow_id, FlowStatus.PENDING)
        self.status[flow_id] = FlowStatus.RUNNING

    def finish(self, flow_id: str, ok: bool, reason: str | None = None) -> Transition:
        """Record a flow's end; return the children it made ready or the descendants it skips."""
        if flow_id not in self.status:
            raise UnknownFlowError(f"flow {flow_id!r} is not in this run")
        if self.status[flow_id] not in (FlowStatus.PENDING, FlowStatus.RUNNING):
            raise ValueError(f"flow {flow_id!r} is {self.status[flow_id]}, it cannot finish")
        if not ok:
            self.failed = True
            self._resolve(flow_id, FlowStatus.ERROR, reason)
            return Transition(skipped=self._skip_below(flow_id))
        self._resolve(flow_id, FlowStatus.READY, reason)
        ready = []
        for child in self.plan.children[flow_id]:
            self.waiting[child] -= 1
            if (
                self.waiting[child] == 0
                and self.status[child] is FlowStatus.IDLE
                and self.reason[child] is None
            ):
                self.status[child] = FlowStatus.PENDING
                ready.append(child)
        return Transition(ready)

    def cancel(self) -> list[str]:
        """Stop everything not yet running; return those flows (running ones end on their own)."""
        stopped = [
            f
            for f, s in self.status.items()
            if s is FlowStatus.PENDING or (s is FlowStatus.IDLE and self.reason[f] is None)
        ]
        for flow_id in stopped:
            self._resolve(flow_id, FlowStatus.IDLE, Reason.CANCELLED)
        return stopped

    @property
    def done(self) -> bool:
        return self.unresolved == 0

    def _skip_below(self, failed: str) -> list[tuple[str, str]]:
        reason = Reason.UPSTREAM_FAILED.format(flow=failed)
        skipped = []
        todo = list(self.plan.children[failed])
        while todo:
            flow_id = todo.pop()
            if self.status[flow_id] is not FlowStatus.IDLE or self.reason[flow_id] is not None:
                continue
            self._resolve(flow_id, FlowStatus.IDLE, reason)
            skipped.append((flow_id, reason))
            todo.extend(self.plan.children[flow_id])
        order = {f: i for i, f in enumerate(self.plan.run)}
        skipped.sort(key=lambda item: order[item[0]])
        return skipped

    def _resolve(self, flow_id: str, status: FlowStatus, reason: str | None) -> None:
        self.status[flow_id] = status
        self.reason[flow_id] = reason if reason is not None or status is not FlowStatus.IDLE else ""
        self.unresolved -= 1

    def _check(self, flow_id: str, expected: FlowStatus) -> None:
        if flow_id not in self.status:
            raise UnknownFlowError(f"flow {flow_id!r} is not in this run")
        if self.status[flow_id] is not expected:
            raise ValueError(f"flow {flow_id!r} is {self.status[flow_id]}, expected {expected}")
