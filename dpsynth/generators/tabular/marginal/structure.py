"""Junction-tree structures for a set of measured cliques, and their size.

Two constructions, both functions of the selected cliques only (public after selection):

- ``mbi_glue.greedy_tree``: mbi's junction tree (greedy elimination order, maximal cliques
  of the triangulated graph, maximum spanning tree on separator sizes);
- ``augment``: the current tree plus one clique ``q``: ``q``'s columns are added to the nodes
  on the shortest tree path that links the nodes holding them (a new node links separate
  trees). The result is a valid junction tree, so its size bounds what the clique costs.

AIM's model-size rule uses ``augmented_cells(tree, q)`` (= ``augment(tree, q).cells()``): cheap (no triangulation per
candidate), and the tree AIM keeps after selecting ``q`` is the smaller of the two
constructions, so the kept model never exceeds the size the rule allowed.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Sequence


from dpsynth.generators.tabular.marginal.junction import Clique, JunctionTree


def from_undirected(sizes: Sequence[int], nodes: list[Clique], edges: set[tuple[int, int]]) -> JunctionTree:
    """Order an undirected forest top-down (breadth first from the largest node of each tree)."""
    adjacency: list[set[int]] = [set() for _ in nodes]
    for u, v in edges:
        adjacency[u].add(v)
        adjacency[v].add(u)
    cells = [math.prod(sizes[a] for a in n) for n in nodes]
    seen: dict[int, int] = {}
    order: list[int] = []
    parent_of: dict[int, int] = {}
    for start in sorted(range(len(nodes)), key=lambda i: -cells[i]):
        if start in seen:
            continue
        seen[start] = len(order)
        queue = deque([start])
        parent_of[start] = -1
        while queue:
            u = queue.popleft()
            order.append(u)
            for v in sorted(adjacency[u]):
                if v not in seen:
                    seen[v] = 1
                    parent_of[v] = u
                    queue.append(v)
    position = {u: k for k, u in enumerate(order)}
    return JunctionTree(
        sizes=tuple(sizes),
        nodes=[nodes[u] for u in order],
        parent=[-1 if parent_of[u] < 0 else position[parent_of[u]] for u in order],
    )


def augment(tree: JunctionTree, q: Clique) -> JunctionTree:
    """``tree`` changed so that one node holds ``q`` (unchanged when a node already does)."""
    if tree.node_holding(tuple(sorted(q))) is not None:
        return tree
    nodes, adjacency = _augmented(tree, q)
    alive = _contract(nodes, adjacency)
    keep = sorted(alive)
    index = {u: k for k, u in enumerate(keep)}
    edges = {(index[u], index[v]) for u in keep for v in adjacency[u] if u < v}
    return from_undirected(tree.sizes, [tuple(sorted(nodes[u])) for u in keep], edges)


def augmented_cells(tree: JunctionTree, q: Clique) -> int:
    """``augment(tree, q).cells()``, without ordering the new tree."""
    if tree.node_holding(tuple(sorted(q))) is not None:
        return tree.cells()
    nodes, adjacency = _augmented(tree, q)
    return sum(math.prod(tree.sizes[a] for a in nodes[u]) for u in _contract(nodes, adjacency))


def _augmented(tree: JunctionTree, q: Clique) -> tuple[list[set[int]], list[set[int]]]:
    """Nodes and adjacency of ``tree`` after adding ``q`` (before contracting contained nodes)."""
    q = tuple(sorted(q))
    nodes = [set(n) for n in tree.nodes]
    adjacency: list[set[int]] = [set() for _ in nodes]
    for i, p in enumerate(tree.parent):
        if p >= 0:
            adjacency[i].add(p)
            adjacency[p].add(i)
    groups: dict[int, list[int]] = {}
    for a in q:
        groups.setdefault(tree.path_up(_holder(nodes, a))[-1], []).append(a)
    anchors = [_link(nodes, adjacency, columns) for columns in groups.values()]
    if len(anchors) > 1:  # q spans several trees: a new node q joins them
        nodes.append(set(q))
        adjacency.append(set(anchors))
        for anchor in anchors:
            adjacency[anchor].add(len(nodes) - 1)
    return nodes, adjacency


def _holder(nodes: list[set[int]], a: int) -> int:
    return next(i for i, n in enumerate(nodes) if a in n)


def _link(nodes: list[set[int]], adjacency: list[set[int]], columns: list[int]) -> int:
    """Within one tree, add ``columns`` to the nodes of a subtree that links their holders;
    return a node that then holds all of them.

    The subtree grows one column at a time: a shortest path from the subtree built so far
    (at first: the nodes holding the first column) to the nodes holding the next column. Each
    column's nodes stay connected, so the result is still a junction tree.
    """
    region = {i for i, n in enumerate(nodes) if columns[0] in n}
    linked: set[int] = set()
    for a in columns[1:]:
        targets = {i for i, n in enumerate(nodes) if a in n}
        linked |= set(_shortest_path(adjacency, region, targets))
        region = linked
    if not linked:
        return min(region, key=lambda i: len(nodes[i]))
    for i in linked:
        nodes[i] |= set(columns)
    return next(iter(linked))


def _shortest_path(adjacency: list[set[int]], sources: set[int], targets: set[int]) -> list[int]:
    previous = {s: -1 for s in sources}
    queue = deque(sorted(sources))
    while queue:
        u = queue.popleft()
        if u in targets:
            path = [u]
            while previous[path[-1]] >= 0:
                path.append(previous[path[-1]])
            return path
        for v in sorted(adjacency[u]):
            if v not in previous:
                previous[v] = u
                queue.append(v)
    raise ValueError("no path between the nodes (they are in different trees)")


def _contract(nodes: list[set[int]], adjacency: list[set[int]]) -> set[int]:
    """Contract every node contained in a neighbour into that neighbour (edits ``adjacency``);
    return the surviving nodes."""
    alive = set(range(len(nodes)))
    changed = True
    while changed:
        changed = False
        for u in sorted(alive):
            v = next((v for v in sorted(adjacency[u]) if nodes[u] <= nodes[v]), None)
            if v is None:
                continue
            for w in adjacency[u] - {v}:
                adjacency[w].discard(u)
                adjacency[w].add(v)
                adjacency[v].add(w)
            adjacency[v].discard(u)
            adjacency[u] = set()
            alive.discard(u)
            changed = True
    return alive
