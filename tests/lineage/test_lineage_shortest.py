"""The impact answer's distances and paths (graph._shortest) against networkx's breadth-first search, on random
graphs with cycles, shared nodes, several starts and starts reached from one another."""

from __future__ import annotations

import random

import networkx as nx
import pytest

from headwater.lineage.graph import _shortest


def _random_edges(rng: random.Random, nodes: int, edges: int) -> list[tuple[int, int, int, int, int]]:
    rows = []
    for edge_id in range(edges):
        source, target = rng.randrange(nodes), rng.randrange(nodes)
        rows.append((edge_id, source, target, rng.randrange(5), 0))
    return rows


@pytest.mark.parametrize("seed", range(40))
def test_distances_equal_networkx_and_every_path_is_a_shortest_path_of_edges(seed: int) -> None:
    rng = random.Random(seed)
    nodes = rng.randint(2, 300)
    rows = _random_edges(rng, nodes, rng.randint(0, nodes * 4))
    starts = rng.sample(range(nodes), rng.randint(1, min(5, nodes)))
    distances, paths = _shortest(starts, rows)

    graph: nx.DiGraph[int] = nx.DiGraph()
    graph.add_nodes_from(starts)
    graph.add_edges_from((r[1], r[2]) for r in rows)
    expected = nx.multi_source_dijkstra_path_length(graph, set(starts))
    assert distances == expected
    edges = {(r[1], r[2]) for r in rows}
    for node, path in paths.items():
        assert path[0] in starts and path[-1] == node
        assert len(path) == distances[node] + 1
        assert all((a, b) in edges for a, b in zip(path, path[1:], strict=False))


def test_no_starts_reach_nothing_and_a_start_is_at_distance_zero_even_when_another_reaches_it() -> None:
    assert _shortest([], [(1, 5, 6, 0, 1)]) == ({}, {})
    distances, paths = _shortest([1, 2], [(1, 1, 2, 0, 1), (2, 2, 3, 0, 1), (3, 3, 1, 0, 2)])
    assert distances == {1: 0, 2: 0, 3: 1}
    assert paths == {1: [1], 2: [2], 3: [2, 3]}
