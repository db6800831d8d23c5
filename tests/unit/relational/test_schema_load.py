"""Relational schema parsing, ICD-9 chapters, and the loader (keys, bounding, derivations)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tiny_relational import make_tiny, tiny_schema
from dpsynth.data.icd9_procedures import diagnosis_chapter, procedure_chapter
from dpsynth.data.relational import START, RelationalSchema
from dpsynth.data.splits import SplitSpec
from dpsynth.errors import DataError, SchemaError
from dpsynth.relational.load import ORDER, UNIT, load_relational, split_relational


def test_icd9_chapters_from_the_public_hierarchy():  # MIMIC writes codes without the dot
    assert diagnosis_chapter("0389") == "001-139"  # 038.9 septicemia, leading zero kept
    assert diagnosis_chapter("4019") == "390-459"
    assert diagnosis_chapter("25000") == "240-279"
    assert diagnosis_chapter("99591") == "800-999"
    assert diagnosis_chapter("V4581") == "V01-V91"
    assert diagnosis_chapter("E8781") == "E000-E999"
    assert diagnosis_chapter("XYZ") is None and diagnosis_chapter(None) is None
    assert procedure_chapter("3605") == "35-39 cardiovascular"
    assert procedure_chapter("0040") == "00 procedures NEC"
    assert procedure_chapter("9604") == "87-99 miscellaneous diagnostic therapeutic"
    assert procedure_chapter("4513") == "42-54 digestive"


def test_rows_per_patient_is_the_product_of_bounds_and_model_columns_are_added():
    schema = RelationalSchema.from_dict(tiny_schema())
    assert [schema.rows_per_unit(t) for t in schema.names] == [1, 3, 12]
    patients, visits = schema.model_schema("patients"), schema.model_schema("visits")
    assert patients.names == ["sex", "age", "n_visits"]
    assert patients["n_visits"].categories == (0, 1, 2, 3)
    assert visits.names == ["vtype", "gap_days", "los", "n_codes", "prev_vtype", "sex"]
    assert visits["prev_vtype"].categories == ("A", "B", "C", START)
    assert visits.unit_column == "pid" and visits.max_rows_per_unit == 3  # the patient is the privacy unit
    assert schema.budget_shares() == pytest.approx({"patients": 1 / 3, "visits": 1 / 3, "codes": 1 / 3})
    again = RelationalSchema.from_dict(schema.to_dict())
    assert again.to_dict() == schema.to_dict()


@pytest.mark.parametrize("overrides, message", [
    ({"visits": {"max_per_parent": 0}}, "'max_per_parent' must be a public integer >= 1"),
    ({"visits": {"parent": "nowhere"}}, "parent 'nowhere' is not a table declared before it"),
    ({"visits": {"foreign_key": None}}, "needs 'foreign_key'"),
    ({"codes": {"condition_on": ["sex"]}}, "'sex' is not one of its declared columns"),
    ({"visits": {"sequence": {"previous": ["gap_days"]}}}, "must be a declared categorical"),
    ({"patients": {"budget_share": 0.5}}, "give 'budget_share' for every table or for none"),
    ({"visits": {"colour": 1}}, "unknown key(s) ['colour']"),
    ({"visits": {"derive": [{"name": "los", "op": "magic", "column": "x"}]}}, "op 'magic' is not one of"),
])
def test_bad_relational_schema_is_a_one_line_error(overrides, message):
    with pytest.raises(SchemaError) as info:
        RelationalSchema.from_dict(tiny_schema(**overrides), source="s.yaml")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_shares_must_sum_to_one():
    raw = tiny_schema(patients={"budget_share": 0.2}, visits={"budget_share": 0.3}, codes={"budget_share": 0.3})
    with pytest.raises(SchemaError, match="sum to 0.8, not 1"):
        RelationalSchema.from_dict(raw)


def test_loader_bounds_children_keeps_the_first_in_order_and_derives(tiny):
    folder, path = tiny
    schema = RelationalSchema.load(path)
    frames = load_relational(folder, schema, rng=np.random.default_rng(0))
    raw_visits = pd.read_csv(folder / "visits.csv", parse_dates=["start"])
    visits, patients, codes = frames.tables["visits"], frames.tables["patients"], frames.tables["codes"]
    assert len(patients) == 40
    per_patient = visits.groupby("pid").size()
    assert per_patient.max() == 3 and (raw_visits.groupby("pid").size() > 3).any()  # bounded to k = 3
    # the kept visits are each patient's first three in time, in order, and offsets start at 0
    for pid, group in visits.groupby("pid"):
        real = raw_visits[raw_visits.pid == int(pid)].sort_values("start").head(3)
        assert list(group["vid"]) == [str(v) for v in real["vid"]]
        assert group["gap_days"].iloc[0] == 0 and (group["gap_days"].iloc[1:] > 0).all()
        assert list(group["prev_vtype"]) == [START] + list(group["vtype"].iloc[:-1])
    # the count column on the parent is the bounded number of children
    counts = visits.groupby("pid").size()
    assert (patients.set_index("pid")["n_visits"].astype(int) == counts.reindex(patients["pid"]).fillna(0)
            .astype(int).to_numpy()).all()
    assert codes.groupby("vid").size().max() <= 4
    assert set(codes["vid"]) <= set(visits["vid"])  # codes of dropped visits went with them
    assert (codes[UNIT].isin(patients["pid"])).all()
    assert set(codes["chapter"].dropna()) <= {diagnosis_chapter(c) for c in ["0389", "4019", "V4581", "25000",
                                                                             "E8781", "99591", "486"]}
    assert patients["age"].between(19, 90).all()


def test_split_keeps_each_patient_whole(tiny):
    folder, path = tiny
    frames = load_relational(folder, RelationalSchema.load(path), rng=np.random.default_rng(0))
    splits = split_relational(frames, SplitSpec(seed=3))
    assert (splits.train.n_units, splits.holdout.n_units, splits.test.n_units) == (24, 8, 8)
    train_ids = set(splits.train.tables["patients"]["pid"])
    for part in (splits.holdout, splits.test):
        assert not train_ids & set(part.tables["visits"][UNIT]) and not train_ids & set(part.tables["codes"][UNIT])
    assert set(splits.train.tables["codes"][UNIT]) <= train_ids


def test_orphan_foreign_key_is_a_one_line_error(tiny):
    folder, path = tiny
    visits = pd.read_csv(folder / "visits.csv")
    visits.loc[0, "pid"] = 99999
    visits.to_csv(folder / "visits.csv", index=False)
    with pytest.raises(DataError) as info:
        load_relational(folder, RelationalSchema.load(path), rng=np.random.default_rng(0))
    assert "table 'visits'" in str(info.value) and "pid" in str(info.value) and "referential integrity" in str(info.value)


def test_duplicate_primary_key_and_missing_column_are_one_line_errors(tiny):
    folder, path = tiny
    patients = pd.read_csv(folder / "patients.csv")
    pd.concat([patients, patients.head(1)]).to_csv(folder / "patients.csv", index=False)
    with pytest.raises(DataError, match="primary key 'pid' has 1 duplicate"):
        load_relational(folder, RelationalSchema.load(path), rng=np.random.default_rng(0))
    patients.drop(columns=["sex"]).to_csv(folder / "patients.csv", index=False)
    with pytest.raises(DataError, match=r"patients.csv: column\(s\) \['sex'\] named in the relational schema"):
        load_relational(folder, RelationalSchema.load(path), rng=np.random.default_rng(0))


def test_values_outside_a_declared_category_name_the_table(tmp_path):
    path = make_tiny(tmp_path, schema=tiny_schema(visits={"columns": [
        {"name": "vtype", "kind": "categorical", "categories": ["A", "B"]},
        {"name": "gap_days", "kind": "continuous", "low": 0, "high": 400},
        {"name": "los", "kind": "continuous", "low": 0, "high": 30}]}))
    with pytest.raises(DataError, match="table 'visits'.*column 'vtype' has unknown category 'C'"):
        load_relational(tmp_path, RelationalSchema.load(path), rng=np.random.default_rng(0))


def test_max_per_patient_caps_a_patients_rows_and_their_sensitivity(tmp_path):
    raw = tiny_schema(codes={"max_per_patient": 5})
    schema = RelationalSchema.from_dict(raw)
    assert [schema.rows_per_unit(t) for t in schema.names] == [1, 3, 5]  # min(3 x 4, 5)
    assert schema.model_schema("codes").max_rows_per_unit == 5
    assert RelationalSchema.from_dict(schema.to_dict()).rows_per_unit("codes") == 5  # round trip
    path = make_tiny(tmp_path, schema=raw)
    capped = load_relational(tmp_path, RelationalSchema.load(path), rng=np.random.default_rng(0))
    full = load_relational(tmp_path, RelationalSchema.from_dict(tiny_schema()), rng=np.random.default_rng(0))
    codes, visits = capped.tables["codes"], capped.tables["visits"]
    assert codes.groupby(UNIT).size().max() == 5 and full.tables["codes"].groupby(UNIT).size().max() > 5
    # the kept rows are each patient's first: earlier visits before later ones, seq order within a visit
    for pid, group in full.tables["codes"].groupby(UNIT, sort=False):
        order = visits[visits[UNIT] == pid]["vid"].tolist()
        first = group.assign(v=group["vid"].map(order.index)).sort_values(["v", ORDER]).head(5)
        kept = codes[codes[UNIT] == pid]
        assert sorted(zip(kept["vid"], kept[ORDER])) == sorted(zip(first["vid"], first[ORDER]))
    n_codes = visits.set_index("vid")["n_codes"].astype(int)  # counts on the parent follow the capped rows
    assert (n_codes == codes.groupby("vid").size().reindex(n_codes.index).fillna(0).astype(int)).all()
    with pytest.raises(SchemaError, match="max_per_patient"):
        RelationalSchema.from_dict(tiny_schema(codes={"max_per_patient": 0}))
