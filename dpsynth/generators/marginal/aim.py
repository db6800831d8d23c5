"""AIM (McKenna, Mullins, Sheldon & Miklau 2022), the adaptive iterative mechanism.

Workload W: all ``degree``-way marginals, weight 1. Candidates: every non-empty subset r of a
workload clique, with weight w_r = sum over s in W of |r & s|. With a zCDP budget rho, at most
T rounds and alpha = 0.9:

1. measure every one-way marginal with sigma = sqrt(T / (2 alpha rho));
2. each round t: (the last round, when less than two rounds' worth is left, takes all of it)
   - candidates are those whose junction tree stays under rho_used / rho * max_model_size;
   - select r by the exponential mechanism (epsilon = sqrt(8 (1 - alpha) rho / T) at
     first, sensitivity max w_r) on the score w_r (||M_r(D) - M_r(model)||_1 - sqrt(2/pi) sigma n_r);
   - measure M_r(D) with Gaussian noise sigma, re-fit the model (warm start);
   - if the model's M_r moved by less than sqrt(2/pi) sigma n_r, anneal: sigma /= 2, epsilon *= 2;
3. fit the final model with more iterations.

Fairness-aware option (``groups``): before step 1, the joint marginal of the sensitive group
columns and the target is measured once with ``group_share`` of rho (Gaussian, charged to the
ledger), and the AIM loop runs on the rest. Every later fit keeps that marginal, so each
subgroup's size and outcome rate are estimated directly instead of being left to the
selection. This follows the idea of putting the protected attributes' marginal in the
measured set (as MST always measures all one-way marginals); it costs only budget share.

Model size: a candidate's junction tree is the current tree augmented with it
(``structure.augment``); the kept tree is the smaller of that and mbi's greedy tree.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable

import numpy as np

from dpsynth.generators.marginal.fitting import Fit, fit_model
from dpsynth.generators.marginal.junction import Clique, JunctionTree
from dpsynth.generators.marginal.mbi_glue import greedy_tree
from dpsynth.generators.marginal.measure import Measurer
from dpsynth.generators.marginal.structure import augment, augmented_cells

ALPHA = 0.9  # share of each round's budget spent on measuring (the rest selects)
BYTES_PER_CELL = 8


def workload(d: int, degree: int, *, target: int | None = None, target_weight: float = 1.0,
             target_degree: int | None = None) -> dict[Clique, float]:
    """All ``degree``-way marginals (weight 1), those containing the target weighted
    ``target_weight``, plus every ``target_degree``-way marginal that contains the target."""
    out = {s: (target_weight if target is not None and target in s else 1.0)
           for s in itertools.combinations(range(d), min(degree, d))}
    if target is not None and target_degree is not None and target_degree > degree:
        for s in itertools.combinations(range(d), min(target_degree, d)):
            if target in s:
                out[s] = target_weight
    return out


def candidate_weights(d: int, degree: int, **workload_options) -> dict[Clique, float]:
    """Downward closure of the workload, each candidate weighted by its (weighted) overlap with it."""
    work = workload(d, degree, **workload_options)
    weights: dict[Clique, float] = {}
    for s in work:
        for k in range(1, len(s) + 1):
            for r in itertools.combinations(s, k):
                weights[r] = 0.0
    # sum_s c_s |r & s| = sum over the columns a of r of (sum of c_s over the s holding a)
    per_column = [0.0] * d
    for s, c in work.items():
        for a in s:
            per_column[a] += c
    for r in weights:
        weights[r] = float(sum(per_column[a] for a in r))
    return weights


def _smaller(a: JunctionTree, b: JunctionTree) -> JunctionTree:
    return a if a.cells() <= b.cells() else b


def run_aim(
    measurer: Measurer,
    *,
    rho: float,
    degree: int,
    max_model_size: float,
    max_rounds: int | None,
    pgm_iters: int,
    final_pgm_iters: int,
    estimator: str,
    progress: Callable[[dict], None] | None = None,
    target: int | None = None,
    target_weight: float = 1.0,
    target_degree: int | None = None,
    groups: tuple[int, ...] = (),
    group_share: float = 0.0,
) -> Fit:
    sizes = measurer.sizes
    d = len(sizes)
    rounds = max_rounds if max_rounds is not None else 16 * d
    plan = max(rounds, d)  # T of the paper; the one-way marginals take d / T of the measuring share
    weights = candidate_weights(d, degree, target=target, target_weight=target_weight, target_degree=target_degree)
    candidates = list(weights)
    sensitivity = max(weights.values())
    cells = {r: math.prod(sizes[a] for a in r) for r in candidates}
    max_cells = max_model_size * 2**20 / BYTES_PER_CELL

    measurements = []
    measurer.prefetch(candidates)  # a counting engine counts every candidate in a few passes
    if groups:  # fairness-aware: the group x target marginal first, with its own share of rho
        group_clique = tuple(sorted(set(groups) | ({target} if target is not None else set())))
        measurements = measurer.measure([group_clique], rho=group_share * rho,
                                        purpose=f"aim: group marginal {measurer.label(group_clique)} (fairness)")
        rho = (1.0 - group_share) * rho
    if measurer.non_private:  # exact measurements; a fixed number of greedy rounds
        sigma, epsilon = 1.0, 1.0
    else:
        sigma = math.sqrt(plan / (2 * ALPHA * rho))
        epsilon = math.sqrt(8 * (1 - ALPHA) * rho / plan)
    oneway = [(a,) for a in range(d)]
    rho_used = d / (2 * sigma**2)
    measurements += measurer.measure(oneway, rho=rho_used, purpose="aim: all one-way marginals")
    tree = greedy_tree(sizes, [m.clique for m in measurements])
    fit = fit_model(tree, measurements, iters=pgm_iters, estimator=estimator)
    answers = {r: measurer.answer(r) for r in candidates}  # PRIVATE: only inside the selection scores

    for t in range(1, rounds + 1):
        if measurer.non_private:
            last, share = t == min(rounds, 2 * d), t / min(rounds, 2 * d)
        else:
            remaining = rho - rho_used
            last = remaining < 2 * (1 / (2 * sigma**2) + epsilon**2 / 8) or t == rounds
            if last:
                sigma = math.sqrt(1 / (2 * ALPHA * remaining))
                epsilon = math.sqrt(8 * (1 - ALPHA) * remaining)
            rho_used += 1 / (2 * sigma**2) + epsilon**2 / 8
            share = rho_used / rho
        limit = share * max_cells
        # a clique q adds at most cells(q) x (current cells + 1): skip the exact size when that fits
        current = tree.cells()
        allowed = [r for r in candidates if tree.node_holding(r) is not None or cells[r] * (current + 1) <= limit
                   or augmented_cells(tree, r) <= limit]
        bias = math.sqrt(2 / math.pi) * sigma * measurer.contribution  # cell noise std is sigma x k
        scores = np.array([
            weights[r] * (np.abs(answers[r] - fit.total * fit.model.marginal(r).ravel()).sum() - bias * cells[r])
            for r in allowed
        ])
        chosen = allowed[measurer.select(scores, epsilon=epsilon, sensitivity=sensitivity,
                                         purpose=f"aim round {t}: select a marginal")]
        before = fit.total * fit.model.marginal(chosen).ravel()
        measurements += measurer.measure(
            [chosen], rho=1 / (2 * sigma**2), purpose=f"aim round {t}: measure {measurer.label(chosen)}"
        )
        tree = _smaller(greedy_tree(sizes, [m.clique for m in measurements]), augment(tree, chosen))
        fit = fit_model(tree, measurements, iters=pgm_iters, estimator=estimator, warm=fit)
        after = fit.total * fit.model.marginal(chosen).ravel()
        if progress is not None:
            progress({"step": t, "steps": rounds, "selected": measurer.label(chosen), "sigma": sigma,
                      "cells": tree.cells(), "epsilon": measurer.ledger.epsilon()})
        if last:
            break
        if not measurer.non_private and np.abs(after - before).sum() <= bias * cells[chosen]:
            sigma, epsilon = sigma / 2, epsilon * 2
    return fit_model(tree, measurements, iters=final_pgm_iters, estimator=estimator, warm=fit)
