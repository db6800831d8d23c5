"""Schema validation: unknown keys, public domains, one-line errors naming the column."""

import numpy as np
import pandas as pd
import pytest

from dpsynth.data.schema import Schema
from dpsynth.data.splits import SplitSpec, split_table
from dpsynth.errors import DataError, SchemaError

SMALL = {
    "name": "t",
    "target": "y",
    "columns": [
        {"name": "age", "kind": "integer", "low": 0, "high": 120, "sensitive": True},
        {"name": "sex", "kind": "categorical", "categories": ["F", "M"], "sensitive": True},
        {"name": "lab", "kind": "continuous", "low": 0.0, "high": 10.0, "nullable": True},
        {"name": "y", "kind": "binary", "categories": [0, 1]},
    ],
}


def frame(**overrides):
    base = {"age": [30, 40, 50], "sex": ["F", "M", "F"], "lab": [1.0, np.nan, 3.5], "y": [0, 1, 1]}
    base.update(overrides)
    return pd.DataFrame(base)


def test_valid_frame_is_prepared_in_schema_order():
    schema = Schema.from_dict(SMALL)
    out = schema.prepare(frame()[["y", "lab", "sex", "age"]])
    assert list(out.columns) == ["age", "sex", "lab", "y"]
    assert schema.sensitive == ["age", "sex"]


@pytest.mark.parametrize("raw, message", [
    ({**SMALL, "colour": 1}, "unknown key"),
    ({**SMALL, "columns": [{"name": "a", "kind": "integer", "low": 0, "high": 1, "typo": 1}]}, "column 'a': unknown key"),
    ({**SMALL, "columns": [{"name": "a", "kind": "integer"}]}, "column 'a'.*low"),
    ({**SMALL, "columns": [{"name": "a", "kind": "weird"}]}, "column 'a': kind 'weird'"),
    ({**SMALL, "columns": [{"name": "a", "kind": "categorical"}]}, "column 'a'.*categories"),
    ({**SMALL, "target": "nope"}, "target 'nope'"),
    ({**SMALL, "columns": [{"name": "a", "kind": "continuous", "low": 5, "high": 1}]}, "low"),
])
def test_bad_schemas_are_refused(raw, message):
    with pytest.raises(SchemaError, match=message):
        Schema.from_dict(raw)


@pytest.mark.parametrize("overrides, message", [
    ({"age": [30, 140, 50]}, "column 'age'.*outside the declared domain"),
    ({"sex": ["F", "X", "F"]}, "column 'sex' has unknown category 'X'"),
    ({"age": [30, None, 50]}, "column 'age' has 1 missing value"),
    ({"age": ["thirty", "40", "50"]}, "column 'age' is integer but holds non-numeric value 'thirty'"),
    ({"age": [30.5, 40, 50]}, "column 'age' is integer but holds fractional values"),
])
def test_bad_values_name_the_column(overrides, message):
    with pytest.raises(DataError, match=message):
        Schema.from_dict(SMALL).prepare(frame(**overrides))


def test_missing_and_extra_columns():
    schema = Schema.from_dict(SMALL)
    with pytest.raises(DataError, match=r"\['lab'\] declared.*missing"):
        schema.prepare(frame().drop(columns=["lab"]))
    with pytest.raises(DataError, match=r"\['extra'\] are not in schema"):
        schema.prepare(frame().assign(extra=1))


def test_yaml_round_trip(tmp_path):
    schema = Schema.from_dict(SMALL)
    schema.save(tmp_path / "s.yaml")
    assert Schema.load(tmp_path / "s.yaml") == schema
    (tmp_path / "bad.yaml").write_text("columns: [unclosed")
    with pytest.raises(SchemaError, match="bad.yaml"):
        Schema.load(tmp_path / "bad.yaml")


def test_actg175_schema_is_public_not_read_off_the_data(actg):
    schema, raw, frame = actg
    assert len(frame) == 2139 and len(schema.columns) == 26
    assert set(schema.drop) == {"Unnamed: 0", "pidnum"}
    assert {"race", "gender", "age"} <= set(schema.sensitive)
    # declared bounds are clinical/documentary, so none coincides with the data's own min and max
    for col in schema.numeric:
        values = raw[col.name].dropna()
        assert not (col.low == values.min() and col.high == values.max()), col.name
        assert col.low <= values.min() and values.max() <= col.high


def test_splits_are_deterministic_and_disjoint(actg):
    _, _, frame = actg
    a = split_table(frame, SplitSpec(seed=3))
    b = split_table(frame, SplitSpec(seed=3))
    c = split_table(frame, SplitSpec(seed=4))
    pd.testing.assert_frame_equal(a.train, b.train)
    assert not a.train.equals(c.train)
    assert len(a.train) + len(a.holdout) + len(a.test) == len(frame)
    keys = lambda f: set(map(tuple, f.astype(str).to_numpy()))  # noqa: E731
    assert not keys(a.train) & keys(a.holdout) and not keys(a.train) & keys(a.test)
