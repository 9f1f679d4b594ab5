"""The dependency graph of a workflow: parents, children, order, cycles, subgraphs, critical path.

Invariants: nodes keep package order, and every ordering this module returns breaks ties by
that order, so results are deterministic. All traversals are iterative (a 10,000-flow chain
must not hit the recursion limit) and linear in nodes + edges, except the topological order
(a heap: O(E log V)).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence

from dizest_core.model import Package


class Graph:
    """A directed graph over flow ids; an edge (a, b) means b reads an output of a."""

    def __init__(self, nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> None:
        self.nodes: list[str] = list(dict.fromkeys(nodes))
        self.index: dict[str, int] = {n: i for i, n in enumerate(self.nodes)}
        self.parents: dict[str, list[str]] = {n: [] for n in self.nodes}
        self.children: dict[str, list[str]] = {n: [] for n in self.nodes}
        seen: set[tuple[str, str]] = set()
        for src, dst in edges:
            if (src, dst) in seen or src not in self.index or dst not in self.index:
                continue
            seen.add((src, dst))
            self.parents[dst].append(src)
            self.children[src].append(dst)

    @classmethod
    def from_package(cls, package: Package) -> Graph:
        """Edges from every connection whose source flow exists (dangling ones are validation's)."""
        edges = (
            (conn.node, flow.id)
            for flow in package.flows.values()
            for conns in flow.connections.values()
            for conn in conns
        )
        return cls(package.flows, edges)

    def roots(self, among: Iterable[str] | None = None) -> list[str]:
        """Nodes with no parent inside `among` (default: the whole graph)."""
        scope = set(self.nodes if among is None else among)
        return [
            n for n in self.nodes if n in scope and not any(p in scope for p in self.parents[n])
        ]

    def topological_order(self) -> list[str]:
        """Every node after all its parents; raises ValueError naming a cycle if there is one."""
        pending = {n: len(self.parents[n]) for n in self.nodes}
        heap = [self.index[n] for n in self.nodes if pending[n] == 0]
        heapq.heapify(heap)
        order: list[str] = []
        while heap:
            node = self.nodes[heapq.heappop(heap)]
            order.append(node)
            for child in self.children[node]:
                pending[child] -= 1
                if pending[child] == 0:
                    heapq.heappush(heap, self.index[child])
        if len(order) != len(self.nodes):
            cycle = self.find_cycles()[0]
            raise ValueError(f"cycle: {format_cycle(cycle)}")
        return order

    def find_cycles(self) -> list[list[str]]:
        """One cycle path per strongly connected component that has one, as [a, b, ..., a]."""
        cycles = []
        for component in self._strongly_connected():
            members = set(component)
            if len(component) > 1 or component[0] in self.parents[component[0]]:
                cycles.append(self._cycle_within(min(members, key=self.index.__getitem__), members))
        cycles.sort(key=lambda c: self.index[c[0]])
        return cycles

    def _cycle_within(self, start: str, members: set[str]) -> list[str]:
        """A path start -> ... -> start that stays inside one strongly connected component."""
        if start in self.children[start]:
            return [start, start]
        prev: dict[str, str] = {}
        frontier = [start]
        while frontier:  # breadth-first: the shortest cycle through start
            nxt = []
            for node in frontier:
                for child in self.children[node]:
                    if child == start:
                        path = [node]
                        while path[-1] != start:
                            path.append(prev[path[-1]])
                        return [*reversed(path), start]
                    if child in members and child not in prev:
                        prev[child] = node
                        nxt.append(child)
            frontier = nxt
        raise AssertionError("a strongly connected component always has a cycle")

    def _strongly_connected(self) -> list[list[str]]:
        """Tarjan's algorithm, iterative."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        result: list[list[str]] = []
        counter = 0
        for root in self.nodes:
            if root in index:
                continue
            work = [(root, 0)]
            while work:
                node, i = work.pop()
                if i == 0:
                    index[node] = low[node] = counter
                    counter += 1
                    stack.append(node)
                    on_stack.add(node)
                children = self.children[node]
                if i < len(children):
                    work.append((node, i + 1))
                    child = children[i]
                    if child not in index:
                        work.append((child, 0))
                    elif child in on_stack:
                        low[node] = min(low[node], index[child])
                    continue
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    result.append(component)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
        return result

    def upstream(self, targets: Iterable[str]) -> set[str]:
        """The targets and every node they depend on, transitively."""
        return closure(targets, self.parents)

    def downstream(self, sources: Iterable[str]) -> set[str]:
        """The sources and every node that depends on them, transitively."""
        return closure(sources, self.children)

    def critical_path(self, weight: Callable[[str], float]) -> tuple[float, list[str]]:
        """The heaviest path by node weight: its total and its nodes, source first."""
        best: dict[str, float] = {}
        via: dict[str, str | None] = {}
        for node in self.topological_order():
            parent = max(self.parents[node], key=best.__getitem__, default=None)
            best[node] = weight(node) + (best[parent] if parent is not None else 0.0)
            via[node] = parent
        if not best:
            return 0.0, []
        end: str | None = max(self.nodes, key=best.__getitem__)
        total = best[end]  # type: ignore[index]
        path = []
        while end is not None:
            path.append(end)
            end = via[end]
        return total, path[::-1]


def closure(start: Iterable[str], step: Mapping[str, Sequence[str]]) -> set[str]:
    """`start` and every node reached from it by `step` (parents: upstream; children:
    downstream). The one traversal behind `upstream`, `downstream` and `Plan.below`."""
    seen = set(start)
    todo = list(seen)
    while todo:
        for nxt in step[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def format_cycle(cycle: list[str]) -> str:
    return " -> ".join(cycle)
