"""Honest image utility: what a synthetic-trained CNN's score means next to trivial baselines.

An accuracy of 0.86 x real says nothing when always predicting the majority class scores the
same (issue 12). So beside every synthetic-vs-real accuracy this module reports, for both CNNs
(trained on synthetic images / on real ones, tested on the same real test split):

- accuracy, balanced accuracy (mean per-class recall) and per-class recall;
- the majority-class baseline (the training split's most frequent class, always predicted):
  its accuracy, and its balanced accuracy (1 / number of classes present);
- macro one-vs-rest AUROC (binary: AUROC of class 1);
- for ordinal labels (e.g. RetinaMNIST's 5 diabetic-retinopathy grades), the quadratic-weighted
  Cohen kappa (scikit-learn) and the mean absolute grade error;
- a **verdict**: ``FAIL`` when the synthetic-trained CNN is no better than the majority class
  (balanced accuracy <= majority balanced accuracy + ``margin``, or it predicts one class for
  more than ``collapse_share`` of the test images), else ``PASS`` with the balanced-accuracy ratio
  synthetic / real; ``target`` (e.g. 0.9) adds whether that ratio reaches it.

Arrays in, numbers out: probabilities (N, K), integer labels.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import cohen_kappa_score, roc_auc_score

MARGIN = 0.02
COLLAPSE_SHARE = 0.95


def class_scores(probs: np.ndarray, labels: np.ndarray, *, n_classes: int, ordinal: bool = False) -> dict:
    """Accuracy, balanced accuracy, per-class recall, macro AUROC (+ kappa for ordinal labels)."""
    labels = np.asarray(labels, dtype=int)
    pred = np.asarray(probs).argmax(axis=1)
    present = [c for c in range(n_classes) if (labels == c).any()]
    recall = {c: float((pred[labels == c] == c).mean()) for c in present}
    out = {"accuracy": float((pred == labels).mean()),
           "balanced_accuracy": float(np.mean(list(recall.values()))),
           "per_class_recall": {str(c): round(r, 4) for c, r in recall.items()},
           "predicted_share": np.bincount(pred, minlength=n_classes).astype(float).round(0).tolist(),
           "max_predicted_share": float(np.bincount(pred, minlength=n_classes).max() / max(1, len(pred))),
           "auroc": macro_auroc(probs, labels, present)}
    if ordinal:
        out["quadratic_weighted_kappa"] = float(cohen_kappa_score(labels, pred, weights="quadratic"))
        out["mean_absolute_grade_error"] = float(np.abs(pred - labels).mean())
    return out


def macro_auroc(probs: np.ndarray, labels: np.ndarray, present) -> float:
    if len(present) < 2:
        return math.nan
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    return float(np.mean([roc_auc_score(labels == c, probs[:, c]) for c in present]))


def majority_baseline(train_labels: np.ndarray, test_labels: np.ndarray, *, n_classes: int,
                      ordinal: bool = False) -> dict:
    """Scores of always predicting the training split's majority class."""
    majority = int(np.bincount(np.asarray(train_labels, dtype=int), minlength=n_classes).argmax())
    probs = np.zeros((len(test_labels), n_classes))
    probs[:, majority] = 1.0
    out = class_scores(probs, test_labels, n_classes=n_classes, ordinal=ordinal)
    out["auroc"] = 0.5
    return {"majority_class": majority, **out}


def utility_verdict(synthetic: dict, real: dict, majority: dict, *, target: float | None = None,
                    margin: float = MARGIN, collapse_share: float = COLLAPSE_SHARE) -> dict:
    """PASS/FAIL of a synthetic-trained CNN against the majority class and the real-trained CNN."""
    ratio = synthetic["balanced_accuracy"] / real["balanced_accuracy"] if real["balanced_accuracy"] > 0 else math.nan
    reasons = []
    if synthetic["balanced_accuracy"] <= majority["balanced_accuracy"] + margin:
        reasons.append(f"balanced accuracy {synthetic['balanced_accuracy']:.3f} is no better than the majority class"
                       f" ({majority['balanced_accuracy']:.3f} + {margin:g})")
    if synthetic["max_predicted_share"] > collapse_share:
        reasons.append(f"predicts one class for {synthetic['max_predicted_share']:.0%} of the test images")
    out = {"verdict": "FAIL" if reasons else "PASS", "reasons": reasons, "balanced_accuracy_ratio": ratio,
           "accuracy_ratio": synthetic["accuracy"] / real["accuracy"] if real["accuracy"] > 0 else math.nan,
           "majority_accuracy": majority["accuracy"], "majority_balanced_accuracy": majority["balanced_accuracy"]}
    real_trivial = real["balanced_accuracy"] <= majority["balanced_accuracy"] + margin
    if real_trivial:  # the reference itself learned nothing: a ratio to it means nothing
        out["note"] = "the real-trained CNN is no better than the majority class: the ratio is not meaningful"
    if target is not None:
        out["target"] = target
        out["meets_target"] = bool(not reasons and not real_trivial and ratio >= target)
    return out


def mean_scores(runs: list[dict]) -> dict:
    """Mean of the numeric scores over CNN repeats (per-class recalls averaged per class)."""
    out = {}
    for key, value in runs[0].items():
        if isinstance(value, (int, float)):
            out[key] = float(np.mean([r[key] for r in runs]))
        elif key == "per_class_recall":
            out[key] = {c: round(float(np.mean([r[key].get(c, math.nan) for r in runs])), 4) for c in value}
        else:
            out[key] = value
    return out


def is_ordinal(schema) -> bool:
    """Ordinal grades: more than two classes declared as the consecutive integers 0..K-1 (e.g.
    RetinaMNIST's DR grades); named classes (diagnoses) are nominal."""
    classes = list(getattr(schema, "classes", ()) or ())
    return len(classes) > 2 and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes) \
        and [int(c) for c in classes] == list(range(len(classes)))
