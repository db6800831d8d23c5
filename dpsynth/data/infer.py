"""Estimate a schema for a user table with DP mechanisms, every statistic charged to the ledger.

Used when a user has a file but no declared schema (``--infer-schema``). What is read, and how:

- Column kinds come from the file's storage types (bool -> binary, integer -> integer,
  float -> continuous, text -> categorical): metadata, not statistics. Every inferred column
  is nullable, so whether a column has missing values is not revealed.
- Numeric bounds: one Gaussian release of every numeric column's histogram over a fixed,
  public grid of signed powers of two (sensitivity sqrt(k) for k columns). The bounds are the
  outer edges of the outermost bins whose noisy count clears a threshold. Values outside the
  estimated bounds are clipped to them (said in the schema's description).
- Category lists: Gaussian partition selection (Gaussian-noised counts of the observed values,
  kept when above a threshold set for an additive delta of ``delta / 10``); the additive delta
  is entered in the ledger and taken out of the delta the accountant converts at. Values not
  selected become the category ``__other__``.

Prefer a declared schema (``--schema``): it costs no budget and keeps exact domains.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd
from scipy.stats import norm

from dpsynth.data.schema import Column, Schema
from dpsynth.errors import DataError
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.mechanisms import gaussian_noise, preprocessing_noise_multiplier

OTHER = "__other__"
_EXPONENTS = np.arange(-10, 41)  # |x| bins [2^e, 2^(e+1)) for e in -10..40, plus a zero bin


def _grid() -> np.ndarray:
    """Public bin edges: -2^41 ... -2^-10, 0 (a zero bin [-2^-10, 2^-10)), 2^-10 ... 2^41."""
    pos = 2.0 ** np.append(_EXPONENTS, _EXPONENTS[-1] + 1)
    return np.concatenate([-pos[::-1], pos])


def _kind_of(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "binary"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_float_dtype(series):
        return "continuous"
    return "categorical"


def infer_schema_dp(
    frame: pd.DataFrame, *, budget: Budget, ledger: Ledger, rng: np.random.Generator, name: str = "table"
) -> tuple[Schema, Callable[[pd.DataFrame], pd.DataFrame]]:
    """Return a DP-estimated schema and a function that prepares frames under it (clip / map)."""
    kinds = {c: _kind_of(frame[c]) for c in frame.columns}
    numeric = [c for c, k in kinds.items() if k in ("integer", "continuous")]
    categorical = [c for c, k in kinds.items() if k == "categorical"]
    releases = int(bool(numeric)) + int(bool(categorical))
    sigma = preprocessing_noise_multiplier(budget, delta=ledger.delta, releases=max(1, releases))
    columns: dict[str, Column] = {}

    if numeric:
        edges = _grid()
        k = len(numeric)
        ledger.record_gaussian(purpose="DP bounds of numeric columns (noisy power-of-two histograms)",
                               noise_multiplier=sigma, params={"histograms": k, "l2_sensitivity": math.sqrt(k)})
        std = sigma * math.sqrt(k)
        threshold = 3.0 * std
        for c in numeric:
            x = pd.to_numeric(frame[c], errors="coerce").dropna().to_numpy(dtype=float)
            counts = np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)[0].astype(float)
            noisy = counts + gaussian_noise(counts.shape, std=std, rng=rng, secure=budget.secure_mode)
            above = np.nonzero(noisy > threshold)[0]
            if len(above) == 0:
                raise DataError(f"column '{c}': too few rows to estimate its bounds privately; declare them in a schema")
            low, high = float(edges[above[0]]), float(edges[above[-1] + 1])
            if kinds[c] == "integer":
                low, high = math.floor(low), math.ceil(high)
            columns[c] = Column(name=c, kind=kinds[c], low=low, high=high, nullable=True,
                                description="bounds estimated with DP; values outside are clipped")

    if categorical:
        k = len(categorical)
        delta_sel = ledger.delta / 10.0
        std = sigma * math.sqrt(k)
        # a row adds at most one new key per column: each passes with prob <= P(1 + N(0, std^2) > tau)
        tau = 1.0 + std * norm.isf(delta_sel / k)
        ledger.record_gaussian(purpose="DP category lists (Gaussian partition selection)", noise_multiplier=sigma,
                               params={"columns": k, "l2_sensitivity": math.sqrt(k), "threshold": tau},
                               delta_spent=delta_sel)
        for c in categorical:
            counts = frame[c].dropna().astype(str).value_counts()
            noisy = counts.to_numpy(dtype=float) + gaussian_noise(len(counts), std=std, rng=rng, secure=budget.secure_mode)
            kept = sorted(counts.index[noisy > tau].tolist())
            columns[c] = Column(name=c, kind="categorical", categories=tuple(kept + [OTHER]), nullable=True,
                                description=f"categories selected with DP; others map to {OTHER}")

    for c, kind in kinds.items():
        if kind == "binary":
            columns[c] = Column(name=c, kind="binary", categories=(False, True), nullable=True)

    schema = Schema(columns=tuple(columns[c] for c in frame.columns), name=name,
                    description="estimated with DP mechanisms (see the ledger)")

    def prepare(raw: pd.DataFrame) -> pd.DataFrame:
        out = raw.copy()
        for col in schema.columns:
            if col.is_numeric:
                out[col.name] = pd.to_numeric(out[col.name], errors="coerce").clip(col.low, col.high)
                if col.kind == "integer":
                    out[col.name] = out[col.name].round()
            elif col.kind == "categorical":
                known = set(col.categories)
                out[col.name] = out[col.name].map(lambda v: v if pd.isna(v) else (str(v) if str(v) in known else OTHER))
        return schema.prepare(out, source=name)

    return schema, prepare
