"""Survival utility and fidelity for tables with a duration and an event column.

- :class:`CoxCIndex` - Harrell's C-index on the real test split of a lifelines CoxPH model
  trained on synthetic rows (TSTR) vs on real training rows (TRTR); the ridge penalty is chosen
  by cross-validated concordance on the training side only. The value is TSTR / TRTR.
- :class:`KaplanMeierDistance` - sup and integrated absolute difference between the
  Kaplan-Meier curves of the synthetic and the real training rows, on a time grid up to the
  last real follow-up time; the same distance between two real splits is given for scale.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
import pandas as pd

from dpsynth.data.schema import Schema
from dpsynth.errors import DataError
from dpsynth.metrics.base import MetricResult
from dpsynth.metrics.encoding import FeatureEncoder, binary_labels, coerce_frame, numeric_values

DEFAULT_PENALIZERS = (0.01, 0.1, 1.0)


def survival_columns(schema: Schema) -> tuple[str, str]:
    if not schema.duration or not schema.event:
        raise DataError(f"schema '{schema.name}' declares no duration/event pair; survival metrics need both")
    if not schema[schema.duration].is_numeric:
        raise DataError(f"duration column '{schema.duration}' must be numeric")
    return schema.duration, schema.event


def _durations_events(frame: pd.DataFrame, schema: Schema, role: str) -> tuple[np.ndarray, np.ndarray]:
    duration, event = survival_columns(schema)
    t = numeric_values(frame[duration])
    if not np.isfinite(t).all():
        raise DataError(f"{role}: duration column '{duration}' has missing values")
    return np.maximum(t, 1e-6), binary_labels(frame[event], schema[event], role=role)


def _cox_frame(x: np.ndarray, t: np.ndarray, e: np.ndarray, keep: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame(x[:, keep], columns=[f"f{i}" for i in range(int(keep.sum()))])
    df["_T"], df["_E"] = t, e
    return df


def _fit_cox(df: pd.DataFrame, penalizer: float):
    from lifelines import CoxPHFitter

    with warnings.catch_warnings():
        # lifelines warns about convergence and low-variance columns on small synthetic samples
        warnings.filterwarnings("ignore", module="lifelines")
        return CoxPHFitter(penalizer=penalizer).fit(df, duration_col="_T", event_col="_E")


def _cindex(model, df: pd.DataFrame) -> float:
    from lifelines.utils import concordance_index

    risk = model.predict_partial_hazard(df.drop(columns=["_T", "_E"])).to_numpy()
    return float(concordance_index(df["_T"], -risk, df["_E"]))


def fit_cox(frame: pd.DataFrame, schema: Schema, encoder: FeatureEncoder, *, penalizers=DEFAULT_PENALIZERS,
            folds: int = 3, seed: int = 0, role: str) -> dict:
    """Choose the penalty by k-fold concordance on ``frame`` alone, refit on all of it."""
    t, e = _durations_events(frame, schema, role)
    if e.sum() < folds:
        raise DataError(f"{role}: only {int(e.sum())} event(s); the Cox model needs at least {folds}")
    x = encoder.transform(frame)
    keep = x.std(axis=0) > 1e-9
    df = _cox_frame(x, t, e, keep)
    order = np.random.default_rng(seed).permutation(len(df))
    cv = {}
    for pen in penalizers if len(penalizers) > 1 else ():  # a single penalty needs no selection
        scores = []
        for k in range(folds):
            hold = order[k::folds]
            fit_idx = np.setdiff1d(order, hold)
            try:
                scores.append(_cindex(_fit_cox(df.iloc[fit_idx], pen), df.iloc[hold]))
            except Exception:  # lifelines convergence failures: score the penalty as useless
                scores.append(0.5)
        cv[str(pen)] = float(np.mean(scores))
    best = float(max(cv, key=cv.get)) if cv else float(penalizers[0])
    return {"model": _fit_cox(df, best), "keep": keep, "penalizer": best, "cv_cindex": cv}


def cox_table(*, train, synthetic, test, schema: Schema, penalizers=DEFAULT_PENALIZERS, folds: int = 3,
              seed: int = 0) -> dict:
    duration, event = survival_columns(schema)
    features = tuple(n for n in schema.names if n not in (duration, event))
    encoder = FeatureEncoder(schema, columns=features).fit(train)
    t_test, e_test = _durations_events(test, schema, "test")
    out = {}
    for side, frame in (("trtr", train), ("tstr", synthetic)):
        fitted = fit_cox(frame, schema, encoder, penalizers=penalizers, folds=folds, seed=seed,
                         role="train" if side == "trtr" else "synthetic")
        test_df = _cox_frame(encoder.transform(test), t_test, e_test, fitted["keep"])
        out[side] = {"c_index": _cindex(fitted["model"], test_df), "penalizer": fitted["penalizer"],
                     "cv_c_index": fitted["cv_cindex"]}
    out["c_index_ratio"] = out["tstr"]["c_index"] / out["trtr"]["c_index"]
    return out


def km_curve(t: np.ndarray, e: np.ndarray, grid: np.ndarray) -> np.ndarray:
    from lifelines import KaplanMeierFitter

    km = KaplanMeierFitter().fit(t, e)
    return km.survival_function_at_times(grid).to_numpy()


def km_distance(real, synth, schema: Schema, *, horizon: float | None = None, points: int = 200) -> dict:
    t_r, e_r = _durations_events(real, schema, "real")
    t_s, e_s = _durations_events(synth, schema, "synthetic")
    horizon = float(horizon if horizon is not None else t_r.max())
    grid = np.linspace(0.0, horizon, points)
    s_r, s_s = km_curve(t_r, e_r, grid), km_curve(t_s, e_s, grid)
    diff = np.abs(s_r - s_s)
    return {"sup": float(diff.max()), "integrated": float(np.trapezoid(diff, grid) / horizon),
            "horizon": horizon, "grid": grid[::10].round(2).tolist(),
            "real": s_r[::10].round(4).tolist(), "synthetic": s_s[::10].round(4).tolist()}


class CoxCIndex:
    name: ClassVar[str] = "cox_cindex_ratio"
    goal: ClassVar[str] = "maximize"
    range: ClassVar[tuple[float, float]] = (0.0, float("inf"))

    def __init__(self, *, penalizers=DEFAULT_PENALIZERS, folds: int = 3) -> None:
        self.penalizers = tuple(penalizers)
        self.folds = folds

    def evaluate(self, train, holdout, synthetic, schema, *, test=None, rng=None) -> MetricResult:
        if test is None:
            raise DataError("the Cox C-index needs the real test split (pass test=)")
        seed = 0 if rng is None else int(rng.integers(2**31 - 1))
        res = cox_table(train=coerce_frame(train, schema, role="train"),
                        synthetic=coerce_frame(synthetic, schema, role="synthetic"),
                        test=coerce_frame(test, schema, role="test"), schema=schema,
                        penalizers=self.penalizers, folds=self.folds, seed=seed)
        return MetricResult(self.name, res["c_index_ratio"], self.goal, self.range, res)


class KaplanMeierDistance:
    name: ClassVar[str] = "km_integrated_abs_difference"
    goal: ClassVar[str] = "minimize"
    range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    def evaluate(self, train, holdout, synthetic, schema, *, test=None, rng=None) -> MetricResult:
        real = coerce_frame(train, schema, role="train")
        res = km_distance(real, coerce_frame(synthetic, schema, role="synthetic"), schema)
        if test is not None:
            base = km_distance(real, coerce_frame(test, schema, role="test"), schema, horizon=res["horizon"])
            res["real_vs_real"] = {"sup": base["sup"], "integrated": base["integrated"]}
        return MetricResult(self.name, res["integrated"], self.goal, self.range, res)
