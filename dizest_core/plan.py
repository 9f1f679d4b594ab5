"""Run planning: which flows a run executes, which it reuses, which it cannot run.

`make_plan` decides once, before anything runs, which flows of a package a run executes, which it
reuses (outputs already stored), and which it cannot run (they need an inactive flow's output that
does not exist). The plan also answers, once for both modes, what lies below a flow (what its
failure skips) and which ready flow goes first (`Plan.rank`: longest remaining path to a sink
first, ties by package order; the local engine launches in that order, the workers send and pick
in it). The run state machine that advances a plan is `dizest_core.runstate`.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from dizest_core import gcpause
from dizest_core.graph import Graph, closure
from dizest_core.model import Package
from dizest_core.status import Reason

T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    """The flows a run executes (topological order) and their parents inside the run."""

    run: tuple[str, ...]
    # in a full run of a package in topological order, the graph's own lists (never changed)
    parents: Mapping[str, Sequence[str]]
    children: Mapping[str, Sequence[str]]
    reused: frozenset[str] = frozenset()
    skipped: dict[str, str] = field(default_factory=dict)
    # inactive flows the run needs or would have run, that it does not run (and has no outputs of)
    inactive: frozenset[str] = frozenset()
    _below: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    # package order of every flow (the graph's index): the tie-break of `rank`
    _order: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
    _paths: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    _longest: list[int] = field(default_factory=list, compare=False, repr=False)

    def roots(self) -> list[str]:
        return [f for f in self.run if not self.parents[f] and f not in self.skipped]

    def below(self, flow_id: str) -> tuple[str, ...]:
        """Every flow of the run below `flow_id`, in plan order: what its failure skips (the
        local state machine and, passed in ARGV, the FINISH script; cached, plans never change)."""
        found = self._below.get(flow_id)
        if found is None:
            seen = closure(self.children[flow_id], self.children)
            found = self._below[flow_id] = tuple(f for f in self.run if f in seen)
        return found

    def remaining(self, flow_id: str) -> int:
        """The flows on the longest path from `flow_id` to a sink of the run, itself included
        (every flow weighs 1: a package says nothing of what a flow costs). Computed for every
        flow at the first call, in one reverse pass over the plan order; plans never change
        (filled in one step: threads of a worker share a plan)."""
        if not self._paths:
            paths: dict[str, int] = {}
            children = self.children
            for node in reversed(self.run):
                paths[node] = 1 + max([paths[c] for c in children[node]], default=0)
            self._longest.append(max(paths.values(), default=1))
            self._paths.update(paths)
        return self._paths[flow_id]

    def rank(self, flow_id: str) -> tuple[int, int]:
        """The order ready flows start in, smallest first: the longest remaining path first
        (the critical path never waits behind a short branch), ties by package order."""
        return -self.remaining(flow_id), self._order.get(flow_id, 0)

    def level(self, flow_id: str, levels: int) -> int:
        """`rank` squeezed into `levels` priority levels, 0 the most urgent: the share of the
        run's longest path still ahead of the flow (a broker orders messages by such levels)."""
        behind = -self.remaining(flow_id)  # fills _longest
        behind += self._longest[0]
        if self._longest[0] <= levels:
            return behind  # one level per path length
        return behind * (levels - 1) // (self._longest[0] - 1)


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
    with gcpause.paused():  # a tuple per flow, all at once (see gcpause)
        graph = graph or Graph.from_package(package)
        wanted = set(targets) if targets is not None else None
        for flow_id in wanted or ():
            package.flow(flow_id)  # raises UnknownFlowError
        runs, reused, missing = _select(package, graph, wanted, available)
        return _plan(graph, runs, reused, missing)


def _plan(graph: Graph, runs: set[str], reused: set[str], missing: set[str]) -> Plan:
    gp, gc = graph.parents, graph.children
    parents: Mapping[str, Sequence[str]]
    children: Mapping[str, Sequence[str]]
    if len(runs) == len(graph.nodes):  # a full run of active flows: no filtering needed
        order = graph.topological_order()
        if order == graph.nodes:  # the graph's dicts, keyed in that order: shared, not copied
            parents, children = gp, gc
        else:
            parents = {f: tuple(gp[f]) for f in order}
            children = {f: tuple(gc[f]) for f in order}
    else:
        order = [f for f in graph.topological_order() if f in runs]
        parents = {f: tuple(p for p in gp[f] if p in runs) for f in order}
        children = {f: tuple(c for c in gc[f] if c in runs) for f in order}
    skipped: dict[str, str] = {}
    if missing:  # only an inactive flow's absent outputs skip anything
        for flow_id in order:
            for parent in gp[flow_id]:
                if parent in missing:
                    skipped[flow_id] = Reason.NEEDS_INACTIVE.format(flow=parent)
                    break
                if parent in skipped:
                    skipped[flow_id] = skipped[parent]
                    break
    return Plan(
        tuple(order),
        parents,
        children,
        frozenset(reused),
        skipped,
        frozenset(missing),
        _order=graph.index,
    )


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


class ReadyQueue(Generic[T]):
    """Ready flows waiting for a slot, handed out in `Plan.rank` order (then arrival order);
    items are flow ids or anything naming one (`flow_of`). Local runs launch from one, and so
    does a worker process from the flows it holds. Items pushed `later` (a retry's backoff)
    join once `due` says their time has come."""

    def __init__(self, plan: Plan, flow_of: Callable[[T], str]) -> None:
        self.plan = plan
        self.flow_of = flow_of
        self._heap: list[tuple[tuple[int, int], int, T]] = []
        self._later: list[tuple[float, int, T]] = []
        self._count = itertools.count()

    def push(self, item: T) -> None:
        entry = (self.plan.rank(self.flow_of(item)), next(self._count), item)
        heapq.heappush(self._heap, entry)

    def extend(self, items: Iterable[T]) -> None:
        for item in items:
            self.push(item)

    def later(self, items: Iterable[T], at: float) -> None:
        """Items that become ready at time `at` (time.monotonic)."""
        for item in items:
            heapq.heappush(self._later, (at, next(self._count), item))

    def due(self, now: float) -> None:
        """Let in the items whose time has come."""
        while self._later and self._later[0][0] <= now:
            self.push(heapq.heappop(self._later)[2])

    def next_at(self) -> float | None:
        """When the next waiting item's time comes (None: none waits)."""
        return self._later[0][0] if self._later else None

    def pop(self) -> T:
        """The most urgent ready item (IndexError when none is ready)."""
        return heapq.heappop(self._heap)[2]

    def clear(self) -> None:
        self._heap.clear()
        self._later.clear()

    def __len__(self) -> int:
        """Ready items (not those waiting for their time)."""
        return len(self._heap)

    def __iter__(self) -> Iterator[T]:
        """Every item, in no particular order."""
        return (entry[2] for entry in self._heap)
