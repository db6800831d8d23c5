"""Fidelity: does the synthetic table look like the real one, column by column and jointly?

- :class:`ColumnShapes` - per column TVD (categorical; sdmetrics TVComplement) or KS
  (numeric; sdmetrics KSComplement) plus Wasserstein-1 normalised by the *public* range;
- :class:`AssociationDifference` - mean absolute difference between the real and synthetic
  association matrices (Pearson for numeric pairs, Cramér's V for categorical pairs, the
  correlation ratio for mixed pairs);
- :class:`DetectionAUROC` - a cross-validated classifier telling real from synthetic (0.5 ideal).

Every metric compares the synthetic table with the real *training* rows it imitates.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from dpsynth.data.schema import Column, Schema
from dpsynth.metrics.base import MetricResult
from dpsynth.metrics.encoding import (
    FeatureEncoder,
    category_codes,
    coerce_frame,
    discretize,
    n_codes,
    numeric_values,
    shares,
)
from dpsynth.metrics.threads import one_thread


class _FidelityMetric:
    name: ClassVar[str]
    goal: ClassVar[str] = "minimize"
    range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def evaluate(self, train, holdout, synthetic, schema, *, test=None, rng=None) -> MetricResult:
        real = coerce_frame(train, schema, role="train")
        synth = coerce_frame(synthetic, schema, role="synthetic")
        return self.compare(real, synth, schema, rng=rng if rng is not None else np.random.default_rng(0))

    def compare(self, real: pd.DataFrame, synth: pd.DataFrame, schema: Schema, *, rng) -> MetricResult:
        raise NotImplementedError


# ---- per-column shapes -------------------------------------------------------------------------
def column_shape(real: pd.Series, synth: pd.Series, col: Column) -> dict:
    """Distance between one column's real and synthetic marginals."""
    from sdmetrics.single_column import KSComplement, TVComplement  # sdmetrics imports torch: pay on first use

    out: dict = {"kind": col.kind}
    if col.is_numeric:
        r, s = numeric_values(real), numeric_values(synth)
        r_ok, s_ok = r[np.isfinite(r)], s[np.isfinite(s)]
        if len(r_ok) and len(s_ok):
            out["ks"] = float(1.0 - KSComplement.compute(r_ok, s_ok))
            out["wasserstein"] = float(wasserstein_distance(r_ok, s_ok) / (col.high - col.low))
        else:
            out["ks"] = 1.0 if len(r_ok) != len(s_ok) else 0.0
            out["wasserstein"] = out["ks"]
        out["distance"] = out["ks"]
        if col.nullable:
            out["missing_rate_real"] = float(np.mean(~np.isfinite(r)))
            out["missing_rate_synthetic"] = float(np.mean(~np.isfinite(s)))
    else:
        r = category_codes(real, col)
        s = category_codes(synth, col)
        out["tvd"] = float(1.0 - TVComplement.compute(pd.Series(r), pd.Series(s)))
        out["distance"] = out["tvd"]
    return out


def marginal_histogram(real: pd.Series, synth: pd.Series, col: Column, *, n_bins: int = 20) -> dict:
    """Shares per category (or per public-range bin), ready for an overlay plot."""
    size = n_codes(col, n_bins=n_bins)
    r = shares(discretize(real, col, n_bins=n_bins), size)
    s = shares(discretize(synth, col, n_bins=n_bins), size)
    if col.is_numeric:
        edges = np.linspace(col.low, col.high, n_bins + 1)
        labels = [f"{edges[i]:.4g}" for i in range(n_bins)] + ["missing"]
    else:
        labels = [str(c) for c in col.categories] + ["missing"]
    keep = [i for i in range(size) if not (labels[i] == "missing" and r[i] == 0 and s[i] == 0)]
    return {"column": col.name, "numeric": col.is_numeric, "labels": [labels[i] for i in keep],
            "real": [float(r[i]) for i in keep], "synthetic": [float(s[i]) for i in keep]}


class ColumnShapes(_FidelityMetric):
    """Mean per-column distance: TVD for categorical columns, KS statistic for numeric ones."""

    name = "column_shape_distance"

    def __init__(self, *, top_columns: int = 4, n_bins: int = 20) -> None:
        self.top_columns = top_columns
        self.n_bins = n_bins

    def compare(self, real, synth, schema, *, rng) -> MetricResult:
        per_col = {c.name: column_shape(real[c.name], synth[c.name], c) for c in schema.columns}
        tvd = [v["tvd"] for v in per_col.values() if "tvd" in v]
        ks = [v["ks"] for v in per_col.values() if "ks" in v]
        ws = [v["wasserstein"] for v in per_col.values() if "wasserstein" in v]
        worst = sorted(per_col, key=lambda n: -per_col[n]["distance"])[: self.top_columns]
        breakdown = {
            "columns": per_col,
            "mean_tvd": float(np.mean(tvd)) if tvd else None,
            "mean_ks": float(np.mean(ks)) if ks else None,
            "mean_wasserstein": float(np.mean(ws)) if ws else None,
            "worst_columns": worst,
            "histograms": [marginal_histogram(real[n], synth[n], schema[n], n_bins=self.n_bins) for n in worst],
        }
        value = float(np.mean([v["distance"] for v in per_col.values()]))
        return MetricResult(self.name, value, self.goal, self.range, breakdown)


# ---- pairwise associations ---------------------------------------------------------------------
def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    ka, kb = a.max() + 1, b.max() + 1
    table = np.bincount(a * kb + b, minlength=ka * kb).reshape(ka, kb).astype(float)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if min(table.shape) < 2:
        return 0.0
    n = table.sum()
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.sqrt(chi2 / (n * (min(table.shape) - 1))))


def _correlation_ratio(codes: np.ndarray, values: np.ndarray) -> float:
    ok = np.isfinite(values)
    codes, values = codes[ok], values[ok]
    if len(values) < 2 or values.var() == 0:
        return 0.0
    counts = np.bincount(codes).astype(float)
    means = np.bincount(codes, weights=values) / np.maximum(counts, 1)
    between = float((counts * (means - values.mean()) ** 2).sum())
    return float(np.sqrt(between / (values.var() * len(values))))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or x[ok].std() == 0 or y[ok].std() == 0:
        return 0.0
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def association_matrix(frame: pd.DataFrame, schema: Schema) -> np.ndarray:
    """Pearson r (numeric x numeric), Cramér's V (categorical x categorical), eta (mixed)."""
    cols = list(schema.columns)
    data = {c.name: numeric_values(frame[c.name]) if c.is_numeric else category_codes(frame[c.name], c) for c in cols}
    m = np.eye(len(cols))
    for i, a in enumerate(cols):
        for j in range(i + 1, len(cols)):
            b = cols[j]
            if a.is_numeric and b.is_numeric:
                v = _pearson(data[a.name], data[b.name])
            elif not a.is_numeric and not b.is_numeric:
                v = _cramers_v(data[a.name], data[b.name])
            else:
                cat, num = (a, b) if b.is_numeric else (b, a)
                v = _correlation_ratio(data[cat.name], data[num.name])
            m[i, j] = m[j, i] = v
    return m


class AssociationDifference(_FidelityMetric):
    """Mean |assoc_real - assoc_synth| over column pairs (range [0, 1]; Pearson pairs halved)."""

    name = "association_difference"

    def compare(self, real, synth, schema, *, rng) -> MetricResult:
        names = schema.names
        a_real, a_syn = association_matrix(real, schema), association_matrix(synth, schema)
        diff = np.abs(a_real - a_syn)
        numeric = np.array([schema[n].is_numeric for n in names])
        both_numeric = numeric[:, None] & numeric[None, :]
        diff = np.where(both_numeric, diff / 2.0, diff)  # Pearson spans [-1, 1]
        iu = np.triu_indices(len(names), k=1)
        flat = diff[iu]
        top = np.argsort(-flat)[:5]
        breakdown = {
            "columns": names,
            "difference_matrix": np.round(diff, 4).tolist(),
            "max_difference": float(flat.max()) if flat.size else 0.0,
            "top_pairs": [{"pair": [names[iu[0][k]], names[iu[1][k]]], "real": float(a_real[iu[0][k], iu[1][k]]),
                           "synthetic": float(a_syn[iu[0][k], iu[1][k]]), "difference": float(flat[k])} for k in top],
        }
        return MetricResult(self.name, float(flat.mean()) if flat.size else 0.0, self.goal, self.range, breakdown)


# ---- detection -----------------------------------------------------------------------------------
class DetectionAUROC(_FidelityMetric):
    """Cross-validated AUROC of a gradient-boosted classifier separating real from synthetic."""

    name = "detection_auroc"
    goal = "target"

    def __init__(self, *, folds: int = 3, max_rows: int = 2000, max_iter: int = 100) -> None:
        self.folds = folds
        self.max_rows = max_rows
        self.max_iter = max_iter

    def compare(self, real, synth, schema, *, rng) -> MetricResult:
        n = min(len(real), len(synth), self.max_rows)
        real_s = real.iloc[rng.choice(len(real), n, replace=False)]
        synth_s = synth.iloc[rng.choice(len(synth), n, replace=False)]
        enc = FeatureEncoder(schema).fit(real)
        x = np.vstack([enc.transform(real_s), enc.transform(synth_s)])
        y = np.r_[np.zeros(n, dtype=int), np.ones(n, dtype=int)]
        clf = HistGradientBoostingClassifier(max_iter=self.max_iter, early_stopping=False,
                                             random_state=int(rng.integers(2**31)))
        cv = StratifiedKFold(n_splits=self.folds, shuffle=True, random_state=int(rng.integers(2**31)))
        with one_thread():
            proba = cross_val_predict(clf, x, y, cv=cv, method="predict_proba")[:, 1]
        auroc = float(roc_auc_score(y, proba))
        breakdown = {"n_per_class": n, "folds": self.folds, "model": "HistGradientBoostingClassifier",
                     "note": "well below 0.5 means synthetic rows copy training rows (the classifier"
                             " memorises a row in one fold and meets its copy, labelled the other way, in another)"}
        return MetricResult(self.name, auroc, "target", (0.0, 1.0), breakdown, target=0.5)
