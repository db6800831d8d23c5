"""clip_to_schema: out-of-bound values clipped, unknown categories mapped to 'other', counts returned."""

import numpy as np
import pandas as pd
import pytest

from dpsynth.data.clip import clip_to_schema
from dpsynth.data.schema import Column, Schema
from dpsynth.errors import DataError, SchemaError


def _schema(**clip):
    return Schema(columns=(
        Column("bmi", "continuous", low=10, high=100, nullable=True, clip=clip.get("bmi", False)),
        Column("age", "integer", low=18, high=90),
        Column("ward", "categorical", categories=("icu", "med", "other"), other="other", clip=clip.get("ward", False)),
        Column("flag", "binary", categories=(0, 1), clip=clip.get("flag", False)),
    ))


def _frame():
    return pd.DataFrame({"bmi": [9.8, 25.0, np.nan, 130.0], "age": [17, 40, 95, 60],
                         "ward": ["icu", "er", "med", "??"], "flag": [0, 1, 2, 1]})


def test_clips_only_marked_columns_and_counts():
    clipped, counts = clip_to_schema(_frame(), _schema(bmi=True, ward=True))
    assert counts == {"bmi": 2, "ward": 2}
    assert clipped["bmi"].tolist()[:2] == [10.0, 25.0] and np.isnan(clipped["bmi"][2]) and clipped["bmi"][3] == 100.0
    assert clipped["ward"].tolist() == ["icu", "other", "med", "other"]
    assert clipped["age"].tolist() == [17, 40, 95, 60]  # not marked: left for prepare() to refuse


def test_all_columns_clips_numeric_categories_to_nearest_and_prepare_passes():
    schema = _schema()
    clipped, counts = clip_to_schema(_frame(), schema, all_columns=True)
    assert counts == {"bmi": 2, "age": 2, "ward": 2, "flag": 1}
    assert clipped["age"].tolist() == [18, 40, 90, 60]
    assert clipped["flag"].tolist() == [0, 1, 1, 1]
    prepared = schema.prepare(clipped)
    assert len(prepared) == 4
    with pytest.raises(DataError, match="'bmi'"):
        schema.prepare(_frame())


def test_unknown_text_category_without_other_is_a_one_line_error():
    schema = Schema(columns=(Column("ward", "categorical", categories=("icu", "med"), clip=True),))
    with pytest.raises(DataError, match="column 'ward' has unknown category 'er' and no declared 'other'") as exc:
        clip_to_schema(pd.DataFrame({"ward": ["icu", "er"]}), schema)
    assert "\n" not in str(exc.value)


def test_other_must_be_a_declared_category_and_schema_round_trip(tmp_path):
    with pytest.raises(SchemaError, match="'other' level 'x'"):
        Column("ward", "categorical", categories=("icu",), other="x")
    schema = _schema(bmi=True, ward=True)
    path = tmp_path / "s.yaml"
    schema.save(path)
    again = Schema.load(path)
    assert again["bmi"].clip and again["ward"].other == "other" and not again["age"].clip


def test_unquoted_comma_in_a_description_gets_a_hint(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("columns:\n  - {name: vas, kind: integer, low: 0, high: 100, description: visual analogue scale (0, 0-100)}\n")
    with pytest.raises(SchemaError, match="quote the text") as exc:
        Schema.load(path)
    assert "\n" not in str(exc.value)
