"""The public schema of a table: column kinds, public domains, sensitive attributes, target.

A schema is *public knowledge*: bounds and category lists are written from documentation
(or estimated with a DP mechanism charged to the ledger, see :mod:`dpsynth.privacy.infer_schema`),
never read off the data. ``Schema.validate`` checks a DataFrame against it and raises a
one-line :class:`~dpsynth.errors.SchemaError` / :class:`~dpsynth.errors.DataError` naming the
column at fault.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dpsynth.data.column import (_COLUMN_KEYS, _UNKNOWN, KINDS, Column, _check_column, _few, _key,  # noqa: F401
                                 _plain)
from dpsynth.errors import DataError, SchemaError

_SCHEMA_KEYS = {
    "name", "columns", "target", "drop", "duration", "event", "privacy_unit", "description", "reviewed",
    "max_rows_per_unit",
}
#: privacy_unit values that mean "one row per person" (old free-text schemas stay row-level)
_ROW_LEVEL_WORDS = {"row", "rows", "record", "records", "patient", "person", "individual", "subject", "image"}


def _reviewed_flag(value, source: str) -> bool:
    if not isinstance(value, bool):
        raise SchemaError(f"{source}: 'reviewed' must be true or false, got {value!r}")
    return value


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
    reviewed: bool = True
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
                hint = ("; a comma inside an unquoted value splits it into keys: quote the text, e.g. "
                        "description: \"score [0, 100)\"") if any(not str(k).isidentifier() for k in bad) else ""
                raise SchemaError(f"{source}: column '{col['name']}': unknown key(s) {sorted(map(str, bad))}{hint}")
            kwargs = dict(col)
            todo = [k for k, v in kwargs.items() if isinstance(v, str) and v.strip().upper().startswith("TODO")
                    and k != "description"]
            if todo:
                raise SchemaError(f"{source}: column '{col['name']}': '{todo[0]}' is still TODO; fill it from the"
                                  " data dictionary (public knowledge, never from the data)")
            if "categories" in kwargs:
                if not isinstance(kwargs["categories"], list):
                    raise SchemaError(f"{source}: column '{col['name']}': 'categories' must be a list")
                kwargs["categories"] = tuple(kwargs["categories"])
            if "atoms" in kwargs:
                if not isinstance(kwargs["atoms"], list):
                    raise SchemaError(f"{source}: column '{col['name']}': 'atoms' must be a list of numbers")
                kwargs["atoms"] = tuple(kwargs["atoms"])
            for key in ("nullable", "sensitive", "clip"):
                if key in kwargs and not isinstance(kwargs[key], bool):
                    raise SchemaError(f"{source}: column '{col['name']}': '{key}' must be true or false")
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
            reviewed=_reviewed_flag(raw.get("reviewed", True), source),
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
        if not self.reviewed:
            out["reviewed"] = False
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
            raise DataError(f"{source}: column(s) {_few(missing)} declared in schema '{self.name}' are missing")
        extra = [c for c in frame.columns if c not in self._index and c not in self.drop]
        if extra:
            raise DataError(
                f"{source}: column(s) {_few(extra)} are not in schema '{self.name}' (declare them or list them under 'drop')"
            )
        out = {}
        for col in self.columns:
            out[col.name] = _check_column(frame[col.name], col, source)
        return pd.DataFrame(out, index=frame.index)
