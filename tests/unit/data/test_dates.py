"""Dates and datetimes as public-bounded offsets from a public origin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import dpsynth.generators  # noqa: F401
from dpsynth.data.schema import Schema
from dpsynth.data.table import TableData
from dpsynth.data.transform import restore_types
from dpsynth.errors import DataError, SchemaError
from dpsynth.generators.registry import get_generator_class
from dpsynth.privacy.budget import Budget

RAW = {"name": "stays", "columns": [
    {"name": "admit", "kind": "integer", "origin": "2100-01-01", "unit": "day", "low": 0, "high": 3650},
    {"name": "chart", "kind": "continuous", "origin": "2100-01-01", "unit": "hour", "low": 0, "high": 87600,
     "nullable": True}]}


def test_dates_become_offsets_and_come_back():
    schema = Schema.from_dict(RAW)
    raw = pd.DataFrame({"admit": ["2100-01-03", "2105-06-01"], "chart": ["2100-01-01 12:30:00", None]})
    frame = schema.prepare(raw)
    assert list(frame["admit"]) == [2.0, (pd.Timestamp("2105-06-01") - pd.Timestamp("2100-01-01")).days]
    assert frame["chart"].iloc[0] == 12.5 and np.isnan(frame["chart"].iloc[1])
    back = restore_types(frame, schema)
    assert list(back["admit"]) == ["2100-01-03", "2105-06-01"] and back["chart"].iloc[0] == "2100-01-01 12:30:00"
    assert schema.prepare(back).equals(frame)
    assert Schema.from_dict(schema.to_dict()) == schema


def test_out_of_bounds_and_bad_dates_are_one_line_errors():
    schema = Schema.from_dict(RAW)
    with pytest.raises(DataError, match="column 'admit' has 1 value.*outside the declared domain"):
        schema.prepare(pd.DataFrame({"admit": ["2120-01-01"], "chart": [None]}))
    with pytest.raises(DataError, match="column 'admit' holds 'soon', not a date"):
        schema.prepare(pd.DataFrame({"admit": ["soon"], "chart": [None]}))
    with pytest.raises(SchemaError, match="needs 'origin'"):
        Schema.from_dict({"name": "x", "columns": [{"name": "d", "kind": "integer", "low": 0, "high": 9,
                                                    "unit": "day"}]})


def test_a_generator_samples_dates_inside_the_public_bounds():
    schema = Schema.from_dict(RAW)
    rng = np.random.default_rng(0)
    days = rng.integers(0, 3650, 300)
    raw = pd.DataFrame({"admit": [str((pd.Timestamp("2100-01-01") + pd.Timedelta(days=int(d))).date()) for d in days],
                        "chart": [None] * 300})
    gen = get_generator_class("independent")().fit(TableData(schema.prepare(raw), schema), budget=Budget(epsilon=1.0),
                                                   rng=rng)
    out = gen.sample(100, rng=np.random.default_rng(1)).frame
    stamps = pd.to_datetime(out["admit"])
    assert stamps.min() >= pd.Timestamp("2100-01-01") and stamps.max() <= pd.Timestamp("2109-12-29")
