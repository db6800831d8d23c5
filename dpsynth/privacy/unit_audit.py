"""The audit and the shadow attack at the privacy unit: a canary or a member is a PATIENT.

A patient-level run (``privacy_unit: patient_nbr``, at most k rows per patient) claims epsilon
for neighbouring datasets that differ in one patient with up to k rows. The one-run audit
(:mod:`dpsynth.privacy.audit`) then has to insert whole patients:

- the audited training data is bounded exactly as the run's was (:func:`unit_table_data`: at
  most k rows per patient, the seeded rule of :mod:`dpsynth.privacy.contribution`), and the
  generator is fitted with the unit codes and k, so it scales sensitivity / samples patients;
- black-box: each canary is a NEW patient holding k copies of one outlier row (the strongest
  patient a bound of k allows: all of its rows pull the same cell), scored by minus the
  distance from that row to the nearest synthetic row (:func:`with_canaries`);
- white-box: a Dirac gradient canary of norm C is a valid per-patient gradient (a patient's
  clipped summed gradient has norm <= C), so the DP-SGD generators' canaries stay as they are
  and are sampled like one patient.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dpsynth.data.schema import Schema
from dpsynth.data.table import TableData
from dpsynth.errors import DataError
from dpsynth.privacy.contribution import bound_contributions, check_max_rows, unit_index

_UNIT = "__privacy_unit__"


def unit_table_data(frame: pd.DataFrame, units, schema: Schema, *, max_rows: int,
                    rng: np.random.Generator) -> TableData:
    """``frame`` bounded to ``max_rows`` rows per unit, as a TableData with unit codes and k."""
    units = np.asarray(units)
    if len(units) != len(frame):
        raise DataError(f"privacy-unit ids: {len(units)} for {len(frame)} rows")
    k = check_max_rows(max_rows)
    bounded = bound_contributions(frame.reset_index(drop=True).assign(**{_UNIT: units}), unit_column=_UNIT,
                                  max_rows=k, rng=rng)
    return TableData(bounded.drop(columns=_UNIT).reset_index(drop=True), schema,
                     units=unit_index(bounded[_UNIT].to_numpy()), max_rows_per_unit=k)


def with_canaries(data: TableData, rows: pd.DataFrame) -> TableData:
    """The training data plus the canary rows: one row each when one row is one person, else one
    NEW patient per canary holding ``max_rows_per_unit`` copies of its row."""
    if len(rows) == 0:
        return data
    if data.units is None:
        return TableData(pd.concat([data.frame, rows], ignore_index=True), data.schema)
    k = int(data.max_rows_per_unit)
    first = int(data.units.max()) + 1 if len(data.units) else 0
    copies = rows.loc[rows.index.repeat(k)].reset_index(drop=True)
    codes = first + np.repeat(np.arange(len(rows)), k)
    return TableData(pd.concat([data.frame, copies], ignore_index=True), data.schema,
                     units=np.r_[data.units, codes].astype(np.int64), max_rows_per_unit=k)


def split_units(splits) -> dict | None:
    """{train, holdout, test}: the privacy-unit id of each row (None for one row per person)."""
    if getattr(splits, "train_units", None) is None or getattr(splits, "holdout_units", None) is None:
        return None
    return {"train": splits.train_units, "holdout": splits.holdout_units, "test": splits.test_units}


def run_rows_per_unit(run: dict, schema: Schema) -> int:
    """The bound k a saved run trained with (recorded in run.json), else the schema's, else 1."""
    return int((run.get("privacy_unit") or {}).get("max_rows_per_unit") or schema.max_rows_per_unit or 1)


def audit_table_data(splits, which: str, schema: Schema, *, max_rows: int, seed: int) -> TableData:
    """The split the audit retrains on, bounded per patient like the run (row-level: as is)."""
    frame = splits.holdout if which == "holdout" else splits.train
    units = splits.holdout_units if which == "holdout" else splits.train_units
    if units is None:
        return TableData(frame.reset_index(drop=True), schema)
    return unit_table_data(frame, units, schema, max_rows=max_rows, rng=np.random.default_rng([seed, 13]))


def shadow_data(frame: pd.DataFrame, units, schema: Schema, run: dict, rng: np.random.Generator) -> TableData:
    """A shadow model's training set as the run's generator saw its own: per patient, bounded to
    the run's k (row-level when ``units`` is None)."""
    if units is None:
        return TableData(frame.reset_index(drop=True), schema)
    return unit_table_data(frame, units, schema, max_rows=run_rows_per_unit(run, schema), rng=rng)
