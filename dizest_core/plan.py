"""Run planning: which flows a run executes, which it reuses, which it cannot run.

`make_plan` decides once, before anything runs, which flows of a package a run executes, which it
reuses (outputs already stored), and which it cannot run (they need an inactive flow's output that
does not exist). The plan also answers what lies below a flow (what its failure skips), once for
both modes. The run state machine that advances a plan is `dizest_core.runstate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dizest_core import gcpause
from dizest_core.graph import Graph, closure
from dizest_core.model import Package
from dizest_core.status import Reason


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
    _below: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

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
    if len(runs) == len(graph.nodes):  # a full run of active flows: no filtering needed
        order = graph.topological_order()
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
