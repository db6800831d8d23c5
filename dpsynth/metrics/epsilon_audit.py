"""Empirical epsilon lower bounds from a membership attack, with Clopper-Pearson intervals.

An (epsilon, delta)-DP release bounds every membership test by
``TPR <= e^eps * FPR + delta`` and ``1 - FPR <= e^eps * (1 - TPR) + delta``; so
``eps >= log((TPR - delta) / FPR)`` and ``eps >= log((1 - FPR - delta) / (1 - TPR))``.
To make that a statistical lower bound we plug in a one-sided Clopper-Pearson lower bound for
the numerator rate and an upper bound for the denominator rate (each at alpha/2, so the pair
holds jointly with confidence 1 - alpha).

Picking the best threshold on the same rows that are then counted would bias the bound up,
so the rows are split: the threshold and the form are chosen on a calibration half and the
bound is computed on the other half (``calibration_fraction``; 0 disables the split and the
result is flagged ``optimistic``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import beta

from dpsynth.errors import DataError


def clopper_pearson(k: int, n: int, *, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided exact (1 - alpha) interval for a binomial proportion k / n."""
    if n <= 0 or not 0 <= k <= n:
        raise DataError(f"clopper_pearson: need 0 <= k <= n and n > 0, got k={k}, n={n}")
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def _one_sided(k: int, n: int, alpha: float, side: str) -> float:
    """One-sided (1 - alpha) Clopper-Pearson bound: side='lower' or 'upper'."""
    lo, hi = clopper_pearson(k, n, alpha=2 * alpha)
    return lo if side == "lower" else hi


def _eps_forms(tp: int, n_pos: int, fp: int, n_neg: int, *, delta: float, alpha: float) -> dict:
    """Both lower-bound forms at one threshold, with CIs at alpha/2 each."""
    a = alpha / 2
    tpr_lo, tpr_hi = _one_sided(tp, n_pos, a, "lower"), _one_sided(tp, n_pos, a, "upper")
    fpr_lo, fpr_hi = _one_sided(fp, n_neg, a, "lower"), _one_sided(fp, n_neg, a, "upper")
    direct = _safe_log(tpr_lo - delta, fpr_hi)
    symmetric = _safe_log(1 - fpr_hi - delta, 1 - tpr_lo)
    return {"direct": direct, "symmetric": symmetric, "tpr_lower": tpr_lo, "fpr_upper": fpr_hi,
            "tpr": tp / n_pos, "fpr": fp / n_neg, "tpr_upper": tpr_hi, "fpr_lower": fpr_lo}


def _safe_log(num: float, den: float) -> float:
    if num <= 0:
        return 0.0
    if den <= 0:
        return math.inf
    return max(0.0, math.log(num / den))


def _counts(scores_pos, scores_neg, threshold):
    return int((scores_pos >= threshold).sum()), int((scores_neg >= threshold).sum())


def _best_threshold(pos: np.ndarray, neg: np.ndarray, *, delta: float, alpha: float) -> tuple[float, str, float]:
    candidates = np.unique(np.concatenate([pos, neg]))
    if len(candidates) > 400:
        candidates = np.unique(np.quantile(candidates, np.linspace(0, 1, 401)))
    best = (candidates[0], "direct", -1.0)
    for t in candidates:
        tp, fp = _counts(pos, neg, t)
        forms = _eps_forms(tp, len(pos), fp, len(neg), delta=delta, alpha=alpha)
        for form in ("direct", "symmetric"):
            if forms[form] > best[2]:
                best = (float(t), form, forms[form])
    return best


def empirical_epsilon(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
    calibration_fraction: float = 0.5,
    rng: np.random.Generator,
) -> dict:
    """Empirical epsilon lower bound of one attack (members labelled 1, scores high = member)."""
    labels = np.asarray(labels, dtype=int)
    scores = np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf)
    if not 0 < confidence < 1:
        raise DataError(f"empirical_epsilon: confidence must be in (0, 1), got {confidence}")
    if not 0 <= delta < 1:
        raise DataError(f"empirical_epsilon: delta must be in [0, 1), got {delta}")
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) < 2 or len(neg) < 2:
        return {"epsilon_lower_bound": None, "reason": "too few members or non-members"}
    alpha = 1 - confidence
    optimistic = calibration_fraction <= 0
    if optimistic:
        cal_pos, cal_neg, ev_pos, ev_neg = pos, neg, pos, neg
    else:
        cal_pos, ev_pos = _split(pos, calibration_fraction, rng)
        cal_neg, ev_neg = _split(neg, calibration_fraction, rng)
    threshold, form, _ = _best_threshold(cal_pos, cal_neg, delta=delta, alpha=alpha)
    tp, fp = _counts(ev_pos, ev_neg, threshold)
    forms = _eps_forms(tp, len(ev_pos), fp, len(ev_neg), delta=delta, alpha=alpha)
    eps = forms[form]
    return {
        "epsilon_lower_bound": None if math.isinf(eps) else float(eps),
        "form": form,
        "threshold": threshold,
        "confidence": confidence,
        "delta": delta,
        "n_members": int(len(ev_pos)),
        "n_non_members": int(len(ev_neg)),
        "tpr": forms["tpr"],
        "fpr": forms["fpr"],
        "tpr_lower": forms["tpr_lower"],
        "fpr_upper": forms["fpr_upper"],
        "optimistic": optimistic,
    }


def _split(values: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(len(values))
    cut = min(max(1, int(round(fraction * len(values)))), len(values) - 1)
    return values[order[:cut]], values[order[cut:]]
