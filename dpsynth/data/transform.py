"""Encode a table into a float matrix for neural generators, using only the public schema.

Numeric columns are scaled from the schema's public [low, high] to [-1, 1] (no data-fitted
statistics); categorical and binary columns become one-hot blocks. A nullable column gets an
extra "missing" category (categorical) or a 2-way present/missing block (numeric).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dpsynth.data.schema import Column, Schema, _key


@dataclass(frozen=True)
class Span:
    """A slice of the encoded matrix: 'tanh' (one numeric value) or 'softmax' (one-hot block)."""

    column: str
    kind: str  # "tanh" | "softmax"
    start: int
    dim: int
    role: str = "value"  # "value" | "missing" (presence block of a nullable numeric column)

    @property
    def stop(self) -> int:
        return self.start + self.dim


class TableTransformer:
    """Schema-driven encoder/decoder between a prepared DataFrame and a float32 matrix."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        spans: list[Span] = []
        pos = 0
        for col in schema.columns:
            if col.is_numeric:
                spans.append(Span(col.name, "tanh", pos, 1))
                pos += 1
                if col.nullable:
                    spans.append(Span(col.name, "softmax", pos, 2, role="missing"))
                    pos += 2
            else:
                dim = len(col.categories) + (1 if col.nullable else 0)
                spans.append(Span(col.name, "softmax", pos, dim))
                pos += dim
        self.spans = tuple(spans)
        self.dim = pos

    def categories_of(self, col: Column) -> list:
        """Category list for a categorical column's one-hot block (missing last when nullable)."""
        return list(col.categories) + ([None] if col.nullable else [])

    def category_codes(self, frame: pd.DataFrame, col: Column) -> np.ndarray:
        """Integer codes of a categorical column (missing -> last code when nullable)."""
        lookup = {_key(c): i for i, c in enumerate(col.categories)}
        missing_code = len(col.categories)
        return np.array(
            [missing_code if v is None or (isinstance(v, float) and np.isnan(v)) else lookup[_key(v)] for v in frame[col.name]],
            dtype=np.int64,
        )

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(frame), self.dim), dtype=np.float32)
        for span in self.spans:
            col = self.schema[span.column]
            if span.kind == "tanh":
                values = frame[col.name].to_numpy(dtype=float)
                scaled = 2.0 * (values - col.low) / (col.high - col.low) - 1.0
                out[:, span.start] = np.nan_to_num(scaled, nan=0.0)
            elif span.role == "missing":
                missing = frame[col.name].isna().to_numpy()
                out[np.arange(len(frame)), span.start + missing.astype(int)] = 1.0
            else:
                codes = self.category_codes(frame, col)
                out[np.arange(len(frame)), span.start + codes] = 1.0
        return out

    def decode(self, matrix: np.ndarray, *, rng: np.random.Generator | None = None) -> pd.DataFrame:
        """Matrix -> DataFrame in original types. Softmax blocks take argmax (or sample when rng)."""
        data: dict[str, object] = {}
        missing_mask: dict[str, np.ndarray] = {}
        for span in self.spans:
            col = self.schema[span.column]
            block = matrix[:, span.start : span.stop]
            if span.kind == "tanh":
                x = np.clip(block[:, 0], -1.0, 1.0)
                values = col.low + (x + 1.0) / 2.0 * (col.high - col.low)
                if col.kind == "integer":
                    values = np.clip(np.rint(values), np.ceil(col.low), np.floor(col.high))
                data[col.name] = values
            else:
                codes = _choose(block, rng)
                if span.role == "missing":
                    missing_mask[col.name] = codes == 1
                else:
                    data[col.name] = _category_values(self.categories_of(col), codes)
        frame = pd.DataFrame(data)
        for name, mask in missing_mask.items():
            values = frame[name].astype(float).to_numpy()
            values[mask] = np.nan
            frame[name] = values
        return restore_types(frame, self.schema)


def _category_values(cats: list, codes: np.ndarray) -> np.ndarray:
    """Vectorised code -> category lookup; integer categories stay a numeric array (NaN = missing)."""
    if all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in cats[:-1] if c is not None) and (
        cats[-1] is None or isinstance(cats[-1], (int, np.integer))
    ):
        table = np.array([np.nan if c is None else float(c) for c in cats])
        return table[codes]
    return np.asarray(cats, dtype=object)[codes]


def _choose(block: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    if rng is None:
        return block.argmax(axis=1)
    probs = np.clip(block, 0, None)
    probs = probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)
    cum = probs.cumsum(axis=1)
    u = rng.random((len(block), 1))
    return np.minimum((u > cum).sum(axis=1), block.shape[1] - 1)


def restore_types(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Cast columns back to the schema's types: integers as Int64 (nullable) or int64, categories as declared."""
    out = {}
    for col in schema.columns:
        s = frame[col.name]
        if col.origin is not None:  # offsets back to ISO dates / datetimes (public origin and unit)
            from dpsynth.data.dates import from_offsets

            out[col.name] = from_offsets(s, origin=col.origin, unit=col.unit)
        elif col.kind == "integer":
            out[col.name] = s.astype("Int64") if col.nullable else s.astype(np.int64)
        elif col.kind == "continuous":
            out[col.name] = s.astype(float)
        else:
            int_categories = all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in col.categories)
            if int_categories and pd.api.types.is_numeric_dtype(s.dtype):  # already numeric: cast, no Python loop
                out[col.name] = s.astype("Int64") if col.nullable else s.astype(np.int64)
                continue
            values = list(s)
            if int_categories:
                out[col.name] = (pd.Series(values, dtype="Int64", index=s.index) if col.nullable
                                 else pd.Series(values, dtype=np.int64, index=s.index))
            else:
                out[col.name] = pd.Series(values, dtype=object, index=s.index)
    return pd.DataFrame(out, copy=False)  # the casts above already copied; skip a second block copy
