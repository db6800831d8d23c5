"""Contribution bounding: at most k rows per privacy unit (a patient), so DP protects patients.

A table with many rows per patient (encounters, admissions) breaks row-level DP: a patient with
40 encounters moves 40 rows. The schema names the privacy-unit column (``privacy_unit:
patient_nbr``, see :attr:`dpsynth.data.schema.Schema.unit_column`) and a PUBLIC bound k
(``max_rows_per_unit``, or ``--max-rows-per-patient``; default :data:`DEFAULT_MAX_ROWS`).

- :func:`bound_contributions` keeps at most k rows of each unit, chosen uniformly at random by a
  seeded rule that reads no other row (each row gets a uniform key from the run's Generator;
  the k smallest keys of a unit are kept). How many rows were dropped is never released.
- After bounding, one patient moves at most k rows: a histogram's L2 (and L1) sensitivity is k,
  so marginal mechanisms scale their noise and selection scores by k; DP-SGD samples *units* by
  Poisson and clips the gradient of the sum of a unit's row losses (:func:`unit_index`).
- :func:`check_row_level` refuses a row-level schema whose id column repeats (many rows per
  patient), with a one-line error naming the column.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from dpsynth.data.splits import split_by_unit  # noqa: F401  (re-exported: units are split whole)
from dpsynth.errors import DataError, SchemaError

#: the documented rule when the user names a unit column but no bound: one row per patient
DEFAULT_MAX_ROWS = 1

#: id columns whose repeats mean "many rows per person" (matched on the column name)
_PERSON_ID = re.compile(r"(patient|subject|person|member|mrn|^pid$|^pat_?id$)", re.IGNORECASE)


def check_max_rows(max_rows) -> int:
    """A valid public bound k (an integer >= 1) or a one-line SchemaError."""
    if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or int(max_rows) < 1:
        raise SchemaError(f"max_rows_per_unit must be an integer >= 1, got {max_rows!r}")
    return int(max_rows)


def bound_contributions(
    frame: pd.DataFrame, *, unit_column: str, max_rows: int, rng: np.random.Generator
) -> pd.DataFrame:
    """The rows of ``frame`` with at most ``max_rows`` rows per value of ``unit_column``.

    Which rows of a unit are kept is uniform at random (a key per row from ``rng``; the
    ``max_rows`` smallest keys of each unit stay); the selection of one unit never depends on
    another unit's rows. Kept rows keep their order and index. The number of dropped rows is
    not returned: callers must not release it.
    """
    max_rows = check_max_rows(max_rows)
    if unit_column not in frame.columns:
        raise DataError(f"privacy-unit column '{unit_column}' is not in the data")
    units = frame[unit_column]
    if units.isna().any():
        raise DataError(f"privacy-unit column '{unit_column}' has missing ids; every row needs its patient's id")
    keys = rng.random(len(frame))
    codes = pd.factorize(units, sort=False)[0]
    order = np.lexsort((keys, codes))  # by unit, then by random key
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(sorted_codes)]))
    rank = np.empty(len(frame), dtype=np.int64)
    rank[order] = np.arange(len(frame)) - run_start
    return frame[rank < max_rows]


def unit_index(units: pd.Series | np.ndarray) -> np.ndarray:
    """Unit ids -> dense codes 0..U-1 (in order of first appearance); stays in memory, never released."""
    return pd.factorize(pd.Series(units), sort=False)[0].astype(np.int64)


def unit_rows(codes: np.ndarray) -> list[np.ndarray]:
    """Row positions of each unit (list index = unit code), each in row order."""
    codes = np.asarray(codes, dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    cuts = np.flatnonzero(np.diff(codes[order])) + 1
    return np.split(order, cuts)


def check_row_level(frame: pd.DataFrame, schema, *, source: str = "data") -> None:
    """Refuse a table whose patient-id column repeats while the schema's privacy unit is a row.

    Looks only at the schema's dropped id columns (and a declared column) whose name says
    patient / subject / person / member / MRN. Raises a one-line DataError naming the column.
    """
    if schema.unit_column is not None:
        return
    names = [c for c in (*schema.drop, *schema.names) if _PERSON_ID.search(str(c)) and c in frame.columns]
    for name in names:
        ids = frame[name].dropna()
        if ids.duplicated().any():
            raise DataError(
                f"{source}: column '{name}' repeats ids (many rows per patient) but the schema's privacy unit is a row;"
                f" set 'privacy_unit: {name}' (and 'max_rows_per_unit: k') so DP protects patients, not rows"
            )
