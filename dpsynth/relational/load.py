"""Read a folder of related tables into model frames: keys checked, children bounded to the
public k per parent, derived columns computed, count / previous / conditioning columns added.

Every step is a fixed public function applied to each patient's own rows (a patient's rows
never change another patient's derived values), so it needs no privacy budget:

- keys: primary keys unique and present, every foreign key refers to an existing parent
  (else a one-line DataError naming the table and column);
- bounding: a parent keeps at most ``max_per_parent`` children, the first k in ``order_by``
  order (when the table has no order, k rows chosen by the seeded rule of
  :func:`dpsynth.privacy.contribution.bound_contributions` with the parent key as the unit);
  the children of a dropped row are dropped with it; with ``max_per_patient`` a patient then
  keeps only the first that many rows of the table (parents in their order, children in
  theirs). How many rows were dropped is never written anywhere;
- derivations (``derive:``) and the added model columns, see :mod:`dpsynth.data.relational`;
- every frame is validated against its model schema (``Schema.prepare``).

Each returned frame holds the table's key columns (real ids: they stay inside and are never
modelled), ``_unit`` (the patient id of the row) and the model schema's columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dpsynth.data.icd9_procedures import chapters
from dpsynth.data.relational import START, RelationalSchema, TableSpec
from dpsynth.data.schema import Column
from dpsynth.data.splits import SplitSpec
from dpsynth.errors import DataError
from dpsynth.privacy.contribution import bound_contributions

UNIT = "_unit"
ORDER = "_order"
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class RelationalFrames:
    """Prepared model frames of every table (keys + ``_unit`` + model columns)."""

    tables: dict[str, pd.DataFrame]
    schema: RelationalSchema

    @property
    def n_units(self) -> int:
        return len(self.tables[self.schema.root.name])

    def __len__(self) -> int:  # patients
        return self.n_units

    def subset(self, units) -> "RelationalFrames":
        keep = set(units)
        return RelationalFrames({name: f[f[UNIT].isin(keep)].reset_index(drop=True) for name, f in self.tables.items()},
                                self.schema)


@dataclass(frozen=True)
class RelationalSplits:
    train: RelationalFrames
    holdout: RelationalFrames
    test: RelationalFrames
    spec: SplitSpec

    def to_dict(self) -> dict:
        return {**self.spec.to_dict(), "n_train": self.train.n_units, "n_holdout": self.holdout.n_units,
                "n_test": self.test.n_units, "unit": "patient"}


def load_relational(folder: str | Path, schema: RelationalSchema, *, rng: np.random.Generator) -> RelationalFrames:
    """Read, check, bound and derive every table of ``schema`` from ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder not found: {folder} (related tables are read from a folder)")
    raw = {t.name: _read(folder / t.file, _needed_columns(schema, t)) for t in schema.tables}
    kept: dict[str, pd.DataFrame] = {}
    existing: dict[str, set] = {}
    for table in schema.tables:
        kept[table.name], existing[table.name] = _bound(raw[table.name], table, kept, existing, schema, rng)
    anchor = _anchor(schema, kept)
    frames = {}
    for table in schema.tables:
        frames[table.name] = _derive(kept[table.name], table, anchor, folder / table.file)
    for table in schema.tables:  # count columns on parents, previous-encounter and conditioning columns on children
        frame = frames[table.name]
        for child in schema.children(table.name):
            counts = kept[child.name].groupby(child.foreign_key).size()
            frame[schema.count_column(child.name)] = frame[table.primary_key].map(counts).fillna(0).astype(int)
        if table.sequence is not None:
            for col in table.sequence.previous:
                frame[table.prev_name(col)] = frame.groupby(table.foreign_key, sort=False)[col].shift(1).fillna(START)
        if table.parent is not None and table.condition_on:
            parent = schema[table.parent]
            lookup = frames[parent.name].set_index(parent.primary_key)[list(table.condition_on)]
            joined = lookup.reindex(frame[table.foreign_key].to_numpy())
            for col in table.condition_on:
                frame[col] = joined[col].to_numpy()
    out = {}
    for table in schema.tables:
        model = schema.model_schema(table.name)
        frame = frames[table.name]
        prepared = model.prepare(frame[model.names], source=f"{folder / table.file} (table '{table.name}')")
        keys = [k for k in (table.primary_key, table.foreign_key) if k is not None]
        extra = [ORDER] if ORDER in frame else []
        out[table.name] = pd.concat([frame[keys + [UNIT] + extra].reset_index(drop=True),
                                     prepared.reset_index(drop=True)], axis=1)
    return RelationalFrames(out, schema)


def split_relational(frames: RelationalFrames, spec: SplitSpec) -> RelationalSplits:
    """Split by patient (the root's rows) with ``numpy.random.default_rng(spec.seed)``: every
    row of a patient goes with the patient."""
    if not (0 <= spec.holdout < 1 and 0 <= spec.test < 1 and spec.holdout + spec.test < 1):
        raise DataError(f"split fractions holdout={spec.holdout}, test={spec.test} must be in [0, 1) and sum below 1")
    units = frames.tables[frames.schema.root.name][UNIT].to_numpy()
    order = np.random.default_rng(spec.seed).permutation(len(units))
    n_test, n_hold = int(round(spec.test * len(units))), int(round(spec.holdout * len(units)))
    test, hold, train = order[:n_test], order[n_test:n_test + n_hold], order[n_test + n_hold:]
    if len(train) < 2:
        raise DataError(f"only {len(train)} training patient(s) after splitting {len(units)}")
    return RelationalSplits(train=frames.subset(units[train]), holdout=frames.subset(units[hold]),
                            test=frames.subset(units[test]), spec=spec)


# ---- reading ------------------------------------------------------------------------------
def _needed_columns(schema: RelationalSchema, table: TableSpec) -> list[str]:
    derived = {d.name for d in table.derive}
    cols = [c for c in (table.primary_key, table.foreign_key, table.order_by) if c is not None]
    cols += [c.name for c in table.columns if c.name not in derived]
    for d in table.derive:
        cols += d.sources
    if schema.anchor is not None and schema.anchor[0] == table.name:
        cols.append(schema.anchor[1])
    return list(dict.fromkeys(cols))


def _read(path: Path, needed: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"table file not found: {path}")
    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=True)
        elif path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise DataError(f"{path}: unsupported table format '{path.suffix}' (use .csv or .parquet)")
    except DataError:
        raise
    except Exception as exc:  # pandas / pyarrow raise many types for corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot read table ({first})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: column(s) {missing} named in the relational schema are missing")
    return frame[needed].copy()


def _keys(series: pd.Series) -> pd.Series:
    """Ids compared as text ('10006' and 10006 are the same key)."""
    return series.map(lambda v: v if isinstance(v, str) else (str(int(v)) if float(v).is_integer() else str(v))
                      if pd.notna(v) else v).str.strip()


def _sort_key(series: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(series, errors="coerce")
    if numbers.notna().sum() == series.notna().sum():
        return numbers
    return pd.to_datetime(series, errors="coerce")


def _bound(frame: pd.DataFrame, table: TableSpec, kept: dict[str, pd.DataFrame], existing: dict[str, set],
           schema: RelationalSchema, rng: np.random.Generator) -> tuple[pd.DataFrame, set]:
    """Check the keys, drop children of dropped parents, keep the first k children per parent.
    Returns the kept rows and every primary key in the file (to tell dropped parents from
    missing ones)."""
    source = f"table '{table.name}' ({table.file})"
    frame = frame.copy()
    if table.primary_key is not None:
        pk = table.primary_key
        if frame[pk].isna().any():
            raise DataError(f"{source}: primary key '{pk}' has {int(frame[pk].isna().sum())} missing value(s)")
        frame[pk] = _keys(frame[pk])
        dupes = frame[pk].duplicated()
        if dupes.any():
            raise DataError(f"{source}: primary key '{pk}' has {int(dupes.sum())} duplicate value(s)")
    all_keys = set(frame[table.primary_key]) if table.primary_key is not None else set()
    if table.parent is None:
        frame[UNIT] = frame[table.primary_key]
        return frame.reset_index(drop=True), all_keys
    fk, parent = table.foreign_key, schema[table.parent]
    if frame[fk].isna().any():
        raise DataError(f"{source}: foreign key '{fk}' has {int(frame[fk].isna().sum())} missing value(s)")
    frame[fk] = _keys(frame[fk])
    parent_rows = kept[parent.name]
    # rows whose parent exists in the file but was dropped by bounding go with it; rows whose
    # parent never existed are an integrity error in the input
    missing = ~frame[fk].isin(existing[parent.name])
    if missing.any():
        raise DataError(f"{source}: {int(missing.sum())} row(s) whose {fk} is not a {parent.primary_key} of table"
                        f" '{parent.name}' (referential integrity)")
    frame = frame[frame[fk].isin(set(parent_rows[parent.primary_key]))]
    if table.order_by is not None:
        frame = frame.assign(_sortkey=_sort_key(frame[table.order_by]))
        frame = frame.sort_values([fk, "_sortkey"], kind="stable", na_position="last").drop(columns="_sortkey")
        position = frame.groupby(fk, sort=False).cumcount()
        frame = frame[position < table.max_per_parent].copy()
    else:  # no public order: k rows per parent kept uniformly at random by the seeded rule
        frame = bound_contributions(frame, unit_column=fk, max_rows=table.max_per_parent, rng=rng)
        frame = frame.sort_values(fk, kind="stable").copy()
    frame[ORDER] = frame.groupby(fk, sort=False).cumcount() + 1
    frame[UNIT] = frame[fk].map(parent_rows.set_index(parent.primary_key)[UNIT])
    if table.max_per_patient is not None:  # a patient keeps the first rows in (parent order, order within parent)
        parent_pos = frame[fk].map(pd.Series(np.arange(len(parent_rows)), index=parent_rows[parent.primary_key]))
        frame = frame.assign(_pp=parent_pos.to_numpy()).sort_values(["_pp", ORDER], kind="stable")
        frame = frame[frame.groupby(UNIT, sort=False).cumcount() < table.max_per_patient].drop(columns="_pp")
    return frame.reset_index(drop=True), all_keys


def _anchor(schema: RelationalSchema, kept: dict[str, pd.DataFrame]) -> pd.Series | None:
    """Each patient's anchor time (e.g. first admission): the minimum of the anchor column."""
    if schema.anchor is None:
        return None
    table, column = schema.anchor
    frame = kept[table]
    days = _days(frame[column], f"anchor {table}.{column}")
    return days.groupby(frame[UNIT]).min()


def _clip(values: pd.Series, col: Column) -> pd.Series:
    values = pd.to_numeric(values, errors="coerce").astype(float)
    if col.kind == "integer":
        values = np.floor(values)
    return values.clip(lower=col.low, upper=col.high)


def _derive(frame: pd.DataFrame, table: TableSpec, anchor: pd.Series | None, path: Path) -> pd.DataFrame:
    frame = frame.copy()
    columns = {c.name: c for c in table.columns}
    for d in table.derive:
        col, a = columns[d.name], d.args
        where = f"{path} (table '{table.name}'): derived column '{d.name}'"
        if d.op in ("days_since_anchor", "years_before_anchor", "days_between", "days_since_previous"):
            if not col.is_numeric:
                raise DataError(f"{where}: op '{d.op}' gives numbers but the column is {col.kind}")
            if d.op == "days_between":
                days = _days(frame[a["end"]], where) - _days(frame[a["start"]], where)
            elif d.op == "days_since_previous":
                times = _days(frame[a["column"]], where)
                days = (times - times.groupby(frame[table.foreign_key], sort=False).shift(1)).fillna(0.0)
            else:
                days = _days(frame[a["column"]], where) - frame[UNIT].map(anchor)
                if d.op == "years_before_anchor":
                    days = -days / DAYS_PER_YEAR
            frame[d.name] = _clip(days, col)
        elif d.op == "number":
            frame[d.name] = _clip(frame[a["column"]], col)
        elif d.op == "icd9_chapter":
            frame[d.name] = chapters(frame[a["column"]], kind=a["kind"])
        elif d.op == "prefix_map":
            text = frame[a["column"]].astype(object)
            default = a.get("default")
            frame[d.name] = text.map(lambda v: _prefix(v, a["map"], default))
    return frame


def _prefix(value, mapping: dict, default):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return default
    text = str(value)
    for prefix, label in mapping.items():
        if text.startswith(str(prefix)):
            return label
    return default


def _days(series: pd.Series, where: str) -> pd.Series:
    """Dates/times as float days since 1970 (NaN when missing), so that differences of
    centuries (MIMIC's shifted dates of birth) do not overflow nanosecond timestamps."""
    times = pd.to_datetime(series, errors="coerce")
    bad = times.isna() & series.notna()
    if bad.any():
        raise DataError(f"{where}: value {series[bad].iloc[0]!r} is not a date/time")
    seconds = times.to_numpy(dtype="datetime64[s]").astype("int64").astype(float)
    seconds[times.isna().to_numpy()] = np.nan
    return pd.Series(seconds / 86400.0, index=series.index)
