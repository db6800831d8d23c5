"""Contribution bounding and the schema's privacy-unit column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.data.schema import Schema
from dpsynth.data.splits import SplitSpec, split_table
from dpsynth.errors import DataError, SchemaError
from dpsynth.privacy.contribution import bound_contributions, check_row_level, unit_index, unit_rows


def _frame():
    # patient 7 has 5 rows, patient 8 has 2, patient 9 has 1
    return pd.DataFrame({"pid": [7, 8, 7, 9, 7, 7, 8, 7], "x": np.arange(8)})


def _schema(unit="pid", **extra):
    raw = {"name": "t", "privacy_unit": unit, "drop": ["pid"], "columns": [{"name": "x", "kind": "integer", "low": 0,
                                                                         "high": 10}], **extra}
    return Schema.from_dict(raw)


def test_bound_keeps_at_most_k_rows_per_unit_and_their_order():
    out = bound_contributions(_frame(), unit_column="pid", max_rows=2, rng=np.random.default_rng(0))
    assert out.groupby("pid").size().to_dict() == {7: 2, 8: 2, 9: 1}
    assert list(out.index) == sorted(out.index)
    assert set(out.index) <= set(range(8))


def test_bound_is_seeded_and_uniform_within_a_unit():
    frame = _frame()
    a = bound_contributions(frame, unit_column="pid", max_rows=1, rng=np.random.default_rng(3))
    b = bound_contributions(frame, unit_column="pid", max_rows=1, rng=np.random.default_rng(3))
    assert a.equals(b)
    many = pd.DataFrame({"pid": np.repeat(np.arange(4000), 5), "x": np.tile(np.arange(5), 4000)})
    kept = bound_contributions(many, unit_column="pid", max_rows=1, rng=np.random.default_rng(1))
    assert len(kept) == 4000
    shares = kept["x"].value_counts(normalize=True)
    assert set(shares.index) == {0, 1, 2, 3, 4}
    assert np.all(np.abs(shares.to_numpy() - 0.2) < 0.025)


def test_bound_refuses_missing_ids_and_bad_k():
    frame = _frame().astype({"pid": float})
    frame.loc[1, "pid"] = np.nan
    with pytest.raises(DataError, match="'pid'.*missing"):
        bound_contributions(frame, unit_column="pid", max_rows=2, rng=np.random.default_rng(0))
    with pytest.raises(SchemaError, match="max_rows_per_unit"):
        bound_contributions(_frame(), unit_column="pid", max_rows=0, rng=np.random.default_rng(0))


def test_schema_unit_column_keeps_old_free_text_row_level():
    assert _schema().unit_column == "pid"
    for text in ("row", "patient (one row per patient)", "patient (first encounter per patient)", "patient"):
        assert _schema(text).unit_column is None
    assert _schema(max_rows_per_unit=3).max_rows_per_unit == 3
    assert _schema(max_rows_per_unit=3).to_dict()["max_rows_per_unit"] == 3
    with pytest.raises(SchemaError, match="privacy_unit 'patient_nbr'"):
        _schema("patient_nbr")
    with pytest.raises(SchemaError, match="max_rows_per_unit needs privacy_unit"):
        _schema("row", max_rows_per_unit=2)
    with pytest.raises(SchemaError, match="integer >= 1"):
        _schema(max_rows_per_unit=0)


def test_row_level_schema_with_repeated_patient_ids_is_refused():
    schema = _schema("row")
    with pytest.raises(DataError, match="column 'pid' repeats ids.*privacy_unit: pid"):
        check_row_level(_frame(), schema)
    check_row_level(_frame().drop_duplicates("pid"), schema)  # one row per patient: fine
    check_row_level(_frame(), _schema())  # unit declared: fine


def test_units_split_whole_and_rows_grouped():
    frame = pd.DataFrame({"pid": np.repeat(np.arange(50), 3), "x": np.arange(150) % 10})
    codes = unit_index(frame["pid"])
    splits = split_table(frame, SplitSpec(seed=1, holdout=0.2, test=0.2), units=codes)
    parts = [set(splits.train["pid"]), set(splits.holdout["pid"]), set(splits.test["pid"])]
    assert [len(p) for p in parts] == [30, 10, 10]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert len(splits.train_units) == len(splits.train) == 90
    groups = unit_rows(codes)
    assert len(groups) == 50 and all(len(g) == 3 for g in groups)
    assert list(groups[0]) == [0, 1, 2]
