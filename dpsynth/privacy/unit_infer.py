"""``--infer-schema`` at the privacy unit: a table with a patient-id column is inferred PER PATIENT.

DP schema inference (:mod:`dpsynth.privacy.infer_schema`) counts rows: each of its histograms has
sensitivity 1 when one row is one person. A table with many rows per patient (encounters)
would let one patient move many counts, so a patient-id column changes the recipe:

1. the patient-id column is found by a PUBLIC rule on the column NAMES only (patient, subject,
   person, member, MRN, pid, pat_id: :data:`dpsynth.privacy.contribution._PERSON_ID`), never by
   looking at whether values repeat (that would be a data-dependent choice outside the ledger);
2. the table is split BY PATIENT (all of a patient's rows in one split);
3. the inference sees at most ONE row per patient of the training split (a seeded, data-independent
   choice, :func:`dpsynth.privacy.contribution.bound_contributions` with k = 1), so every
   histogram it releases keeps sensitivity 1 per patient and its ledger entries are patient-level;
4. the schema names the column as ``privacy_unit`` (and drops it, with any other id-like
   column) with ``max_rows_per_unit`` = the user's k (``--max-rows-per-patient``) or 1, so the
   training that follows bounds contributions and scales sensitivity by k.
The delta is resolved on the number of training PATIENTS.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from dpsynth.data.splits import SplitSpec, Splits, split_table
from dpsynth.errors import DataError
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.contribution import _PERSON_ID, bound_contributions, check_max_rows, unit_index
from dpsynth.privacy.ledger import Ledger


def patient_id_columns(columns: Sequence[str]) -> list[str]:
    """Columns whose NAME says patient id (a public rule; the values are not read)."""
    return [str(c) for c in columns if _PERSON_ID.search(str(c))]


def infer_split(raw: pd.DataFrame, *, split: SplitSpec, budget: Budget, rng: np.random.Generator, name: str,
                target: str | None = None, sensitive: Sequence[str] = (), max_rows_per_unit: int | None = None
                ) -> tuple:
    """(schema, splits, ledger) of a DP-inferred table; per patient when a column name says patient id."""
    from dpsynth.privacy.infer_schema import infer_schema_dp

    ids = patient_id_columns(raw.columns)
    for role, cols in (("target", [target] if target else []), ("sensitive", list(sensitive))):
        clash = [c for c in cols if c in ids]
        if clash:
            raise DataError(f"--{role}: column '{clash[0]}' is a patient id (the privacy unit), not a feature")
    if not ids:
        if max_rows_per_unit is not None and max_rows_per_unit != 1:
            raise DataError("--max-rows-per-patient needs a patient-id column (no column name says patient, subject,"
                            " person, member, MRN or pid)")
        splits_raw = split_table(raw, split)
        ledger = Ledger(delta=budget.resolve_delta(len(splits_raw.train)), accountant=budget.accountant,
                        target_epsilon=budget.epsilon)
        schema, prepare = infer_schema_dp(splits_raw.train, budget=budget, ledger=ledger, rng=rng, name=name,
                                          target=target, sensitive=tuple(sensitive))
        return schema, Splits(train=prepare(splits_raw.train), holdout=prepare(splits_raw.holdout),
                              test=prepare(splits_raw.test), spec=split), ledger
    unit = ids[0]
    k = check_max_rows(1 if max_rows_per_unit is None else max_rows_per_unit)
    if raw[unit].isna().any() or (raw[unit].astype(str).str.strip() == "").any():
        raise DataError(f"patient-id column '{unit}' has missing ids; every row needs its patient's id")
    units = unit_index(raw[unit].astype(str).str.strip().to_numpy())
    splits_raw = split_table(raw, split, units=units)
    n_patients = len(np.unique(splits_raw.train_units))
    ledger = Ledger(delta=budget.resolve_delta(n_patients), accountant=budget.accountant,
                    target_epsilon=budget.epsilon)
    one_each = bound_contributions(splits_raw.train.assign(__unit__=splits_raw.train_units), unit_column="__unit__",
                                   max_rows=1, rng=np.random.default_rng(rng.integers(2**63)))
    features = one_each.drop(columns=["__unit__", *ids]).reset_index(drop=True)
    schema, prepare = infer_schema_dp(features, budget=budget, ledger=ledger, rng=rng, name=name, target=target,
                                      sensitive=tuple(sensitive))
    schema = dataclasses.replace(
        schema, privacy_unit=unit, max_rows_per_unit=k, drop=tuple(dict.fromkeys((*schema.drop, *ids))), _index={},
        description=schema.description + f"; inferred per patient ('{unit}': one row per patient seen by the"
                                          f" inference), training bounded to {k} row(s) per patient")
    keep = lambda frame: prepare(frame.drop(columns=ids))  # noqa: E731
    splits = Splits(train=keep(splits_raw.train), holdout=keep(splits_raw.holdout), test=keep(splits_raw.test),
                    spec=split, train_units=splits_raw.train_units, holdout_units=splits_raw.holdout_units,
                    test_units=splits_raw.test_units)
    return schema, splits, ledger
