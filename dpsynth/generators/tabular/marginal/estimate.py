"""Fit a graphical model to noisy marginals: mirror descent over the marginal polytope.

This is Algorithm 1 of McKenna et al. 2019 ("Graphical-model based estimation and inference
for differential privacy"), the same algorithm as ``mbi.estimation.MirrorDescent`` (Armijo
step search, step size 2 / (L * total) at start, potentials on the maximal measured cliques),
written in numpy on :mod:`~dpsynth.generators.tabular.marginal.junction`. AIM re-estimates the model
after every measurement, each time with a new set of cliques; mbi recompiles its JAX program
for every new structure (seconds each on 2 CPU cores), which this estimator avoids.
``estimator="mbi"`` runs mbi's own MirrorDescent instead (see ``mbi_glue``); a unit test
checks that both reach the same model.

The loss is sum_M ||(marginal_M(mu) - y_M) / sigma_M||^2 / 2 over the noisy measurements.
Everything here is post-processing of DP measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from dpsynth.generators.tabular.marginal.junction import CalibratedTree, Clique, JunctionTree, calibrate, expand


@dataclass(frozen=True)
class Measurement:
    """A noisy marginal: ``values`` is the flattened count table over the sorted ``clique``;
    ``sigma`` the noise std of every cell (or one per cell)."""

    clique: Clique
    values: np.ndarray
    sigma: float | np.ndarray


def maximal(cliques: list[Clique]) -> list[Clique]:
    """Cliques not contained in another one (first occurrence order, duplicates dropped)."""
    unique = list(dict.fromkeys(tuple(sorted(c)) for c in cliques))
    return [c for c in unique if not any(set(c) < set(d) for d in unique)]


def estimate_total(measurements: list[Measurement]) -> float:
    """Inverse-variance weighted mean of the measurements' sums (at least 1)."""
    sums = np.array([m.values.sum() for m in measurements])
    variances = np.array([np.broadcast_to(np.square(m.sigma), m.values.shape).sum() for m in measurements])
    weights = 1.0 / variances
    return max(1.0, float((weights * sums).sum() / weights.sum()))


def projection_matrix(sizes: tuple[int, ...], big: Clique, small: Clique) -> sparse.csr_matrix:
    """0/1 matrix summing a flattened table over ``big`` down to its sub-clique ``small``."""
    shape = tuple(sizes[a] for a in big)
    grid = np.indices(shape).reshape(len(big), -1)
    target = np.ravel_multi_index(tuple(grid[big.index(a)] for a in small), tuple(sizes[a] for a in small)) \
        if small else np.zeros(grid.shape[1], dtype=np.int64)
    cells = grid.shape[1]
    return sparse.csr_matrix((np.ones(cells), (target, np.arange(cells))), shape=(math.prod(sizes[a] for a in small), cells))


class MirrorDescent:
    """Potentials on the maximal measured cliques, fitted on a junction tree that holds them.

    Potentials, clique marginals and measurements live in flat vectors; three sparse 0/1 maps
    link them: ``to_nodes`` (clique potentials -> node log-potentials, by broadcasting),
    its transpose (node marginals -> clique marginals, by summing) and ``queries`` (clique
    marginals -> measured marginals). Only the tree calibration loops over nodes.
    """

    def __init__(self, tree: JunctionTree, measurements: list[Measurement], total: float) -> None:
        self.tree = tree
        self.measurements = measurements
        self.total = total
        self.cliques = maximal([m.clique for m in measurements])
        node_of = [tree.node_holding(c) for c in self.cliques]
        if any(n is None for n in node_of):
            raise ValueError("the junction tree does not hold every measured clique")
        home = [self._containing(m.clique, self.cliques) for m in measurements]
        sizes = tree.sizes
        self._clique_cells = [math.prod(tree.shape(c)) for c in self.cliques]
        self._clique_start = np.cumsum([0] + self._clique_cells)
        node_cells = [math.prod(tree.shape(n)) for n in tree.nodes]
        self._node_start = np.cumsum([0] + node_cells)
        # clique potentials -> node log-potentials (each clique broadcast into its node)
        blocks = [[None] * len(self.cliques) for _ in tree.nodes]
        for j, (c, n) in enumerate(zip(self.cliques, node_of)):
            blocks[n][j] = projection_matrix(sizes, tree.nodes[n], c).T
        for n, row in enumerate(blocks):
            if all(b is None for b in row):
                row[0] = sparse.csr_matrix((node_cells[n], self._clique_cells[0]))
        for j in range(len(self.cliques)):
            if all(blocks[n][j] is None for n in range(len(tree.nodes))):
                blocks[0][j] = sparse.csr_matrix((node_cells[0], self._clique_cells[j]))
        self._to_nodes = sparse.bmat(blocks, format="csr")
        self._to_cliques = self._to_nodes.T.tocsr()
        # clique marginals -> measured marginals
        rows = [[None] * len(self.cliques) for _ in measurements]
        for i, (m, h) in enumerate(zip(measurements, home)):
            rows[i][h] = projection_matrix(sizes, self.cliques[h], m.clique)
        for j in range(len(self.cliques)):
            if all(rows[i][j] is None for i in range(len(measurements))):
                rows[0][j] = sparse.csr_matrix((math.prod(tree.shape(measurements[0].clique)), self._clique_cells[j]))
        self._queries = sparse.bmat(rows, format="csr")
        self._y = np.concatenate([m.values for m in measurements])
        self._inv_sigma = np.concatenate([np.broadcast_to(1.0 / np.asarray(m.sigma, float), m.values.shape)
                                          for m in measurements])
        # Lipschitz constant of the loss gradient (exact for marginal queries), as mbi computes it
        lipschitz = np.zeros(len(self.cliques))
        for m, h in zip(measurements, home):
            lipschitz[h] += self._clique_cells[h] / math.prod(tree.shape(m.clique)) / float(np.min(m.sigma)) ** 2
        self.lipschitz = float(lipschitz.max())

    @staticmethod
    def _containing(clique: Clique, cliques: list[Clique]) -> int:
        return next(i for i, c in enumerate(cliques) if set(clique) <= set(c))

    # ---- potentials as tables <-> one flat vector -----------------------------------------
    def expand_potentials(self, theta: dict[Clique, np.ndarray]) -> np.ndarray:
        """Warm start: earlier potentials added into the (larger or equal) current cliques."""
        flat = np.zeros(self._clique_start[-1])
        for clique, table in theta.items():
            j = self._containing(clique, self.cliques)
            c = self.cliques[j]
            block = np.broadcast_to(expand(table, clique, c), self.tree.shape(c)).ravel()
            flat[self._clique_start[j]:self._clique_start[j + 1]] += block
        return flat

    def tables(self, flat: np.ndarray) -> dict[Clique, np.ndarray]:
        return {c: flat[self._clique_start[j]:self._clique_start[j + 1]].reshape(self.tree.shape(c)).copy()
                for j, c in enumerate(self.cliques)}

    # ---- the oracle and the loss ----------------------------------------------------------
    def marginals(self, theta: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """(node marginals summing to 1, flat clique marginals summing to total each)."""
        logpot = self._to_nodes @ theta
        nodes = calibrate(self.tree, [logpot[a:b].reshape(self.tree.shape(n)) for a, b, n in
                                      zip(self._node_start[:-1], self._node_start[1:], self.tree.nodes)])
        mu = self.total * (self._to_cliques @ np.concatenate([t.ravel() for t in nodes]))
        return nodes, mu

    def loss(self, mu: np.ndarray) -> float:
        diff = (self._queries @ mu - self._y) * self._inv_sigma
        return 0.5 * float(diff @ diff)

    def loss_and_grad(self, mu: np.ndarray) -> tuple[float, np.ndarray]:
        diff = (self._queries @ mu - self._y) * self._inv_sigma
        return 0.5 * float(diff @ diff), self._queries.T @ (diff * self._inv_sigma)

    # ---- the loop -------------------------------------------------------------------------
    def run(self, iters: int, theta: np.ndarray | None = None, *,
            step: float | None = None) -> tuple[dict[Clique, np.ndarray], CalibratedTree]:
        """``iters`` Armijo steps from ``theta``; the first step size is ``step`` (e.g. where an
        earlier warm-started run ended, see ``self.step``) or 2 / (L x total). Grows 1% per
        accepted step, halves on a rejected one."""
        theta = np.zeros(self._clique_start[-1]) if theta is None else theta
        alpha = step if step is not None else 2.0 / (self.lipschitz * self.total)
        nodes, mu = self.marginals(theta)
        for _ in range(iters):
            loss, grad = self.loss_and_grad(mu)
            theta2 = theta - alpha * grad
            nodes2, mu2 = self.marginals(theta2)
            loss2 = self.loss(mu2)
            if loss - loss2 >= 0.5 * alpha * float(grad @ (mu - mu2)):
                theta, nodes, mu, alpha = theta2, nodes2, mu2, 1.01 * alpha
            else:
                alpha = 0.5 * alpha
        self.step = alpha  # where the step search ended: a warm start may begin there
        return self.tables(theta), CalibratedTree(self.tree, nodes)
