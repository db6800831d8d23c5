"""The public schema of a table: column kinds, public domains, sensitive attributes, target.

A schema is *public knowledge*: bounds and category lists are written from documentation
(or estimated with a DP mechanism charged to the ledger, see :mod:`dpsynth.data.infer`),
never read off the data. ``Schema.validate`` checks a DataFrame against it and raises a
one-line :class:`~dpsynth.errors.SchemaError` / :class:`~dpsynth.errors.DataError` naming the
column at fault.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dpsynth.errors import DataError, SchemaError

KINDS = ("continuous", "integer", "categorical", "binary")
_COLUMN_KEYS = {"name", "kind", "low", "high", "categories", "nullable", "sensitive", "description", "codes",
                "top_codes", "origin", "unit"}
_SCHEMA_KEYS = {
    "name", "columns", "target", "drop", "duration", "event", "privacy_unit", "description",
    "max_rows_per_unit",
}
#: privacy_unit values that mean "one row per person" (old free-text schemas stay row-level)
_ROW_LEVEL_WORDS = {"row", "rows", "record", "records", "patient", "person", "individual", "subject", "image"}


@dataclass(frozen=True)
class Column:
    """One column. ``low``/``high`` for numeric kinds, ``categories`` for categorical/binary."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    categories: tuple = ()
    nullable: bool = False
    sensitive: bool = False
    description: str = ""
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
        return out


def _plain(value):
    """numpy scalars -> python scalars, so YAML/JSON dumps stay plain."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class Schema:
    """A table's public schema. ``drop`` lists id columns removed before anything else."""

    columns: tuple[Column, ...]
    name: str = "table"
    target: str | None = None
    drop: tuple[str, ...] = ()
    duration: str | None = None
    event: str | None = None
    privacy_unit: str = "row"
    description: str = ""
    max_rows_per_unit: int | None = None
    _index: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"schema '{self.name}': duplicate column(s) {dupes}")
        if not names:
            raise SchemaError(f"schema '{self.name}': no columns")
        self._index.update({c.name: c for c in self.columns})
        for role in ("target", "duration", "event"):
            value = getattr(self, role)
            if value is not None and value not in self._index:
                raise SchemaError(f"schema '{self.name}': {role} '{value}' is not a declared column")
        overlap = set(self.drop) & set(names)
        if overlap:
            raise SchemaError(f"schema '{self.name}': column(s) {sorted(overlap)} are both declared and dropped")
        self._check_privacy_unit()

    def _check_privacy_unit(self) -> None:
        unit = self.privacy_unit.strip()
        is_token = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", unit) is not None
        if is_token and unit.lower() not in _ROW_LEVEL_WORDS and self.unit_column is None:
            raise SchemaError(
                f"schema '{self.name}': privacy_unit '{unit}' is neither a declared nor a dropped column"
                " (name the patient-id column, or write 'row')"
            )
        if self.max_rows_per_unit is not None:
            if self.unit_column is None:
                raise SchemaError(f"schema '{self.name}': max_rows_per_unit needs privacy_unit to name a patient-id column")
            if isinstance(self.max_rows_per_unit, bool) or not isinstance(self.max_rows_per_unit, int) \
                    or self.max_rows_per_unit < 1:
                raise SchemaError(f"schema '{self.name}': max_rows_per_unit must be an integer >= 1,"
                                  f" got {self.max_rows_per_unit!r}")

    @property
    def unit_column(self) -> str | None:
        """The privacy-unit (patient-id) column, or None when the unit is one row.

        ``privacy_unit`` equal to a declared or dropped column name names that column; any
        other value ("row", "patient (one row per patient)", ...) means one row per person."""
        unit = self.privacy_unit.strip()
        return unit if unit in self._index or unit in self.drop else None

    # ---- access -----------------------------------------------------------------------
    def __getitem__(self, name: str) -> Column:
        try:
            return self._index[name]
        except KeyError:
            raise SchemaError(f"schema '{self.name}': unknown column '{name}'") from None

    def __contains__(self, name: str) -> bool:
        return name in self._index

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def sensitive(self) -> list[str]:
        return [c.name for c in self.columns if c.sensitive]

    @property
    def categorical(self) -> list[Column]:
        return [c for c in self.columns if not c.is_numeric]

    @property
    def numeric(self) -> list[Column]:
        return [c for c in self.columns if c.is_numeric]

    # ---- (de)serialisation -------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict, *, source: str = "schema") -> "Schema":
        if not isinstance(raw, dict):
            raise SchemaError(f"{source}: expected a mapping at the top level")
        unknown = set(raw) - _SCHEMA_KEYS
        if unknown:
            raise SchemaError(f"{source}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_SCHEMA_KEYS)}")
        cols_raw = raw.get("columns")
        if not isinstance(cols_raw, list) or not cols_raw:
            raise SchemaError(f"{source}: 'columns' must be a non-empty list")
        columns = []
        for i, col in enumerate(cols_raw):
            if not isinstance(col, dict) or "name" not in col or "kind" not in col:
                raise SchemaError(f"{source}: column #{i} needs at least 'name' and 'kind'")
            bad = set(col) - _COLUMN_KEYS
            if bad:
                raise SchemaError(f"{source}: column '{col['name']}': unknown key(s) {sorted(bad)}")
            kwargs = dict(col)
            if "categories" in kwargs:
                if not isinstance(kwargs["categories"], list):
                    raise SchemaError(f"{source}: column '{col['name']}': 'categories' must be a list")
                kwargs["categories"] = tuple(kwargs["categories"])
            for key in ("low", "high"):
                if key in kwargs and not isinstance(kwargs[key], (int, float)):
                    raise SchemaError(f"{source}: column '{col['name']}': '{key}' must be a number")
            columns.append(Column(**kwargs))
        return cls(
            columns=tuple(columns),
            name=str(raw.get("name", "table")),
            target=raw.get("target"),
            drop=tuple(raw.get("drop", ()) or ()),
            duration=raw.get("duration"),
            event=raw.get("event"),
            privacy_unit=str(raw.get("privacy_unit", "row")),
            description=str(raw.get("description", "")),
            max_rows_per_unit=raw.get("max_rows_per_unit"),
        )

    @classmethod
    def load(cls, path: str | Path) -> "Schema":
        path = Path(path)
        if not path.is_file():
            raise SchemaError(f"schema file not found: {path}")
        try:
            text = path.read_text()
            raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise SchemaError(f"schema file {path} is not valid YAML/JSON: {str(exc).splitlines()[0]}") from None
        return cls.from_dict(raw, source=str(path))

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        for role in ("target", "duration", "event"):
            if getattr(self, role) is not None:
                out[role] = getattr(self, role)
        if self.drop:
            out["drop"] = list(self.drop)
        out["privacy_unit"] = self.privacy_unit
        if self.max_rows_per_unit is not None:
            out["max_rows_per_unit"] = self.max_rows_per_unit
        out["columns"] = [c.to_dict() for c in self.columns]
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    # ---- validation --------------------------------------------------------------------
    def prepare(self, frame: pd.DataFrame, *, source: str = "data") -> pd.DataFrame:
        """Drop id columns, check every declared column against its public domain.

        Returns a new frame holding the declared columns in schema order, with
        categorical values cast to the schema's category type. Raises a one-line
        DataError naming the first offending column; nothing is coerced silently.
        """
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise DataError(f"{source}: column(s) {missing} declared in schema '{self.name}' are missing")
        extra = [c for c in frame.columns if c not in self._index and c not in self.drop]
        if extra:
            raise DataError(
                f"{source}: column(s) {extra} are not in schema '{self.name}' (declare them or list them under 'drop')"
            )
        out = {}
        for col in self.columns:
            out[col.name] = _check_column(frame[col.name], col, source)
        return pd.DataFrame(out, index=frame.index)


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
