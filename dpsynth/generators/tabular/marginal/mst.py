"""``mst``: the NIST-contest winner (McKenna et al. 2021): one-way marginals, a spanning tree of
column pairs chosen with the exponential mechanism, its 2-way marginals, a tree-structured
graphical model. Every measurement and selection is charged to the ledger; the budget is
planned in zCDP rho under the ledger's own accountant, so the run ends at the target epsilon.
Conditioning is exact (evidence in the graphical model).

The algorithm (select-measure-generate):

With a zCDP budget rho split in thirds:
1. measure every one-way marginal (one Gaussian release, rho / 3); then compress the domain:
   per column, the cells whose noisy count is below 3 sigma merge into one (``compress``);
2. select a spanning tree of column pairs: fit the independent model to the noisy one-ways,
   score each pair by the L1 distance between its true 2-way marginal and the model's, and
   grow the tree Kruskal-style, each edge chosen among the pairs that join two components by
   the exponential mechanism (d - 1 selections sharing rho / 3, sensitivity 1; with a declared
   target and ``target_weight`` w > 1, pairs holding the target score w x error, sensitivity w);
3. measure the selected 2-way marginals (one Gaussian release, rho / 3);
4. fit the tree-structured graphical model to all measurements (on the compressed codes).
"""

from __future__ import annotations

import itertools
import math
from typing import Callable

import numpy as np

from dpsynth.errors import DpsynthError
from dpsynth.generators.registry import register
from dpsynth.generators.tabular.marginal.compress import compress
from dpsynth.generators.tabular.marginal.fitting import ESTIMATORS, Fit, fit_model
from dpsynth.generators.tabular.marginal.generator import GraphicalModelGenerator
from dpsynth.generators.tabular.marginal.mbi_glue import greedy_tree
from dpsynth.generators.tabular.marginal.measure import Measurer


class _Components:
    """Union-find over columns."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def run_mst(
    measurer: Measurer,
    *,
    rho: float,
    iters: int,
    estimator: str,
    compress_domain: bool = True,
    progress: Callable[[dict], None] | None = None,
    target: int | None = None,
    target_weight: float = 1.0,
) -> Fit:
    sizes = measurer.sizes
    d = len(sizes)
    oneway = [(a,) for a in range(d)]
    measurer.prefetch(oneway + list(itertools.combinations(range(d), 2)))  # a counting engine: few passes
    pairs_budget = rho / 3 if d > 1 else 0.0
    measurements = measurer.measure(oneway, rho=rho - 2 * pairs_budget, purpose="mst: all one-way marginals")
    domain_map = None
    if compress_domain and not measurer.non_private:
        domain_map, measurements = compress(measurements, sizes)
        measurer = measurer.recoded(domain_map.maps)
        sizes = measurer.sizes
    if d == 1:
        fit = fit_model(greedy_tree(sizes, oneway), measurements, iters=iters, estimator=estimator)
        fit.domain_map = domain_map
        return fit

    independent = fit_model(greedy_tree(sizes, oneway), measurements, iters=iters // 4 or 1, estimator=estimator)
    candidates = list(itertools.combinations(range(d), 2))
    errors = {}
    for pair in candidates:  # PRIVATE scores: used only by the exponential mechanism below
        estimate = independent.total * independent.model.marginal(pair).ravel()
        errors[pair] = float(np.abs(measurer.answer(pair) - estimate).sum())
        if target is not None and target in pair:  # target-aware tree (public weight; sensitivity below)
            errors[pair] *= target_weight
    sensitivity = target_weight if target is not None else 1.0

    components = _Components(d)
    epsilon = math.sqrt(8 * pairs_budget / (d - 1))
    selected = []
    for step in range(d - 1):
        open_pairs = [p for p in candidates if components.find(p[0]) != components.find(p[1])]
        choice = measurer.select(
            np.array([errors[p] for p in open_pairs]), epsilon=epsilon, sensitivity=sensitivity,
            purpose=f"mst: select tree edge {step + 1} of {d - 1}",
        )
        pair = open_pairs[choice]
        components.union(*pair)
        selected.append(pair)
        if progress is not None:
            progress({"step": step + 1, "steps": d - 1, "selected": measurer.label(pair),
                      "epsilon": measurer.ledger.epsilon()})

    measurements += measurer.measure(selected, rho=pairs_budget, purpose=f"mst: {len(selected)} two-way marginals")
    tree = greedy_tree(sizes, oneway + selected)
    fit = fit_model(tree, measurements, iters=iters, estimator=estimator, warm=independent)
    fit.domain_map = domain_map
    return fit


@register("mst")
class MST(GraphicalModelGenerator):
    _param_names = ("bins", "pgm_iters", "compress", "estimator", "target_weight")

    def __init__(self, *, bins: int = 16, pgm_iters: int = 1000, compress: bool = True, estimator: str = "numpy",
                 target_weight: float = 4.0) -> None:
        """bins: codes per numeric column; pgm_iters: mirror-descent iterations of the final fit;
        compress: merge the one-way cells whose noisy count is below 3 sigma (as MST does);
        estimator: 'numpy' (fast) or 'mbi' (mbi's MirrorDescent); target_weight: the tree-edge
        selection scores a pair that holds the schema's target x target_weight (sensitivity
        target_weight), so the tree links the target to what predicts it (1 = MST as published)."""
        self.bins = bins
        self.pgm_iters = pgm_iters
        self.compress = compress
        self.estimator = estimator
        self.target_weight = target_weight

    def _run(self, measurer: Measurer, rho: float, progress: Callable[[dict], None] | None, *,
             target: int | None = None) -> Fit:
        if self.estimator not in ESTIMATORS:
            raise DpsynthError(f"generator 'mst': estimator must be one of {', '.join(ESTIMATORS)}, got {self.estimator!r}")
        if not self.target_weight >= 1.0:
            raise DpsynthError(f"generator 'mst': target_weight must be >= 1, got {self.target_weight!r}")
        return run_mst(measurer, rho=rho, iters=self.pgm_iters, estimator=self.estimator, compress_domain=self.compress,
                       progress=progress, target=target, target_weight=self.target_weight)
