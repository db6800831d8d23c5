"""TSTR vs TRTR for any target kind: binary (see :mod:`.utility`), multi-class and numeric.

- multi-class (a categorical target with more than 2 categories): logistic regression and
  HistGradientBoosting classifiers, family and hyper-parameters chosen by CV macro one-vs-rest
  AUROC on the training side only; scored on the real test split by macro AUROC (one-vs-rest,
  over the classes present in the test rows), balanced accuracy, accuracy and per-class recall.
- numeric (an integer or continuous target): ridge regression and HistGradientBoosting
  regressors, chosen by CV R^2 on the training side; scored by R^2 and MAE.

The real test split is touched once, to score the chosen models (design rule 5). Per-group
scores (:func:`group_scores`) use the same fitted models on each group's real test rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (accuracy_score, mean_absolute_error, r2_score, recall_score,
                             roc_auc_score)
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

from dpsynth.data.schema import Column, Schema
from dpsynth.errors import DataError
from dpsynth.metrics.encoding import FeatureEncoder, category_codes, numeric_values
from dpsynth.metrics.threads import one_thread

MULTICLASS_GRIDS: dict[str, dict[str, list]] = {
    "logistic_regression": {"C": [0.1, 1.0]},
    "gradient_boosting": {"learning_rate": [0.1], "max_leaf_nodes": [7, 31]},
}
NUMERIC_GRIDS: dict[str, dict[str, list]] = {
    "ridge": {"alpha": [1.0, 10.0]},
    "gradient_boosting": {"learning_rate": [0.1], "max_leaf_nodes": [7, 31]},
}


def target_kind(col: Column) -> str:
    """'binary' (2 categories), 'multiclass' (more) or 'numeric'."""
    if col.is_numeric:
        return "numeric"
    return "binary" if len(col.categories) == 2 else "multiclass"


def _model(kind: str, family: str, *, seed: int):
    if kind == "multiclass" and family == "logistic_regression":
        return LogisticRegression(max_iter=2000)
    if kind == "multiclass" and family == "gradient_boosting":
        return HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=seed)
    if kind == "numeric" and family == "ridge":
        return Ridge()
    if kind == "numeric" and family == "gradient_boosting":
        return HistGradientBoostingRegressor(max_iter=100, early_stopping=False, random_state=seed)
    raise DataError(f"unknown model family '{family}' for a {kind} target")


def class_labels(series: pd.Series, col: Column, *, role: str) -> np.ndarray:
    codes = category_codes(series, col)
    if (codes == len(col.categories)).any():
        raise DataError(f"{role}: target '{col.name}' has missing values")
    return codes.astype(np.int64)


def _rows_and_y(frame: pd.DataFrame, col: Column, kind: str, *, role: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows with a known target and their labels (numeric targets: rows with a missing value are left out)."""
    if kind == "numeric":
        y = numeric_values(frame[col.name])
        keep = ~np.isnan(y)
        return frame[keep], y[keep]
    return frame, class_labels(frame[col.name], col, role=role)


@dataclass
class FittedModel:
    kind: str
    family: str
    params: dict
    model: object
    cv_score: float
    encoder: FeatureEncoder
    n_classes: int = 0
    extra: dict = field(default_factory=dict)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities [n, n_classes] over the schema's classes (absent ones 0)."""
        with one_thread():
            p = self.model.predict_proba(self.encoder.transform(frame))
        out = np.zeros((len(frame), self.n_classes))
        out[:, np.asarray(self.model.classes_, dtype=int)] = p
        return out

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        with one_thread():
            return np.asarray(self.model.predict(self.encoder.transform(frame)), dtype=float)


def fit_models(frame: pd.DataFrame, schema: Schema, target: str, encoder: FeatureEncoder, *, seed: int, folds: int,
               grids: dict | None, role: str) -> dict[str, FittedModel]:
    """One CV-tuned model per family and 'selected' (best CV score) for a multi-class or numeric target."""
    col = schema[target]
    kind = target_kind(col)
    rows, y = _rows_and_y(frame, col, kind, role=role)
    if kind == "multiclass":
        present = np.bincount(y, minlength=len(col.categories))
        if (present > 0).sum() < 2:
            raise DataError(f"{role}: target '{target}' holds a single class; cannot train a classifier")
        if present[present > 0].min() < folds:
            raise DataError(f"{role}: a class of target '{target}' has {present[present > 0].min()} row(s); "
                            f"need at least {folds} to cross-validate")
        cv, scoring = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed), "roc_auc_ovr"
        grids = grids or MULTICLASS_GRIDS
    else:
        if len(y) < 2 * folds:
            raise DataError(f"{role}: target '{target}' has only {len(y)} known value(s)")
        cv, scoring = KFold(n_splits=folds, shuffle=True, random_state=seed), "r2"
        grids = grids or NUMERIC_GRIDS
    x = encoder.transform(rows)
    out: dict[str, FittedModel] = {}
    for family, grid in grids.items():
        search = GridSearchCV(_model(kind, family, seed=seed), grid or {}, scoring=scoring, cv=cv, refit=True)
        with one_thread():
            search.fit(x, y)
        out[family] = FittedModel(kind, family, dict(search.best_params_), search.best_estimator_,
                                  float(search.best_score_), encoder, n_classes=len(col.categories) if col.categories
                                  else 0)
    out["selected"] = out[max(out, key=lambda k: out[k].cv_score)]
    return out


def multiclass_scores(y: np.ndarray, proba: np.ndarray, *, classes: tuple, min_class_count: int = 1) -> dict:
    """Macro one-vs-rest AUROC over the classes with >= ``min_class_count`` rows on each side,
    balanced accuracy, accuracy and per-class recall."""
    pred = proba.argmax(axis=1)
    aurocs = {}
    for c in range(proba.shape[1]):
        pos = int((y == c).sum())
        if pos >= min_class_count and len(y) - pos >= min_class_count:
            aurocs[str(classes[c])] = float(roc_auc_score(y == c, proba[:, c]))
    recall = recall_score(y, pred, labels=list(range(proba.shape[1])), average=None, zero_division=0)
    present = [c for c in range(proba.shape[1]) if (y == c).any()]
    return {
        "macro_auroc": float(np.mean(list(aurocs.values()))) if aurocs else None,
        "auroc_per_class": aurocs,
        "balanced_accuracy": float(np.mean([recall[c] for c in present])) if present else None,
        "accuracy": float(accuracy_score(y, pred)) if len(y) else None,
        "recall_per_class": {str(classes[c]): float(recall[c]) for c in present},
    }


def numeric_scores(y: np.ndarray, pred: np.ndarray) -> dict:
    return {"r2": float(r2_score(y, pred)) if len(y) >= 2 else None,
            "mae": float(mean_absolute_error(y, pred)) if len(y) else None}


def score_models(models: dict[str, FittedModel], test: pd.DataFrame, schema: Schema, target: str) -> dict:
    col = schema[target]
    kind = target_kind(col)
    rows, y = _rows_and_y(test, col, kind, role="test")
    out = {}
    for key, m in models.items():
        scores = (multiclass_scores(y, m.predict_proba(rows), classes=col.categories) if kind == "multiclass"
                  else numeric_scores(y, m.predict(rows)))
        out[key] = {"family": m.family, "params": m.params, "cv_score": m.cv_score, **scores}
    return out


HEADLINE = {"multiclass": "macro_auroc", "numeric": "r2"}


def any_utility_table(*, train: pd.DataFrame, synthetic: pd.DataFrame, test: pd.DataFrame, schema: Schema,
                      target: str, exclude=(), grids: dict | None = None, folds: int = 3,
                      seed: int = 0) -> tuple[dict, dict]:
    """TSTR and TRTR scores of a multi-class or numeric target; (plain results, fitted models)."""
    from dpsynth.metrics.utility import feature_columns

    if target not in schema:
        raise DataError(f"target column '{target}' is not declared in schema '{schema.name}'")
    kind = target_kind(schema[target])
    if kind == "binary":
        raise DataError(f"target '{target}' is binary: use dpsynth.metrics.utility.utility_table")
    encoder = FeatureEncoder(schema, columns=feature_columns(schema, target, exclude=exclude)).fit(train)
    models = {side: fit_models(frame, schema, target, encoder, seed=seed, folds=folds, grids=grids, role=role)
              for side, frame, role in (("trtr", train, "train"), ("tstr", synthetic, "synthetic"))}
    scores = {side: score_models(m, test, schema, target) for side, m in models.items()}
    key = HEADLINE[kind]
    ratio = {}
    for fam in scores["trtr"]:
        real, syn = scores["trtr"][fam][key], scores["tstr"][fam][key]
        ratio[fam] = syn / real if real and syn is not None else None
    results = {"target": target, "kind": kind, "features": list(encoder.columns), "n_test": len(test),
               "tstr": scores["tstr"], "trtr": scores["trtr"], f"{key}_ratio": ratio,
               "selection": "family and hyper-parameters chosen by "
                            f"{folds}-fold CV {'macro AUROC' if kind == 'multiclass' else 'R^2'}"
                            " on the training side only"}
    if kind == "multiclass":
        results["classes"] = [str(c) for c in schema[target].categories]
    if kind == "numeric":
        real, syn = scores["trtr"]["selected"]["mae"], scores["tstr"]["selected"]["mae"]
        results["mae_ratio"] = {"selected": syn / real if real else None}
    return results, models


def group_scores(models: dict[str, FittedModel], test: pd.DataFrame, mask: np.ndarray, schema: Schema, target: str,
                 *, min_size: int, min_class_count: int) -> dict:
    """TSTR / TRTR scores of the selected models on one group's real test rows (None when too small)."""
    col = schema[target]
    kind = target_kind(col)
    rows, y = _rows_and_y(test[mask], col, kind, role="test")
    out = {}
    for side in ("tstr", "trtr"):
        m = models[side]
        if len(y) < min_size:
            scores = None
        elif kind == "multiclass":
            scores = multiclass_scores(y, m.predict_proba(rows), classes=col.categories,
                                       min_class_count=min_class_count)
        else:
            scores = numeric_scores(y, m.predict(rows))
        if kind == "multiclass":
            out[f"{side}_macro_auroc"] = scores["macro_auroc"] if scores else None
            out[f"{side}_balanced_accuracy"] = scores["balanced_accuracy"] if scores else None
        else:
            out[f"{side}_r2"] = scores["r2"] if scores else None
            out[f"{side}_mae"] = scores["mae"] if scores else None
    return out
