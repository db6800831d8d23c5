"""Frames in, float matrices out: the one encoding every metric shares.

Metrics run after release, so they may read the real data: numeric columns are
standardised with the *real training* mean and standard deviation (fitted once, applied to
every frame), nullable numerics gain a missing indicator, and categorical columns become
one-hot blocks over the schema's public categories, scaled by 1/sqrt(2) so that a category
mismatch and a one-standard-deviation shift cost the same Euclidean distance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dpsynth.data.schema import Column, Schema, _key
from dpsynth.errors import DataError

_ONE_HOT_SCALE = 1.0 / np.sqrt(2.0)


def coerce_frame(frame: pd.DataFrame, schema: Schema, *, role: str) -> pd.DataFrame:
    """Keep the schema's columns, validate them, return a frame in schema types.

    Raises a one-line DataError naming ``role`` (e.g. 'synthetic') and the column at fault.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{role}: expected a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise DataError(f"{role}: the frame has no rows")
    missing = [n for n in schema.names if n not in frame.columns]
    if missing:
        raise DataError(f"{role}: column(s) {missing} declared in schema '{schema.name}' are missing")
    return schema.prepare(frame[schema.names].reset_index(drop=True), source=role)


def category_codes(series: pd.Series, col: Column) -> np.ndarray:
    """Integer codes over the column's public categories; missing -> len(categories)."""
    lookup = {_key(c): i for i, c in enumerate(col.categories)}
    missing = len(col.categories)
    # key each distinct value once (values equal under == share their key: 1, 1.0, True, np.int64(1))
    inverse, distinct = pd.factorize(series.to_numpy(dtype=object), use_na_sentinel=False)
    codes = np.array([missing if _isna(v) else lookup[_key(v)] for v in distinct], dtype=np.int64)
    return codes[inverse] if len(codes) else np.zeros(0, dtype=np.int64)


def _isna(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def numeric_values(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


@dataclass
class FeatureEncoder:
    """Schema-driven encoder; ``fit`` on real training data, ``transform`` any frame."""

    schema: Schema
    columns: tuple[str, ...] | None = None
    mean_: dict = field(default_factory=dict)
    scale_: dict = field(default_factory=dict)
    names_: list = field(default_factory=list)

    def fit(self, frame: pd.DataFrame) -> "FeatureEncoder":
        cols = self._columns()
        names: list[str] = []
        for col in cols:
            if col.is_numeric:
                values = numeric_values(frame[col.name])
                finite = values[np.isfinite(values)]
                mean = float(finite.mean()) if finite.size else float(col.low + col.high) / 2
                std = float(finite.std()) if finite.size > 1 else 0.0
                self.mean_[col.name] = mean
                self.scale_[col.name] = std if std > 0 else float(col.high - col.low) / 4
                names.append(col.name)
                if col.nullable:
                    names.append(f"{col.name}__missing")
            else:
                cats = list(col.categories) + (["<missing>"] if col.nullable else [])
                names.extend(f"{col.name}={c}" for c in cats)
        self.names_ = names
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        if not self.names_:
            raise DataError("FeatureEncoder.transform called before fit")
        blocks = []
        for col in self._columns():
            if col.is_numeric:
                values = numeric_values(frame[col.name])
                missing = ~np.isfinite(values)
                z = (np.where(missing, self.mean_[col.name], values) - self.mean_[col.name]) / self.scale_[col.name]
                blocks.append(z[:, None])
                if col.nullable:
                    blocks.append(missing.astype(float)[:, None])
            else:
                codes = category_codes(frame[col.name], col)
                width = len(col.categories) + (1 if col.nullable else 0)
                block = np.zeros((len(frame), width))
                block[np.arange(len(frame)), codes] = _ONE_HOT_SCALE
                blocks.append(block)
        return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))

    def fit_transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self.fit(frame).transform(frame)

    def _columns(self) -> list[Column]:
        names = self.columns if self.columns is not None else tuple(self.schema.names)
        return [self.schema[n] for n in names]


def numeric_bins(col: Column, n_bins: int) -> np.ndarray:
    """Equal-width bin edges over the column's *public* bounds."""
    return np.linspace(float(col.low), float(col.high), n_bins + 1)


def discretize(series: pd.Series, col: Column, *, n_bins: int = 10, edges=None) -> np.ndarray:
    """Codes for a histogram/TVD: categories by public list, numerics by public-bound bins.

    Missing values get their own code (the last one).
    """
    if not col.is_numeric:
        return category_codes(series, col)
    edges = np.asarray(edges if edges is not None else numeric_bins(col, n_bins), dtype=float)
    values = numeric_values(series)
    codes = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    return np.where(np.isfinite(values), codes, len(edges) - 1).astype(np.int64)


def n_codes(col: Column, *, n_bins: int = 10, edges=None) -> int:
    if not col.is_numeric:
        return len(col.categories) + 1
    return (len(edges) - 1 if edges is not None else n_bins) + 1


def shares(codes: np.ndarray, size: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=size).astype(float)
    return counts / max(counts.sum(), 1.0)


def binary_labels(series: pd.Series, col: Column, *, role: str) -> np.ndarray:
    """0/1 labels for a binary target: the schema's second category is the positive class."""
    if col.kind not in ("binary", "categorical") or len(col.categories) != 2:
        raise DataError(
            f"{role}: target '{col.name}' must be binary (2 categories), it is {col.kind}"
            + (f" with {len(col.categories)} categories" if not col.is_numeric else "")
        )
    codes = category_codes(series, col)
    if (codes == 2).any():
        raise DataError(f"{role}: target '{col.name}' has missing values")
    return codes
