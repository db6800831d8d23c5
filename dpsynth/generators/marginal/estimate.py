"""Fit a graphical model to noisy marginals: mirror descent over the marginal polytope.

This is Algorithm 1 of McKenna et al. 2019 ("Graphical-model based estimation and inference
for differential privacy"), the same algorithm as ``mbi.estimation.MirrorDescent`` (Armijo
step search, step size 2 / (L * total) at start, potentials on the maximal measured cliques),
written in numpy on :mod:`~dpsynth.generators.marginal.junction`. AIM re-estimates the model
after every measurement, each time with a new set of cliques; mbi recompiles its JAX program
for every new structure (seconds each on CPU), which this estimator avoids. The released
model of ``aim`` and ``mst`` is refined by mbi's own MirrorDescent (see ``mbi_glue``).

The loss is sum_M ||(marginal_M(mu) - y_M) / sigma_M||^2 / 2 over the noisy measurements.
Everything here is post-processing of DP measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpsynth.generators.marginal.junction import CalibratedTree, Clique, JunctionTree, calibrate, expand, project


@dataclass(frozen=True)
class Measurement:
    """A noisy marginal: ``values`` is the flattened count table over the sorted ``clique``."""

    clique: Clique
    values: np.ndarray
    sigma: float


def maximal(cliques: list[Clique]) -> list[Clique]:
    """Cliques not contained in another one (first occurrence order, duplicates dropped)."""
    unique = list(dict.fromkeys(tuple(sorted(c)) for c in cliques))
    return [c for c in unique if not any(set(c) < set(d) for d in unique)]


def estimate_total(measurements: list[Measurement]) -> float:
    """Inverse-variance weighted mean of the measurements' sums (at least 1)."""
    sums = np.array([m.values.sum() for m in measurements])
    variances = np.array([m.sigma**2 * m.values.size for m in measurements])
    weights = 1.0 / variances
    return max(1.0, float((weights * sums).sum() / weights.sum()))


class MirrorDescent:
    """Potentials on the maximal measured cliques, fitted on a junction tree that holds them."""

    def __init__(self, tree: JunctionTree, measurements: list[Measurement], total: float) -> None:
        self.tree = tree
        self.measurements = measurements
        self.total = total
        self.cliques = maximal([m.clique for m in measurements])
        self.home = [self._containing(m.clique, self.cliques) for m in measurements]  # measured clique -> potential
        self.node_of = [tree.node_holding(c) for c in self.cliques]
        if any(n is None for n in self.node_of):
            raise ValueError("the junction tree does not hold every measured clique")
        # Lipschitz constant of the loss gradient (exact for marginal queries), as mbi computes it
        blocks = np.zeros(len(self.cliques))
        for m, h in zip(measurements, self.home):
            blocks[h] += self._cells(self.cliques[h]) / self._cells(m.clique) / m.sigma**2
        self.lipschitz = float(blocks.max())

    def _cells(self, clique: Clique) -> int:
        return int(np.prod(self.tree.shape(clique), dtype=np.int64))

    @staticmethod
    def _containing(clique: Clique, cliques: list[Clique]) -> int:
        return next(i for i, c in enumerate(cliques) if set(clique) <= set(c))

    # ---- the oracle and the loss ----------------------------------------------------------
    def zeros(self) -> list[np.ndarray]:
        return [np.zeros(self.tree.shape(c)) for c in self.cliques]

    def expand_potentials(self, theta: dict[Clique, np.ndarray]) -> list[np.ndarray]:
        """Warm start: earlier potentials added into the (larger or equal) current cliques."""
        out = self.zeros()
        for clique, table in theta.items():
            i = self._containing(clique, self.cliques)
            out[i] = out[i] + expand(table, clique, self.cliques[i])
        return out

    def marginals(self, theta: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(node marginals summing to 1, clique marginals summing to total)."""
        logpot = [np.zeros(self.tree.shape(n)) for n in self.tree.nodes]
        for c, node, table in zip(self.cliques, self.node_of, theta):
            logpot[node] = logpot[node] + expand(table, c, self.tree.nodes[node])
        nodes = calibrate(self.tree, logpot)
        mu = [self.total * project(nodes[n], self.tree.nodes[n], c) for c, n in zip(self.cliques, self.node_of)]
        return nodes, mu

    def loss_and_grad(self, mu: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        loss = 0.0
        grad = [np.zeros_like(t) for t in mu]
        for m, h in zip(self.measurements, self.home):
            c = self.cliques[h]
            diff = (project(mu[h], c, m.clique).ravel() - m.values) / m.sigma
            loss += 0.5 * float(diff @ diff)
            grad[h] = grad[h] + expand((diff / m.sigma).reshape(self.tree.shape(m.clique)), m.clique, c)
        return loss, grad

    def loss(self, mu: list[np.ndarray]) -> float:
        total = 0.0
        for m, h in zip(self.measurements, self.home):
            diff = (project(mu[h], self.cliques[h], m.clique).ravel() - m.values) / m.sigma
            total += 0.5 * float(diff @ diff)
        return total

    # ---- the loop -------------------------------------------------------------------------
    def run(self, iters: int, theta: list[np.ndarray] | None = None) -> tuple[dict[Clique, np.ndarray], CalibratedTree]:
        theta = self.zeros() if theta is None else theta
        alpha = 2.0 / (self.lipschitz * self.total)
        nodes, mu = self.marginals(theta)
        for _ in range(iters):
            loss, grad = self.loss_and_grad(mu)
            theta2 = [t - alpha * g for t, g in zip(theta, grad)]
            nodes2, mu2 = self.marginals(theta2)
            loss2 = self.loss(mu2)
            decrease = sum(float((g * (a - b)).sum()) for g, a, b in zip(grad, mu, mu2))
            if loss - loss2 >= 0.5 * alpha * decrease:
                theta, nodes, mu, alpha = theta2, nodes2, mu2, 1.01 * alpha
            else:
                alpha = 0.5 * alpha
        return dict(zip(self.cliques, theta)), CalibratedTree(self.tree, nodes)
