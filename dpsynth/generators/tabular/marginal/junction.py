"""A calibrated junction tree in numpy: the fitted model of ``aim`` and ``mst``.

The model is a list of nodes (sorted tuples of column indices) in top-down order, each with a
parent (-1 for a root: a forest is allowed, its trees are independent) and the node's
probability table (the model's marginal on those columns, summing to 1). The joint is
prod(node marginals) / prod(separator marginals). From it:

- ``sample``: forward sampling, root first, each child conditional on its separator;
  vectorised over rows with one ``searchsorted`` per node. Evidence (exact conditioning)
  zeroes the cells that disagree with it and passes the evidence up the tree once
  (Hugin collect), after which the same forward sampling draws from P(x | evidence).
- ``marginal(clique)``: any marginal, by summing a node when one holds the clique, else by
  contracting the smallest subtree that connects the clique's columns.
- ``calibrate(tree, log_potentials)``: node marginals from log-potentials (the estimator's
  oracle): an upward log-sum-exp pass, then top-down conditionals.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from dpsynth.errors import DpsynthError

Clique = tuple[int, ...]


# ---- small table helpers (tables have one axis per column of a sorted clique) --------------
@functools.lru_cache(maxsize=None)
def _drop(axes: Clique, onto: Clique) -> tuple[int, ...]:
    return tuple(i for i, a in enumerate(axes) if a not in onto)


@functools.lru_cache(maxsize=None)
def _positions(axes: Clique, onto: Clique) -> tuple[int, ...]:
    return tuple(onto.index(a) for a in axes)


def project(table: np.ndarray, axes: Clique, onto: Clique) -> np.ndarray:
    """Sum ``table`` (over ``axes``) down to the columns ``onto`` (a subset; sorted order kept)."""
    drop = _drop(axes, onto)
    return np.add.reduce(table, axis=drop) if drop else table


def expand(table: np.ndarray, axes: Clique, onto: Clique) -> np.ndarray:
    """Reshape a table over ``axes`` so it broadcasts against a table over ``onto`` (a superset)."""
    shape = [1] * len(onto)
    for position, size in zip(_positions(axes, onto), table.shape):
        shape[position] = size
    return table.reshape(shape)


def logsumexp(table: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    if not axis:
        return table
    peak = table.max(axis=axis, keepdims=True)
    out = np.log(np.exp(table - peak).sum(axis=axis, keepdims=True)) + peak
    return out.squeeze(axis=axis)


@dataclass
class JunctionTree:
    """Tree structure over columns (no probabilities): nodes in top-down order and parents."""

    sizes: tuple[int, ...]
    nodes: list[Clique]
    parent: list[int]
    separators: list[Clique] = field(init=False)

    def __post_init__(self) -> None:
        self.nodes = [tuple(sorted(n)) for n in self.nodes]
        if len(self.parent) != len(self.nodes) or any(not -1 <= p < i for i, p in enumerate(self.parent)):
            raise DpsynthError("junction tree nodes must be in top-down order (each parent before its child)")
        self.separators = [
            () if p < 0 else tuple(a for a in node if a in self.nodes[p]) for node, p in zip(self.nodes, self.parent)
        ]
        self._holding: dict[Clique, int | None] = {}

    def shape(self, clique: Sequence[int]) -> tuple[int, ...]:
        return tuple(self.sizes[a] for a in clique)

    def cells(self) -> int:
        return sum(math.prod(self.shape(n)) for n in self.nodes)

    def node_holding(self, clique: Sequence[int]) -> int | None:
        """Index of the smallest node that contains ``clique``, or None (cached per tree)."""
        key = tuple(clique)
        if key not in self._holding:
            want = set(key)
            holders = [i for i, node in enumerate(self.nodes) if want <= set(node)]
            self._holding[key] = min(holders, key=lambda i: math.prod(self.shape(self.nodes[i]))) if holders else None
        return self._holding[key]

    def path_up(self, i: int) -> list[int]:
        out = [i]
        while self.parent[out[-1]] >= 0:
            out.append(self.parent[out[-1]])
        return out

    def steiner(self, targets: Sequence[int]) -> list[int] | None:
        """Nodes of the smallest subtree that connects ``targets``; None if they are in different trees."""
        paths = [self.path_up(t) for t in targets]
        roots = {p[-1] for p in paths}
        if len(roots) > 1:
            return None
        # the subtree is the union of each path up to the deepest common ancestor
        common = set(paths[0]).intersection(*map(set, paths[1:]))
        top = next(n for n in paths[0] if n in common)
        keep: set[int] = set()
        for p in paths:
            keep.update(p[: p.index(top) + 1])
        return sorted(keep)


def calibrate(tree: JunctionTree, log_potentials: list[np.ndarray]) -> list[np.ndarray]:
    """Node marginals (each summing to 1) of the model exp(sum of node log-potentials)."""
    belief = [lp.astype(float, copy=True) for lp in log_potentials]
    message: list[np.ndarray | None] = [None] * len(tree.nodes)
    for i in range(len(tree.nodes) - 1, -1, -1):  # leaves first
        node, sep, p = tree.nodes[i], tree.separators[i], tree.parent[i]
        message[i] = logsumexp(belief[i], _drop(node, sep))
        if p >= 0:
            belief[p] = belief[p] + expand(message[i], sep, tree.nodes[p])
    marginals: list[np.ndarray] = [None] * len(tree.nodes)  # type: ignore[list-item]
    for i, (node, sep, p) in enumerate(zip(tree.nodes, tree.separators, tree.parent)):
        cond = np.exp(belief[i] - expand(message[i], sep, node))  # P(node \ sep | sep); at a root: P(node)
        if p >= 0:
            cond = cond * expand(project(marginals[p], tree.nodes[p], sep), sep, node)
        marginals[i] = cond
    return marginals


@dataclass
class CalibratedTree:
    """A junction tree with its node marginals: the fitted, sampleable model."""

    tree: JunctionTree
    marginals: list[np.ndarray]
    # answered marginal queries and node conditionals (AIM scores hundreds of candidates per
    # model, which share sub-queries); read-only arrays, never part of the state
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    # ---- marginal queries -----------------------------------------------------------------
    def marginal(self, clique: Sequence[int]) -> np.ndarray:
        """The model's marginal over ``clique`` (sorted column indices), summing to 1 (read-only)."""
        clique = tuple(sorted(clique))
        found = self._memo.get(clique)
        if found is None:
            found = self._marginal(clique)
            if found.base is not None or not found.flags.owndata:
                found = found.copy()
            found.setflags(write=False)
            self._memo[clique] = found
        return found

    def _marginal(self, clique: tuple[int, ...]) -> np.ndarray:
        tree = self.tree
        holder = tree.node_holding(clique)
        if holder is not None:
            return project(self.marginals[holder], tree.nodes[holder], clique)
        targets = [tree.node_holding((a,)) for a in clique]
        sub = tree.steiner(targets)
        if sub is None:  # columns in different trees: independent parts
            return _outer_by_tree(self, clique)
        top = min(sub)  # top-down order: the subtree's top node has the smallest index
        operands: list = []
        letters = {a: k for k, a in enumerate(sorted({a for i in sub for a in tree.nodes[i]}))}
        for i in sub:
            node = tree.nodes[i]
            table = self.marginals[i] if i == top else self._conditional(i)
            operands += [table, [letters[a] for a in node]]
        # a contraction path only pays off from three tables on (numpy would search one for every call)
        return np.einsum(*operands, [letters[a] for a in clique], optimize="greedy" if len(sub) > 2 else False)

    def _conditional(self, i: int) -> np.ndarray:
        key = ("conditional", i)
        if key not in self._memo:
            node, sep = self.tree.nodes[i], self.tree.separators[i]
            denom = expand(project(self.marginals[i], node, sep), sep, node)
            self._memo[key] = np.divide(self.marginals[i], denom, out=np.zeros_like(self.marginals[i]),
                                        where=denom > 0)
        return self._memo[key]

    # ---- sampling -------------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator, evidence: dict[int, int] | None = None) -> np.ndarray:
        """(n, n_columns) int codes drawn from the model, given exact ``evidence`` {column: code}.

        The result is a transposed view of a column-major array (each column contiguous)."""
        tree = self.tree
        tables = self._evidence_tables(evidence or {})
        codes = np.zeros((len(tree.sizes), n), dtype=np.int32)
        for i, (node, sep) in enumerate(zip(tree.nodes, tree.separators)):
            new = tuple(a for a in node if a not in sep)
            if not new:
                continue
            # rows of the table: separator configurations; columns: the new columns' configurations
            order = [node.index(a) for a in sep + new]
            table = np.transpose(tables[i], order).reshape(-1, math.prod(tree.shape(new)))
            sep_index = codes[sep[0]].astype(np.int64) if sep else np.zeros(n, dtype=np.int64)
            for a in sep[1:]:  # row-major index of the separator configuration
                sep_index *= tree.sizes[a]
                sep_index += codes[a]
            flat = _draw_rows(table, sep_index, rng)
            if len(new) == 1:
                codes[new[0]] = flat
                continue
            for a in reversed(new):
                codes[a] = flat % tree.sizes[a]
                flat //= tree.sizes[a]
        return codes.T

    def _evidence_tables(self, evidence: dict[int, int]) -> list[np.ndarray]:
        """Per node, a table proportional to P(node \\ sep | sep, evidence) (P(node | evidence) at roots)."""
        tree = self.tree
        phi = [m.copy() for m in self.marginals]
        for i, node in enumerate(tree.nodes):
            for a, code in evidence.items():
                if a in node:
                    mask = np.zeros(tree.sizes[a])
                    mask[code] = 1.0
                    phi[i] = phi[i] * expand(mask, (a,), node)
        if evidence:  # collect the evidence towards the roots (Hugin): phi_p *= lambda_s / mu_s
            for i in range(len(tree.nodes) - 1, -1, -1):
                p, node, sep = tree.parent[i], tree.nodes[i], tree.separators[i]
                if p < 0:
                    if phi[i].sum() <= 0:
                        raise DpsynthError("the conditions have probability 0 under the fitted model")
                    continue
                lam = project(phi[i], node, sep)
                mu = project(self.marginals[i], node, sep)
                ratio = np.divide(lam, mu, out=np.zeros_like(lam), where=mu > 0)
                phi[p] = phi[p] * expand(ratio, sep, tree.nodes[p])
        return phi


def _draw_rows(table: np.ndarray, row: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each sample k, draw a column of ``table[row[k]]`` (rows normalised; an all-zero row is uniform)."""
    totals = table.sum(axis=1, keepdims=True)
    probs = np.divide(table, totals, out=np.full_like(table, 1.0 / table.shape[1]), where=totals > 0)
    cdf = np.cumsum(probs, axis=1)
    cdf[:, -1] = 1.0
    u = rng.random(len(row))
    if len(cdf) == 1:
        return np.minimum(np.searchsorted(cdf[0], u, side="right"), table.shape[1] - 1)
    if table.shape[1] <= 4:  # few outcomes: count the cdf steps at or below u (cheaper than a search)
        out = np.zeros(len(row), dtype=np.int64)
        for j in range(table.shape[1] - 1):
            out += cdf[:, j][row] <= u
        return out
    # one monotone array: row r's cdf shifted by r; a draw u in row r becomes r + u
    shifted = (cdf + np.arange(len(cdf))[:, None]).ravel()
    u += row
    pos = np.searchsorted(shifted, u, side="right")
    pos -= row * table.shape[1]
    return np.minimum(pos, table.shape[1] - 1, out=pos)


def _outer_by_tree(model: CalibratedTree, clique: Clique) -> np.ndarray:
    """Marginal of columns spread over several trees of a forest: product of per-tree marginals."""
    tree = model.tree
    groups: dict[int, list[int]] = {}
    for a in clique:
        groups.setdefault(tree.path_up(tree.node_holding((a,)))[-1], []).append(a)
    result, axes = np.ones(()), ()
    for cols in groups.values():
        part = model.marginal(tuple(cols))
        result = np.multiply.outer(result, part)
        axes = axes + tuple(cols)
    order = [axes.index(a) for a in clique]
    return np.transpose(result, order)
