"""From attack scores to attack metrics: AUROC, TPR at fixed low FPRs, a thinned ROC curve.

Scores are "higher means member"; labels are 1 for members (train rows) and 0 for
non-members (holdout rows).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from dpsynth.errors import DataError

DEFAULT_FPRS = (0.01, 0.001)


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr_target: float) -> float:
    """Largest TPR over thresholds whose FPR does not exceed ``fpr_target`` (0 if none)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    ok = fpr <= fpr_target + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def thin_curve(fpr: np.ndarray, tpr: np.ndarray, *, points: int = 101) -> dict:
    """ROC curve resampled on a log-spaced FPR grid (enough for a plot; plain lists)."""
    grid = np.unique(np.concatenate([[0.0], np.logspace(-3, 0, points - 1)]))
    values = np.interp(grid, fpr, tpr)
    return {"fpr": [round(float(x), 6) for x in grid], "tpr": [round(float(y), 6) for y in values]}


def summarize_attack(labels: np.ndarray, scores: np.ndarray, *, fprs=DEFAULT_FPRS, curve: bool = True) -> dict:
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=float)
    if labels.shape != scores.shape:
        raise DataError(f"attack scores ({scores.shape}) and labels ({labels.shape}) differ in shape")
    if len(np.unique(labels)) < 2:
        return {"auroc": None, "n_members": int(labels.sum()), "n_non_members": int((1 - labels).sum()),
                **{_key(f): None for f in fprs}}
    scores = np.nan_to_num(scores, nan=np.nanmin(scores) if np.isfinite(scores).any() else 0.0,
                           posinf=np.finfo(float).max, neginf=-np.finfo(float).max)
    out = {
        "auroc": float(roc_auc_score(labels, scores)),
        "n_members": int(labels.sum()),
        "n_non_members": int((1 - labels).sum()),
    }
    for f in fprs:
        out[_key(f)] = tpr_at_fpr(labels, scores, f)
    if curve:
        fpr, tpr, _ = roc_curve(labels, scores)
        out["roc"] = thin_curve(fpr, tpr)
    return out


def _key(fpr: float) -> str:
    return f"tpr_at_fpr_{fpr:g}"
