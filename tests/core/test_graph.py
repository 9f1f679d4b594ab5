"""Property tests for dizest_core.graph against independent brute-force oracles."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dizest_core import dwp
from dizest_core.graph import Graph

DATA = Path(__file__).resolve().parents[1] / "data"

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- strategies


@st.composite
def dags(draw, max_nodes: int = 12) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """(nodes in package order, edges, a topological rank order) of a random DAG.

    The DAG is acyclic by construction: edges go only from rank i to rank j > i, where the
    ranks are a shuffle of the node names, so package order and dependency order disagree.
    """
    n = draw(st.integers(0, max_nodes))
    names = [f"n{i}" for i in range(n)]
    ranked = draw(st.permutations(names))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    chosen = draw(st.lists(st.sampled_from(pairs), max_size=3 * n) if pairs else st.just([]))
    edges = [(ranked[i], ranked[j]) for i, j in chosen]
    package_order = draw(st.permutations(names))
    return list(package_order), edges, list(ranked)


@st.composite
def digraphs(draw, max_nodes: int = 8) -> tuple[list[str], list[tuple[str, str]]]:
    """Random general directed graphs (self-loops and cycles allowed)."""
    n = draw(st.integers(0, max_nodes))
    names = draw(st.permutations([f"v{i}" for i in range(n)]))
    if n == 0:
        return [], []
    node = st.sampled_from(names)
    edges = draw(st.lists(st.tuples(node, node), max_size=3 * n))
    return list(names), edges


# --------------------------------------------------------------------------- oracles


def edge_set(graph: Graph) -> set[tuple[str, str]]:
    return {(p, c) for c, ps in graph.parents.items() for p in ps}


def reach(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, set[str]]:
    """Nodes reachable from each node by one or more edges (plain BFS per node)."""
    succ: dict[str, set[str]] = {n: set() for n in nodes}
    for a, b in edges:
        succ[a].add(b)
    result = {}
    for start in nodes:
        seen: set[str] = set()
        todo = list(succ[start])
        while todo:
            x = todo.pop()
            if x not in seen:
                seen.add(x)
                todo.extend(succ[x])
        result[start] = seen
    return result


def cyclic_components(nodes: list[str], edges: list[tuple[str, str]]) -> list[frozenset[str]]:
    """Strongly connected components that contain a cycle, by mutual reachability."""
    r = reach(nodes, edges)
    comps = {frozenset({n} | {m for m in r[n] if n in r[m]}) for n in nodes if n in r[n]}
    return sorted(comps, key=sorted)


def all_paths(nodes: list[str], edges: list[tuple[str, str]]) -> list[list[str]]:
    """Every simple path (including single nodes) of a small DAG."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in set(edges):
        succ[a].append(b)
    paths = []
    todo = [[n] for n in nodes]
    while todo:
        path = todo.pop()
        paths.append(path)
        todo.extend([*path, c] for c in succ[path[-1]])
    return paths


def assert_is_cycle(cycle: list[str], edges: set[tuple[str, str]]) -> None:
    assert len(cycle) >= 2
    assert cycle[0] == cycle[-1]
    for a, b in itertools.pairwise(cycle):
        assert (a, b) in edges, f"{a} -> {b} is not an edge of the graph"


def cycle_from_message(message: str) -> list[str]:
    assert "cycle: " in message
    return message.split("cycle: ", 1)[1].strip().split(" -> ")


# --------------------------------------------------------------------------- construction


def test_duplicate_edges_and_edges_to_unknown_nodes_are_dropped() -> None:
    g = Graph(["a", "b", "a"], [("a", "b"), ("a", "b"), ("a", "zz"), ("zz", "b")])
    assert g.nodes == ["a", "b"]
    assert g.parents == {"a": [], "b": ["a"]}
    assert g.children == {"a": ["b"], "b": []}


# --------------------------------------------------------------------------- topological order


@PROPS
@given(dags())
def test_topological_order_puts_every_node_after_its_parents(dag) -> None:
    nodes, edges, _ = dag
    order = Graph(nodes, edges).topological_order()
    assert sorted(order) == sorted(nodes)
    assert len(order) == len(set(order))
    pos = {n: i for i, n in enumerate(order)}
    for a, b in edges:
        assert pos[a] < pos[b], f"{b} comes before its parent {a}"


def test_topological_order_breaks_ties_by_package_order() -> None:
    g = Graph(["c", "a", "b", "d"], [("b", "d")])
    assert g.topological_order() == ["c", "a", "b", "d"]
    g = Graph(["d", "c", "b", "a"], [("a", "d"), ("b", "c")])
    assert g.topological_order() == ["b", "c", "a", "d"]


@PROPS
@given(digraphs())
def test_topological_order_raises_with_a_real_cycle_path_on_cyclic_graphs(graph) -> None:
    nodes, edges = graph
    g = Graph(nodes, edges)
    if not cyclic_components(nodes, edges):
        g.topological_order()  # must not raise
        return
    with pytest.raises(ValueError) as info:
        g.topological_order()
    assert_is_cycle(cycle_from_message(str(info.value)), set(edges))


def test_topological_order_error_names_the_cycle() -> None:
    g = Graph(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])
    with pytest.raises(ValueError, match=r"a -> b -> c -> a"):
        g.topological_order()


# --------------------------------------------------------------------------- cycles


@PROPS
@given(dags())
def test_acyclic_graphs_have_no_cycles(dag) -> None:
    nodes, edges, _ = dag
    assert Graph(nodes, edges).find_cycles() == []


@PROPS
@given(digraphs())
def test_find_cycles_returns_one_real_cycle_per_cyclic_component(graph) -> None:
    nodes, edges = graph
    cycles = Graph(nodes, edges).find_cycles()
    components = cyclic_components(nodes, edges)
    # cyclic iff non-empty, checked against the brute-force oracle
    assert bool(cycles) == bool(components)
    assert len(cycles) == len(components)
    covered = []
    for cycle in cycles:
        assert_is_cycle(cycle, set(edges))
        owners = [c for c in components if set(cycle) <= c]
        assert len(owners) == 1, f"cycle {cycle} is not inside one strongly connected component"
        covered.append(owners[0])
    assert sorted(covered, key=sorted) == components


def test_self_loop_is_a_two_element_cycle() -> None:
    assert Graph(["a", "b"], [("a", "b"), ("b", "b")]).find_cycles() == [["b", "b"]]


def test_three_cycle_path() -> None:
    g = Graph(["a", "b", "c", "x"], [("x", "a"), ("a", "b"), ("b", "c"), ("c", "a")])
    assert g.find_cycles() == [["a", "b", "c", "a"]]


# --------------------------------------------------------------------------- closures


@PROPS
@given(digraphs(max_nodes=10), st.data())
def test_upstream_and_downstream_equal_the_transitive_closure(graph, data) -> None:
    nodes, edges = graph
    g = Graph(nodes, edges)
    r = reach(nodes, edges)
    start = data.draw(st.lists(st.sampled_from(nodes), max_size=3) if nodes else st.just([]))
    expected_down = set(start).union(*(r[s] for s in start))
    expected_up = set(start) | {n for n in nodes if any(s in r[n] for s in start)}
    assert g.downstream(start) == expected_down
    assert g.upstream(start) == expected_up


# --------------------------------------------------------------------------- critical path


@PROPS
@given(dags(max_nodes=9), st.data())
def test_critical_path_is_a_real_path_at_least_as_heavy_as_any_other(dag, data) -> None:
    nodes, edges, _ = dag
    weights = {n: data.draw(st.integers(0, 1000), label=f"w[{n}]") for n in nodes}
    g = Graph(nodes, edges)
    total, path = g.critical_path(weights.__getitem__)
    if not nodes:
        assert (total, path) == (0.0, [])
        return
    assert path, "a non-empty graph has a non-empty heaviest path"
    real = set(edges)
    for a, b in itertools.pairwise(path):
        assert (a, b) in real, f"{a} -> {b} is not an edge"
    assert total == sum(weights[n] for n in path)
    best = max(sum(weights[n] for n in p) for p in all_paths(nodes, edges))
    assert total == best


def test_critical_path_prefers_the_heavier_branch() -> None:
    g = Graph(["s", "a", "b", "t"], [("s", "a"), ("s", "b"), ("a", "t"), ("b", "t")])
    w = {"s": 1, "a": 2, "b": 5, "t": 1}
    assert g.critical_path(w.__getitem__) == (7, ["s", "b", "t"])


# --------------------------------------------------------------------------- scale


def test_ten_thousand_node_chain_does_not_recurse() -> None:
    n = 10_000
    assert n > sys.getrecursionlimit()
    names = [f"f{i:05d}" for i in range(n)]
    edges = list(itertools.pairwise(names))
    g = Graph(reversed(names), edges)  # package order opposite to dependency order
    assert g.find_cycles() == []
    assert g.topological_order() == names
    assert g.upstream([names[-1]]) == set(names)
    assert g.downstream([names[0]]) == set(names)
    total, path = g.critical_path(lambda _: 1)
    assert total == n
    assert path == names


def test_ten_thousand_node_ring_is_one_cycle_without_recursing() -> None:
    n = 10_000
    names = [f"f{i:05d}" for i in range(n)]
    edges = [*itertools.pairwise(names), (names[-1], names[0])]
    g = Graph(names, edges)
    cycles = g.find_cycles()
    assert cycles == [[*names, names[0]]]
    with pytest.raises(ValueError, match=r"f00000 -> f00001 -> .* -> f00000"):
        g.topological_order()


# --------------------------------------------------------------------------- sample packages


@pytest.mark.parametrize(("name", "longest"), [("dag100", 13), ("dag1000", 27)])
def test_sample_dag_longest_path(name: str, longest: int) -> None:
    # The reference's "longest path 13 / 27" counts FLOWS (nodes), not edges:
    # gen_dwp.py writes longest_path_flows = max(depth) + 1, and with every weight 1 the
    # critical path total (a sum of node weights) is 13 / 27 while its edge count is 12 / 26.
    graph = Graph.from_package(dwp.load(DATA / f"{name}.dwp"))
    total, path = graph.critical_path(lambda _: 1)
    assert total == longest
    assert len(path) == longest
    real = edge_set(graph)
    assert all(pair in real for pair in itertools.pairwise(path))
    assert graph.find_cycles() == []
