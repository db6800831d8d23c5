"""Downstream utility: train on synthetic, test on real (TSTR) vs train on real, test on real (TRTR).

Two model families (logistic regression and sklearn's HistGradientBoosting). Each family's
hyper-parameters, and the family itself, are chosen by cross-validation on the *training side
only* (synthetic rows for TSTR, real training rows for TRTR); the real test split is touched
once, to score the chosen models (design rule 5). Scores: AUROC, AUPRC, accuracy, balanced
accuracy. When the target is the survival event, the duration column is left out of the
features (it is observed together with the outcome).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, average_precision_score, balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from dpsynth.data.schema import Schema
from dpsynth.errors import DataError
from dpsynth.metrics.base import MetricResult
from dpsynth.metrics.encoding import FeatureEncoder, binary_labels, coerce_frame
from dpsynth.metrics.threads import one_thread

DEFAULT_GRIDS: dict[str, dict[str, list]] = {
    "logistic_regression": {"C": [0.1, 1.0]},
    "gradient_boosting": {"learning_rate": [0.1], "max_leaf_nodes": [7, 31]},
}


def base_model(family: str, *, seed: int):
    if family == "logistic_regression":
        return LogisticRegression(max_iter=2000)
    if family == "gradient_boosting":
        return HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=seed)
    raise DataError(f"unknown model family '{family}' (known: logistic_regression, gradient_boosting)")


def feature_columns(schema: Schema, target: str, *, exclude=()) -> tuple[str, ...]:
    """Every declared column except the target, the listed ones and (for event targets) the duration."""
    drop = {target, *exclude}
    if schema.event == target and schema.duration:
        drop.add(schema.duration)
    return tuple(n for n in schema.names if n not in drop)


def resolve_target(schema: Schema, target: str | None) -> str:
    target = target or schema.target
    if target is None:
        raise DataError(f"schema '{schema.name}' declares no target column; utility metrics need one")
    if target not in schema:
        raise DataError(f"target column '{target}' is not declared in schema '{schema.name}'")
    col = schema[target]
    if col.is_numeric or len(col.categories) != 2:
        raise DataError(f"target '{target}' must be binary (2 categories) for TSTR classification, it is {col.kind}")
    return target


@dataclass
class FittedClassifier:
    """A model chosen by CV on its training side; scores any frame through the shared encoder."""

    family: str
    params: dict
    model: object
    cv_auroc: float
    encoder: FeatureEncoder
    candidates: dict = field(default_factory=dict)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        with one_thread():
            return self.model.predict_proba(self.encoder.transform(frame))[:, 1]


def fit_family(x, y, family: str, grid: dict, *, seed: int, folds: int) -> tuple[dict, float, object]:
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    search = GridSearchCV(base_model(family, seed=seed), grid or {}, scoring="roc_auc", cv=cv, refit=True)
    with one_thread():
        search.fit(x, y)
    return dict(search.best_params_), float(search.best_score_), search.best_estimator_


def fit_classifiers(frame: pd.DataFrame, schema: Schema, target: str, encoder: FeatureEncoder, *, seed: int,
                    grids: dict | None = None, folds: int = 3, role: str) -> dict[str, FittedClassifier]:
    """One CV-tuned model per family, plus the key 'selected' for the family with the best CV AUROC."""
    y = binary_labels(frame[target], schema[target], role=role)
    counts = np.bincount(y, minlength=2)
    if counts.min() < folds:
        raise DataError(f"{role}: target '{target}' has {counts.min()} row(s) in its rarer class; "
                        f"need at least {folds} to cross-validate")
    x = encoder.transform(frame)
    out: dict[str, FittedClassifier] = {}
    for family, grid in (grids or DEFAULT_GRIDS).items():
        params, score, model = fit_family(x, y, family, grid, seed=seed, folds=folds)
        out[family] = FittedClassifier(family, params, model, score, encoder)
    best = max(out, key=lambda k: out[k].cv_auroc)
    out["selected"] = out[best]
    return out


def classification_scores(y: np.ndarray, proba: np.ndarray, *, threshold: float = 0.5) -> dict:
    pred = (proba >= threshold).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "auroc": float(roc_auc_score(y, proba)) if both else None,
        "auprc": float(average_precision_score(y, proba)) if both else None,
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)) if both else None,
    }


def score_on_test(models: dict[str, FittedClassifier], test: pd.DataFrame, schema: Schema, target: str) -> dict:
    y = binary_labels(test[target], schema[target], role="test")
    out = {}
    for key, m in models.items():
        out[key] = {"family": m.family, "params": m.params, "cv_auroc": m.cv_auroc,
                    **classification_scores(y, m.predict_proba(test))}
    return out


def utility_table(*, train: pd.DataFrame, synthetic: pd.DataFrame, test: pd.DataFrame, schema: Schema,
                  target: str | None = None, exclude=(), grids: dict | None = None, folds: int = 3,
                  seed: int = 0) -> tuple[dict, dict]:
    """TSTR and TRTR scores on the real test split; returns (plain results, fitted models)."""
    target = resolve_target(schema, target)
    encoder = FeatureEncoder(schema, columns=feature_columns(schema, target, exclude=exclude)).fit(train)
    models = {
        "trtr": fit_classifiers(train, schema, target, encoder, seed=seed, grids=grids, folds=folds, role="train"),
        "tstr": fit_classifiers(synthetic, schema, target, encoder, seed=seed, grids=grids, folds=folds,
                                role="synthetic"),
    }
    scores = {side: score_on_test(m, test, schema, target) for side, m in models.items()}
    ratio = {}
    for key in scores["trtr"]:
        real, syn = scores["trtr"][key]["auroc"], scores["tstr"][key]["auroc"]
        ratio[key] = syn / real if real else None
    results = {"target": target, "features": list(encoder.columns), "n_test": len(test),
               "tstr": scores["tstr"], "trtr": scores["trtr"], "auroc_ratio": ratio,
               "selection": "family and hyper-parameters chosen by "
                            f"{folds}-fold CV AUROC on the training side only"}
    return results, models


class TSTRAUROC:
    """TSTR AUROC / TRTR AUROC of the CV-selected model on the real test split (1.0 = as useful as real)."""

    name: ClassVar[str] = "tstr_auroc_ratio"
    goal: ClassVar[str] = "maximize"
    range: ClassVar[tuple[float, float]] = (0.0, float("inf"))

    def __init__(self, *, target: str | None = None, grids: dict | None = None, folds: int = 3) -> None:
        self.target = target
        self.grids = grids
        self.folds = folds

    def evaluate(self, train, holdout, synthetic, schema: Schema, *, test=None, rng=None) -> MetricResult:
        if test is None:
            raise DataError("TSTR needs the real test split (pass test=)")
        seed = 0 if rng is None else int(rng.integers(0, 2**31 - 1))
        results, _ = utility_table(
            train=coerce_frame(train, schema, role="train"),
            synthetic=coerce_frame(synthetic, schema, role="synthetic"),
            test=coerce_frame(test, schema, role="test"),
            schema=schema, target=self.target, grids=self.grids, folds=self.folds, seed=seed)
        ratio = results["auroc_ratio"]["selected"]
        return MetricResult(self.name, float("nan") if ratio is None else ratio, self.goal, self.range, results)


class TSTRAbsoluteAUROC(TSTRAUROC):
    """AUROC on the real test split of the model trained (and CV-selected) on synthetic rows."""

    name: ClassVar[str] = "tstr_auroc"
    range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def evaluate(self, train, holdout, synthetic, schema: Schema, *, test=None, rng=None) -> MetricResult:
        ratio = super().evaluate(train, holdout, synthetic, schema, test=test, rng=rng)
        value = ratio.breakdown["tstr"]["selected"]["auroc"]
        return MetricResult(self.name, value, self.goal, self.range, ratio.breakdown)


def fit_chosen_model(x: np.ndarray, y: np.ndarray, *, seed: int, grids: dict | None = None,
                     folds: int = 3) -> tuple[str, object, dict[str, float]]:
    """Pick the family with the best CV AUROC on (x, y), tuned by CV, refit on all of it."""
    if len(np.unique(y)) < 2:
        raise DataError("the training side holds a single class of the target; cannot train a classifier")
    fitted = {f: fit_family(x, y, f, g, seed=seed, folds=folds) for f, g in (grids or DEFAULT_GRIDS).items()}
    best = max(fitted, key=lambda f: fitted[f][1])
    return best, fitted[best][2], {f: v[1] for f, v in fitted.items()}
