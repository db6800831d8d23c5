"""Subgroups from the schema's sensitive columns and their pairwise intersections.

A categorical sensitive column gives one group per public category; a numeric one (age) is
cut into bins on its *public* bounds (equal width, or edges given in the config). Group
labels look like ``race=1`` or ``race=1 & gender=0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from dpsynth.data.schema import Column, Schema, _key
from dpsynth.errors import DataError
from dpsynth.metrics.encoding import numeric_values


@dataclass(frozen=True)
class Attribute:
    column: str
    labels: tuple[str, ...]
    edges: tuple[float, ...] | None = None  # numeric columns only

    def label(self, frame: pd.DataFrame, col: Column) -> np.ndarray:
        """One label per row (None for a missing value)."""
        if self.edges is None:
            lookup = {_key(c): str(c) for c in col.categories}
            return np.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else lookup.get(_key(v))
                             for v in frame[col.name]], dtype=object)
        values = numeric_values(frame[col.name])
        idx = np.clip(np.searchsorted(np.asarray(self.edges), values, side="right") - 1, 0, len(self.labels) - 1)
        return np.where(np.isfinite(values), np.asarray(self.labels, dtype=object)[idx], None)


def attributes(schema: Schema, *, columns=None, bins: dict | None = None, n_bins: int = 4) -> list[Attribute]:
    """The sensitive attributes (``columns`` overrides the schema's list)."""
    names = list(columns) if columns is not None else schema.sensitive
    out = []
    for name in names:
        col = schema[name]
        if not col.is_numeric:
            out.append(Attribute(name, tuple(str(c) for c in col.categories)))
            continue
        edges = (bins or {}).get(name)
        edges = np.asarray(edges if edges is not None else np.linspace(col.low, col.high, n_bins + 1), dtype=float)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise DataError(f"subgroup bins for '{name}' must be increasing edges, got {list(edges)}")
        labels = tuple(f"[{_fmt(edges[i])}, {_fmt(edges[i + 1])}{']' if i == len(edges) - 2 else ')'}"
                       for i in range(len(edges) - 1))
        out.append(Attribute(name, labels, tuple(float(e) for e in edges)))
    return out


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


def group_masks(frame: pd.DataFrame, schema: Schema, attrs: list[Attribute], *,
                intersections: bool = True) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """{group name: (columns, boolean row mask)} for single attributes and pairwise intersections."""
    labels = {a.column: a.label(frame, schema[a.column]) for a in attrs}
    single = {}
    for a in attrs:
        for lab in a.labels:
            single[(a.column, lab)] = labels[a.column] == lab
    out = {f"{c}={lab}": ((c,), m) for (c, lab), m in single.items()}
    if intersections:
        for a, b in combinations(attrs, 2):
            for la in a.labels:
                for lb in b.labels:
                    mask = single[(a.column, la)] & single[(b.column, lb)]
                    out[f"{a.column}={la} & {b.column}={lb}"] = ((a.column, b.column), mask)
    return out
