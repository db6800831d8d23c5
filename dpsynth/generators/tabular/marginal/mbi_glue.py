"""Everything that touches ``mbi`` (private-pgm 2.x), the optional extra ``dpsynth[marginal]``.

mbi is imported here, lazily, so ``import dpsynth.generators`` works without it. A fitted
model samples with numpy only (loading and sampling need no mbi).

- ``require_mbi``: the clear MissingExtraError when mbi is absent;
- ``greedy_tree``: mbi's junction tree for a set of cliques;
- ``mbi_estimate``: mbi's ``MirrorDescent`` on the same measurements, the reference estimator
  (``estimator="mbi"``); it recompiles its JAX program for every new set of cliques.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from dpsynth.errors import MissingExtraError
from dpsynth.generators.tabular.marginal.estimate import Measurement, MirrorDescent
from dpsynth.generators.tabular.marginal.junction import CalibratedTree, Clique, JunctionTree
from dpsynth.generators.tabular.marginal.structure import from_undirected


def require_mbi(generator: str):
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)  # mbi warns at import when JAX runs in float32
            import mbi
    except ImportError:
        raise MissingExtraError(
            f"generator '{generator}' needs the optional extra: pip install 'dpsynth[marginal]'"
        ) from None
    return mbi


def greedy_tree(sizes: Sequence[int], cliques: list[Clique]) -> JunctionTree:
    """mbi's junction tree for ``cliques`` over columns 0..len(sizes)-1 (every column is covered)."""
    mbi = require_mbi("aim/mst")
    from mbi.junction_tree import make_junction_tree

    domain = mbi.Domain(list(range(len(sizes))), list(sizes))
    graph, _ = make_junction_tree(domain, [tuple(c) for c in cliques])
    nodes = [tuple(sorted(n)) for n in graph.nodes]
    index = {n: i for i, n in enumerate(nodes)}
    edges = {(index[tuple(sorted(u))], index[tuple(sorted(v))]) for u, v in graph.edges}
    return from_undirected(sizes, nodes, edges)


def mbi_estimate(
    tree: JunctionTree,
    measurements: list[Measurement],
    total: float,
    *,
    iters: int,
    theta: dict[Clique, np.ndarray] | None = None,
) -> tuple[dict[Clique, np.ndarray], CalibratedTree]:
    """Fit with ``mbi.estimation.MirrorDescent`` (float64), warm-started from ``theta``; return the
    potentials and the model calibrated on ``tree``."""
    mbi = require_mbi("aim/mst")
    import jax

    sizes = tree.sizes
    engine = MirrorDescent(tree, measurements, total)
    with jax.enable_x64(True):
        domain = mbi.Domain(list(range(len(sizes))), list(sizes))
        lms = []
        for m in measurements:
            if np.ndim(m.sigma) == 0:
                lms.append(mbi.LinearMeasurement(np.asarray(m.values, float), m.clique, float(m.sigma)))
            else:  # per-cell noise: weight each cell by 1 / sigma, unit noise
                weights = 1.0 / np.asarray(m.sigma, float)
                lms.append(mbi.LinearMeasurement(m.values * weights, m.clique, 1.0, query=mbi.WeightedQuery(weights)))
        warm = None
        if theta:
            tables = engine.tables(engine.expand_potentials(theta))
            warm = mbi.CliqueVector(
                domain, engine.cliques, {c: mbi.Factor(domain.project(c), t) for c, t in tables.items()}
            )
        model = mbi.estimation.MirrorDescent().estimate(domain, lms, known_total=total, iters=iters, warm_start=warm)
        fitted = {tuple(c): np.asarray(model.potentials[c].values, dtype=float) for c in model.potentials.cliques}
    nodes, _ = engine.marginals(engine.expand_potentials(fitted))
    return fitted, CalibratedTree(tree, nodes)
