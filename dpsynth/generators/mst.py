"""``mst``: the NIST-contest winner (McKenna et al. 2021): one-way marginals, a spanning tree of
column pairs chosen with the exponential mechanism, its 2-way marginals, a tree-structured
graphical model. Every measurement and selection is charged to the ledger; the budget is
planned in zCDP rho under the ledger's own accountant, so the run ends at the target epsilon.
Conditioning is exact (evidence in the graphical model).
See :mod:`dpsynth.generators.marginal.mst` for the algorithm.
"""

from __future__ import annotations

from typing import Callable

from dpsynth.errors import DpsynthError
from dpsynth.generators.marginal.fitting import ESTIMATORS, Fit
from dpsynth.generators.marginal.generator import GraphicalModelGenerator
from dpsynth.generators.marginal.measure import Measurer
from dpsynth.generators.marginal.mst import run_mst
from dpsynth.generators.registry import register


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
