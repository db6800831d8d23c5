"""Map a table to small integer codes on its PUBLIC domain, and codes back to values.

- categorical / binary: the declared categories, in order;
- integer: one code per value when the declared range has at most ``bins`` values, else
  ``bins`` equal-width bins over the integers of [low, high];
- continuous: ``bins`` equal-width bins on [low, high];
- a nullable column gets one more code, last, for "missing";
- a numeric column's declared ``atoms`` (public point masses, e.g. 0 or a score's maximum) get
  one code each, first, so that they come back as exact values instead of smeared over a bin;
  for an integer column, the bins start after the run of atoms low, low + 1, ... (so atoms
  0, 1, 2, 3 on a count of visits give width-1 codes for the small counts and the equal-width
  bins cover 4 .. high: the public rule for skewed counts).

Only the schema is read to build the bins (never the data's min, max or quantiles). Decoding
draws numeric values uniformly inside their bin (integers uniformly among the bin's integers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from dpsynth.data.schema import Column, Schema, _key
from dpsynth.errors import DpsynthError


@dataclass(frozen=True)
class ColumnBins:
    """The codes of one column: ``size`` codes, the last one "missing" when nullable."""

    column: Column
    n_values: int  # codes that hold a value (atoms, categories or bins), missing excluded
    edges: np.ndarray | None  # numeric: n_bins + 1 edges (integers: bin b holds [ceil(e_b), ceil(e_b+1)))
    atoms: tuple = ()  # numeric: codes 0 .. len(atoms) - 1 are these exact values, bins follow

    @property
    def size(self) -> int:
        return self.n_values + (1 if self.column.nullable else 0)

    @property
    def missing_code(self) -> int | None:
        return self.n_values if self.column.nullable else None

    # ---- values -> codes ------------------------------------------------------------------
    def encode(self, series: pd.Series) -> np.ndarray:
        col = self.column
        missing = series.isna().to_numpy()
        if missing.any() and not col.nullable:
            raise DpsynthError(f"column '{col.name}' has missing values but is not nullable in the schema")
        if col.is_numeric:
            x = series.to_numpy(dtype=float)
            codes = self._numeric_codes(np.where(missing, self.edges[0], x))
        else:
            lookup = {_key(c): i for i, c in enumerate(col.categories)}
            present = series[~missing]
            mapped = present.map(lambda v: lookup.get(_key(v), -1)).to_numpy(dtype=np.int64)
            if np.any(mapped < 0):
                bad = present.to_numpy(dtype=object)[mapped < 0][0]
                raise DpsynthError(f"column '{col.name}' holds {bad!r}, not a declared category")
            codes = np.zeros(len(series), dtype=np.int64)
            codes[~missing] = mapped
        if col.nullable:
            codes[missing] = self.n_values
        return codes

    def _numeric_codes(self, x: np.ndarray) -> np.ndarray:
        col = self.column
        if np.any((x < col.low) | (x > col.high)):
            bad = x[(x < col.low) | (x > col.high)][0]
            raise DpsynthError(f"column '{col.name}' holds {bad!r}, outside its declared domain [{col.low}, {col.high}]")
        n_atoms = len(self.atoms)
        codes = n_atoms + np.clip(np.searchsorted(self.edges, x, side="right") - 1, 0, len(self.edges) - 2)
        for j, atom in enumerate(self.atoms):
            codes[x == atom] = j
        return codes.astype(np.int64)

    def code_of(self, value: Any) -> int:
        """The code of one requested value (for conditioning); None/NaN is the missing code."""
        col = self.column
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if not col.nullable:
                raise DpsynthError(f"condition {col.name}=missing, but column '{col.name}' is not nullable")
            return self.n_values
        if col.is_numeric:
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise DpsynthError(f"condition {col.name}={value!r} is not a number") from None
            if not col.low <= v <= col.high:
                raise DpsynthError(f"condition {col.name}={value!r} is outside the declared domain [{col.low}, {col.high}]")
            if col.kind == "integer" and v != int(v):
                raise DpsynthError(f"condition {col.name}={value!r} is not an integer")
            return int(self._numeric_codes(np.array([v]))[0])
        lookup = {_key(c): i for i, c in enumerate(col.categories)}
        if _key(value) not in lookup:
            raise DpsynthError(f"condition {col.name}={value!r} is not a declared category {list(col.categories)}")
        return lookup[_key(value)]

    # ---- codes -> values ------------------------------------------------------------------
    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        col = self.column
        missing = codes == self.n_values if col.nullable else None
        if col.is_numeric:
            n_atoms = len(self.atoms)
            b = np.clip(codes - n_atoms, 0, len(self.edges) - 2)
            u = rng.random(len(codes))
            if col.kind == "integer":  # bin b holds the integers ceil(e_b) .. ceil(e_{b+1}) - 1
                first = np.ceil(self.edges)
                values = first[:-1][b] + np.floor(u * np.diff(first)[b])
            else:
                values = self.edges[:-1][b] + u * np.diff(self.edges)[b]
            for j, atom in enumerate(self.atoms):
                values[codes == j] = atom
            if missing is not None:
                values[missing] = np.nan
            return values
        if all(isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_)) for c in col.categories):
            # integer categories stay numeric (float with NaN for missing), which restore_types casts fast
            cats = np.array(list(col.categories) + [0], dtype=float if col.nullable else np.int64)
            values = cats[codes]
            if missing is not None:
                values[missing] = np.nan
            return values
        cats = np.empty(len(col.categories) + 1, dtype=object)
        cats[: len(col.categories)] = list(col.categories)
        cats[-1] = None
        return cats[codes]


def column_bins(col: Column, *, bins: int) -> ColumnBins:
    if col.is_numeric:
        if col.kind == "integer":
            lo, hi = math.ceil(col.low), math.floor(col.high)
            lo = _after_low_atoms(col.atoms, lo, hi)
            n_values = min(bins, hi - lo + 1)
            edges = np.linspace(lo, hi + 1, n_values + 1)  # bins over [lo, hi + 1): each holds >= 1 integer
        else:
            n_values = bins
            edges = np.linspace(float(col.low), float(col.high), bins + 1)
        return ColumnBins(col, n_values + len(col.atoms), edges, tuple(col.atoms))
    return ColumnBins(col, len(col.categories), None)


def _after_low_atoms(atoms: tuple, lo: int, hi: int) -> int:
    """The first integer the bins of an integer column start at: past the run of atoms low, low + 1, ...
    (public width-1 codes for the small values of a count, e.g. atoms 0..4 of visits per year), so
    no bin is left holding only atoms; ``lo`` when there is no such run or it covers every value."""
    run = lo
    while float(run) in atoms:
        run += 1
    return run if run <= hi else lo


class Discretizer:
    """All columns of a schema on their public codes."""

    def __init__(self, schema: Schema, *, bins: int) -> None:
        if not isinstance(bins, int) or bins < 2:
            raise DpsynthError(f"bins must be an integer >= 2, got {bins!r}")
        self.schema = schema
        self.columns = [column_bins(col, bins=bins) for col in schema.columns]
        self.names = [c.column.name for c in self.columns]
        self.sizes = [c.size for c in self.columns]

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """(n_rows, n_columns) int64 codes."""
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise DpsynthError(f"column '{missing[0]}' of the schema is missing from the data")
        return np.stack([c.encode(frame[c.column.name]) for c in self.columns], axis=1) if len(frame) else \
            np.zeros((0, len(self.columns)), dtype=np.int64)

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        return pd.DataFrame({c.column.name: c.decode(codes[:, j], rng) for j, c in enumerate(self.columns)}, copy=False)

    def evidence(self, conditions: Mapping[str, Any] | None) -> tuple[dict[int, int], dict[str, float]]:
        """Conditions {column: value} -> ({column index: code}, {numeric column: the exact value
        to write back after decoding}); one-line errors for unknown columns or values."""
        codes, exact = {}, {}
        for name, value in (conditions or {}).items():
            j = self.index(name)
            codes[j] = self.columns[j].code_of(value)
            if self.columns[j].column.is_numeric and codes[j] != self.columns[j].missing_code:
                exact[name] = float(value)
        return codes, exact

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise DpsynthError(f"cannot condition on unknown column '{name}'") from None
