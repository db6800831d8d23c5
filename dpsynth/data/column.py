"""One column of a public schema (kind, public domain, flags) and the check of a real column's
cells against it (one-line :class:`~dpsynth.errors.DataError` naming the column)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.errors import DataError, SchemaError

KINDS = ("continuous", "integer", "categorical", "binary")
_COLUMN_KEYS = {
    "name", "kind", "low", "high", "categories", "nullable", "sensitive", "description", "clip", "other", "atoms",
    "codes", "top_codes", "origin", "unit",
}


@dataclass(frozen=True)
class Column:
    """One column. ``low``/``high`` for numeric kinds, ``categories`` for categorical/binary.

    ``clip``: values outside [low, high] are clipped to the bound, and categories outside the
    list are mapped to the declared ``other`` level (see :mod:`dpsynth.data.clip`), instead of
    being refused. ``atoms``: public values of a numeric column that hold a point mass (e.g. 0
    for a zero-inflated lab, or a bound); generators keep them as exact values.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    categories: tuple = ()
    nullable: bool = False
    sensitive: bool = False
    description: str = ""
    clip: bool = False
    other: Any = None
    atoms: tuple = ()
    codes: str | None = None  # a public code hierarchy ("icd9"): raw codes map to its categories
    top_codes: int | None = None  # DP-select at most this many fine categories at training (the rest -> chapters)
    origin: str | None = None  # dates: a numeric column of offsets in `unit`s since this public date
    unit: str | None = None

    def __post_init__(self) -> None:
        if self.codes is not None:
            self._init_codes()
        if self.origin is not None or self.unit is not None:
            self._init_dates()
        if self.kind not in KINDS:
            raise SchemaError(f"column '{self.name}': kind '{self.kind}' is not one of {', '.join(KINDS)}")
        if self.kind in ("continuous", "integer"):
            if self.low is None or self.high is None:
                raise SchemaError(f"column '{self.name}': {self.kind} column needs public 'low' and 'high' bounds")
            if not all(isinstance(b, (int, float, np.integer, np.floating)) and not isinstance(b, bool)
                       and np.isfinite(b) for b in (self.low, self.high)):
                raise SchemaError(f"column '{self.name}': bounds must be finite numbers, got [{self.low}, {self.high}]")
            if not float(self.low) < float(self.high):
                raise SchemaError(f"column '{self.name}': low ({self.low}) must be below high ({self.high})")
        else:
            cats = tuple(self.categories) if self.kind == "categorical" else tuple(self.categories or (0, 1))
            if self.kind == "binary" and len(cats) != 2:
                raise SchemaError(f"column '{self.name}': a binary column has exactly 2 categories, got {list(cats)}")
            if len(cats) == 0:
                raise SchemaError(f"column '{self.name}': categorical column needs a public 'categories' list")
            if len(set(cats)) != len(cats):
                raise SchemaError(f"column '{self.name}': duplicate categories in {list(cats)}")
            object.__setattr__(self, "categories", cats)
        self._check_clip_fields()

    def _check_clip_fields(self) -> None:
        if self.other is not None:
            if self.is_numeric:
                raise SchemaError(f"column '{self.name}': 'other' applies to categorical columns only")
            if _key(self.other) not in {_key(c) for c in self.categories}:
                raise SchemaError(f"column '{self.name}': 'other' level {self.other!r} is not one of its categories")
        atoms = tuple(self.atoms or ())
        if atoms:
            if not self.is_numeric:
                raise SchemaError(f"column '{self.name}': 'atoms' (point masses) apply to numeric columns only")
            for a in atoms:
                if isinstance(a, bool) or not isinstance(a, (int, float, np.integer, np.floating)) or not np.isfinite(a):
                    raise SchemaError(f"column '{self.name}': atom {a!r} is not a finite number")
                if not float(self.low) <= float(a) <= float(self.high):
                    raise SchemaError(f"column '{self.name}': atom {a} is outside [{self.low}, {self.high}]")
            if len(set(float(a) for a in atoms)) != len(atoms):
                raise SchemaError(f"column '{self.name}': duplicate atoms in {list(atoms)}")
        object.__setattr__(self, "atoms", tuple(sorted(float(a) for a in atoms)))

    def _init_codes(self) -> None:
        from dpsynth.data import icd9

        if self.codes not in icd9.SYSTEMS:
            raise SchemaError(f"column '{self.name}': codes '{self.codes}' is not one of {', '.join(icd9.SYSTEMS)}")
        if self.kind != "categorical":
            raise SchemaError(f"column '{self.name}': a code column ('codes: {self.codes}') is categorical")
        if not self.categories:  # the whole public code space: every 3-digit category and chapter
            object.__setattr__(self, "categories", icd9.full_domain())
        if self.top_codes is not None and (isinstance(self.top_codes, bool) or not isinstance(self.top_codes, int)
                                           or self.top_codes < 1):
            raise SchemaError(f"column '{self.name}': top_codes must be an integer >= 1, got {self.top_codes!r}")

    def _init_dates(self) -> None:
        from dpsynth.data.dates import UNITS, parse_origin

        if self.origin is None or self.unit not in UNITS:
            raise SchemaError(f"column '{self.name}': a date column needs 'origin' (a date) and 'unit'"
                              f" (one of {', '.join(UNITS)})")
        if self.kind not in ("integer", "continuous"):
            raise SchemaError(f"column '{self.name}': a date column holds offsets: kind integer or continuous")
        try:
            parse_origin(str(self.origin))
        except (ValueError, TypeError):
            raise SchemaError(f"column '{self.name}': origin {self.origin!r} is not a date") from None
        object.__setattr__(self, "origin", str(self.origin))

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("continuous", "integer")

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.is_numeric:
            out["low"], out["high"] = _plain(self.low), _plain(self.high)
            if self.origin is not None:
                out["origin"], out["unit"] = self.origin, self.unit
        elif self.codes is not None:
            from dpsynth.data import icd9

            out["codes"] = self.codes
            if tuple(self.categories) != icd9.full_domain():  # the full public space is implied
                out["categories"] = [_plain(c) for c in self.categories]
            if self.top_codes is not None:
                out["top_codes"] = self.top_codes
        else:
            out["categories"] = [_plain(c) for c in self.categories]
        if self.nullable:
            out["nullable"] = True
        if self.sensitive:
            out["sensitive"] = True
        if self.description:
            out["description"] = self.description
        if self.clip:
            out["clip"] = True
        if self.other is not None:
            out["other"] = _plain(self.other)
        if self.atoms:
            out["atoms"] = [_plain(a) for a in self.atoms]
        return out


def _plain(value):
    """numpy scalars -> python scalars, so YAML/JSON dumps stay plain."""
    return value.item() if isinstance(value, np.generic) else value


def _few(names: list, limit: int = 10) -> str:
    """A list for a one-line message: the first ``limit`` names and how many more."""
    return str(list(names)) if len(names) <= limit else f"{list(names[:limit])} and {len(names) - limit} more"


def _check_column(series: pd.Series, col: Column, source: str) -> pd.Series:
    isna = series.isna()
    if isna.any() and not col.nullable:
        raise DataError(
            f"{source}: column '{col.name}' has {int(isna.sum())} missing value(s) but the schema does not allow them"
            " (set nullable: true)"
        )
    present = series[~isna]
    if col.is_numeric and col.origin is not None and not pd.api.types.is_numeric_dtype(present.dtype):
        from dpsynth.data.dates import to_offsets  # dates -> offsets from the public origin

        offsets = to_offsets(present, origin=col.origin, unit=col.unit)
        if offsets.isna().any():
            raise DataError(f"{source}: column '{col.name}' holds {present[offsets.isna()].iloc[0]!r}, not a date")
        present = offsets
    if col.is_numeric:
        values = pd.to_numeric(present, errors="coerce")
        bad = values.isna()
        if bad.any():
            raise DataError(
                f"{source}: column '{col.name}' is {col.kind} but holds non-numeric value {present[bad].iloc[0]!r}"
            )
        infinite = ~np.isfinite(values.to_numpy(dtype=float))
        if infinite.any():
            raise DataError(f"{source}: column '{col.name}' has {int(infinite.sum())} infinite value(s) outside the"
                            f" declared domain [{col.low}, {col.high}]")
        if col.kind == "integer" and not np.all(np.mod(values.to_numpy(dtype=float), 1) == 0):
            raise DataError(f"{source}: column '{col.name}' is integer but holds fractional values")
        out_of_range = (values < col.low) | (values > col.high)
        if out_of_range.any():
            raise DataError(
                f"{source}: column '{col.name}' has {int(out_of_range.sum())} value(s) outside the declared domain"
                f" [{col.low}, {col.high}]"
            )
        result = pd.Series(np.nan, index=series.index, dtype=float)
        result[~isna] = values.astype(float)
        return result
    if col.codes is not None:  # raw codes -> their kept category or chapter (public hierarchy)
        from dpsynth.data import icd9

        kept = frozenset(col.categories)
        coarse = present.map({v: icd9.coarsen(v, kept) for v in present.unique()})
        bad = coarse.isna()
        if bad.any():
            raise DataError(f"{source}: column '{col.name}' holds {present[bad].iloc[0]!r}, not an ICD-9-CM code")
        result = pd.Series([None] * len(series), index=series.index, dtype=object)
        result[~isna] = coarse
        return result
    # categorical / binary: match values to the declared categories, respecting their type
    lookup = {_key(c): c for c in col.categories}
    mapped = present.map({v: lookup.get(_key(v), _UNKNOWN) for v in present.unique()})  # each distinct value once
    unknown = mapped.map(lambda v: v is _UNKNOWN)
    if unknown.any():
        raise DataError(
            f"{source}: column '{col.name}' has unknown category {present[unknown].iloc[0]!r}"
            f" (declared: {list(col.categories)})"
        )
    result = pd.Series([None] * len(series), index=series.index, dtype=object)
    result[~isna] = mapped
    return result


_UNKNOWN = object()


def _key(value) -> str:
    """Compare categories by value: 1, 1.0, '1' and np.int64(1) are the same category."""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        f = float(value)
        return str(int(f)) if f.is_integer() else repr(f)
    text = str(value).strip()
    try:
        f = float(text)
    except ValueError:
        return text
    return str(int(f)) if f.is_integer() else repr(f)
