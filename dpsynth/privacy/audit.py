"""Empirical epsilon lower bounds from one training run (Steinke, Nasr and Jagielski 2023).

The audit inserts m canaries, each independently with probability 1/2, trains once, scores
every canary (high = "was in the training set"), guesses "in" for the k_pos highest scores and
"out" for the k_neg lowest, and counts the correct guesses v out of r = k_pos + k_neg.

For an (epsilon, delta)-DP training algorithm the number of correct guesses W satisfies
(their Theorem 5.2)::

    P[W >= v] <= P[Binomial(r, p_eps) >= v] + 2 m delta * max_{1<=i<=v} (1/i) P[v - i <= Binomial(r, p_eps) < v]

with ``p_eps = e^eps / (1 + e^eps)``. The lower bound is the largest epsilon this inequality
rejects at the chosen confidence: the training run is, with that confidence, *not*
(epsilon', delta)-DP for any epsilon' below it. Several guess sizes are tried with a Bonferroni
correction, so picking the best of them keeps the confidence level.

The canary insertion and scoring live in :mod:`dpsynth.privacy.canaries`; this module holds
only the statistics, and :func:`audit_generator`, which runs one audit with any generator.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.stats import binom

from dpsynth.errors import DataError

DEFAULT_GUESS_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


def p_value(*, m: int, r: int, v: int, epsilon: float, delta: float = 0.0) -> float:
    """Probability of >= v correct guesses out of r under an (epsilon, delta)-DP null."""
    if not 0 <= v <= r <= m:
        raise DataError(f"audit: need 0 <= correct <= guesses <= canaries, got {v}, {r}, {m}")
    p = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(binom.sf(v - 1, r, p))  # P[Binomial(r, p) >= v]
    if delta <= 0 or v == 0:
        return min(1.0, tail)
    # max_i (1/i) P[v - i <= Bin < v]: cumulative pmf below v, divided by the window length
    window = np.cumsum(binom.pmf(np.arange(v - 1, -1, -1), r, p))
    alpha = float(np.max(window / np.arange(1, v + 1)))
    return min(1.0, tail + 2.0 * m * delta * alpha)


def epsilon_lower_bound(*, m: int, r: int, v: int, delta: float = 0.0, confidence: float = 0.95) -> float:
    """The largest epsilon rejected at ``confidence`` by observing v of r guesses correct (0 if none)."""
    if not 0 < confidence < 1:
        raise DataError(f"audit: confidence must be in (0, 1), got {confidence}")
    alpha = 1.0 - confidence
    if r == 0 or p_value(m=m, r=r, v=v, epsilon=0.0, delta=delta) >= alpha:
        return 0.0
    low, high = 0.0, 1.0
    while p_value(m=m, r=r, v=v, epsilon=high, delta=delta) < alpha:
        low, high = high, 2 * high
        if high > 100:
            return low
    for _ in range(40):
        mid = 0.5 * (low + high)
        if p_value(m=m, r=r, v=v, epsilon=mid, delta=delta) < alpha:
            low = mid
        else:
            high = mid
    return low


def count_correct(included: np.ndarray, scores: np.ndarray, *, k_pos: int, k_neg: int) -> tuple[int, int]:
    """Guess 'in' for the k_pos highest scores, 'out' for the k_neg lowest; (guesses, correct)."""
    order = np.argsort(-scores, kind="stable")
    top, bottom = order[:k_pos], order[len(order) - k_neg:] if k_neg else order[:0]
    return k_pos + k_neg, int(included[top].sum() + (~included[bottom]).sum())


def audit_from_scores(included: Sequence[bool], scores: Sequence[float], *, delta: float, confidence: float = 0.95,
                      fractions: Sequence[float] = DEFAULT_GUESS_FRACTIONS) -> dict:
    """The Steinke et al. bound for each guess size (a fraction of m, split evenly between 'in'
    and 'out' guesses), Bonferroni-corrected over the sizes; the best one is reported."""
    included = np.asarray(included, dtype=bool)
    scores = np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf)
    m = len(included)
    if m < 4 or len(scores) != m:
        raise DataError(f"audit: need at least 4 canaries with one score each, got {m} canaries, {len(scores)} scores")
    per_test = 1.0 - (1.0 - confidence) / len(fractions)
    tries = []
    for fraction in fractions:
        r = max(2, int(round(fraction * m)))
        r -= r % 2
        guesses, correct = count_correct(included, scores, k_pos=r // 2, k_neg=r // 2)
        eps = epsilon_lower_bound(m=m, r=guesses, v=correct, delta=delta, confidence=per_test)
        tries.append({"guesses": guesses, "correct": correct, "epsilon_lower_bound": eps})
    best = max(tries, key=lambda t: t["epsilon_lower_bound"])
    return {"epsilon_lower_bound": best["epsilon_lower_bound"], "guesses": best["guesses"],
            "correct": best["correct"], "canaries": m, "included": int(included.sum()), "delta": delta,
            "confidence": confidence, "bonferroni_tests": len(fractions), "by_guess_size": tries,
            "auroc": _auroc(included, scores)}


def _auroc(included: np.ndarray, scores: np.ndarray) -> float | None:
    if included.all() or not included.any():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(included.astype(int), np.clip(scores, -1e300, 1e300)))


def audit_generator(generator, data, *, budget, rng: np.random.Generator, canaries: int = 500,
                    method: str = "auto", confidence: float = 0.95, n_synthetic: int | None = None) -> dict:
    """One audit: insert ``canaries`` (each with probability 1/2), train ``generator`` once with
    ``budget``, score the canaries and bound epsilon from below.

    ``method``: "white-box" (gradient canaries inside DP-SGD; generators with
    ``supports_canary_gradients``), "black-box" (outlier rows in the training table, scored by
    the distance to the nearest synthetic row; any generator) or "auto" (white-box if supported).
    The audit is a separate training run under the same budget; it changes no existing ledger."""
    from dpsynth.data.table import TableData
    from dpsynth.privacy.canaries import DiracCanaries, distance_scores, outlier_rows
    from dpsynth.privacy.unit_audit import with_canaries

    if method == "auto":
        method = "white-box" if getattr(generator, "supports_canary_gradients", False) else "black-box"
    if method not in ("white-box", "black-box"):
        raise DataError(f"audit method must be auto, white-box or black-box, got '{method}'")
    if canaries < 4:
        raise DataError(f"audit needs at least 4 canaries, got {canaries}")
    included = rng.random(canaries) < 0.5
    frame, schema = data.frame, data.schema
    if method == "white-box":
        if not getattr(generator, "supports_canary_gradients", False):
            raise DataError(f"generator '{generator.name}' does not support a white-box (gradient canary) audit")
        hook = DiracCanaries(included=included, seed=int(rng.integers(2**62)))
        generator._audit_hook = hook
        try:
            generator.fit(data if data.units is not None else TableData(frame, schema), budget=budget, rng=rng)
        finally:
            generator._audit_hook = None
        scores = hook.scores()
        score_note = "final value of each canary's dedicated discriminator weight (Dirac gradient canaries)"
    else:
        rows = outlier_rows(schema, canaries, rng=rng)
        train = with_canaries(data, rows[included])  # per patient: a canary is a new patient with k rows
        generator.fit(train, budget=budget, rng=rng)
        synthetic = generator.sample(n_synthetic or len(train.frame), rng=rng).frame
        scores = distance_scores(rows, synthetic, schema)
        score_note = "minus the distance to the nearest synthetic row (outlier canary rows)"
    ledger = generator.ledger_
    claimed = ledger.epsilon()
    out = audit_from_scores(included, scores, delta=ledger.delta, confidence=confidence)
    out.update({"method": method, "score": score_note, "generator": generator.name,
                "claimed_epsilon": None if math.isinf(claimed) else claimed, "non_private": ledger.non_private,
                "n_train": int(len(frame)),
                "unit": "row" if data.units is None else f"patient (canary = a new patient with {data.max_rows_per_unit} rows)"})
    out["verdict"] = _verdict(out)
    return out


def _verdict(result: dict) -> str:
    lb, claimed = result["epsilon_lower_bound"], result["claimed_epsilon"]
    if claimed is None:
        return "non-private reference: no claim to check"
    return "consistent with the claim" if lb <= claimed else "VIOLATION: lower bound exceeds the claimed epsilon"
