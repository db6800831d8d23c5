"""One call to fit the graphical model: numpy mirror descent (default) or mbi's (reference)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpsynth.errors import DpsynthError
from dpsynth.generators.tabular.marginal.compress import DomainMap
from dpsynth.generators.tabular.marginal.estimate import Measurement, MirrorDescent, estimate_total
from dpsynth.generators.tabular.marginal.junction import CalibratedTree, Clique, JunctionTree

ESTIMATORS = ("numpy", "mbi")


@dataclass
class Fit:
    theta: dict[Clique, np.ndarray]
    model: CalibratedTree
    total: float
    domain_map: DomainMap | None = None  # set when the model works on compressed codes (MST)
    step: float | None = None  # the numpy estimator's last step size (``fit_model(carry_step=True)``)


def fit_model(
    tree: JunctionTree,
    measurements: list[Measurement],
    *,
    iters: int,
    estimator: str,
    warm: Fit | None = None,
    carry_step: bool = False,
) -> Fit:
    """Fit potentials to ``measurements`` on ``tree`` (warm-started from an earlier fit).
    ``carry_step``: the numpy estimator starts its step search where ``warm``'s ended instead of
    at the conservative 2 / (L x total) (which needs hundreds of iterations to grow back)."""
    if estimator not in ESTIMATORS:
        raise DpsynthError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    total = estimate_total(measurements)
    theta0 = warm.theta if warm is not None else None
    if estimator == "mbi":
        from dpsynth.generators.tabular.marginal.mbi_glue import mbi_estimate

        theta, model = mbi_estimate(tree, measurements, total, iters=iters, theta=theta0)
        return Fit(theta, model, total)
    engine = MirrorDescent(tree, measurements, total)
    start = engine.expand_potentials(theta0) if theta0 else None
    step = warm.step if carry_step and warm is not None else None
    theta, model = engine.run(iters, start, step=step)
    return Fit(theta, model, total, step=engine.step)
