"""Per patient everywhere: the audit's canaries, the membership attacks and --infer-schema treat
the privacy unit (a member is a patient with all of their rows)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import dpsynth.generators  # noqa: F401  (registers the generators)
from dpsynth.cli import main
from dpsynth.data.schema import Schema
from dpsynth.data.splits import SplitSpec
from dpsynth.data.table import TableData
from dpsynth.generators.registry import get_generator_class
from dpsynth.metrics.privacy_attacks import DCRAttack, ShadowModelAttack
from dpsynth.metrics.unit_attacks import build_unit_candidates, per_unit_max
from dpsynth.privacy.audit import audit_generator
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.unit_audit import unit_table_data, with_canaries
from dpsynth.privacy.unit_infer import infer_split, patient_id_columns

SCHEMA = {"name": "visits", "target": "y", "privacy_unit": "patient_id", "drop": ["patient_id"],
          "columns": [{"name": "a", "kind": "categorical", "categories": [0, 1, 2]},
                      {"name": "x", "kind": "continuous", "low": 0, "high": 10},
                      {"name": "y", "kind": "binary", "categories": [0, 1]}]}


def _visits(n_patients=200, rows=3, seed=0):
    rng = np.random.default_rng(seed)
    n = n_patients * rows
    a = rng.integers(0, 3, n)
    return pd.DataFrame({"patient_id": np.repeat(np.arange(5000, 5000 + n_patients), rows), "a": a,
                         "x": np.clip(rng.normal(3 + a, 1.5, n), 0, 10).round(4), "y": (a == 2).astype(int)})


def test_per_unit_max_and_canary_patients_hold_k_rows():
    assert per_unit_max(np.array([1.0, 5.0, -2.0, 0.5]), np.array([0, 0, 1, 1]), 2).tolist() == [5.0, 0.5]
    schema = Schema.from_dict(SCHEMA)
    raw = _visits(n_patients=10)
    data = unit_table_data(schema.prepare(raw), raw["patient_id"].to_numpy(), schema, max_rows=2,
                           rng=np.random.default_rng(0))
    assert len(data.frame) == 20 and np.bincount(data.units).tolist() == [2] * 10 and data.max_rows_per_unit == 2
    rows = schema.prepare(pd.DataFrame({"a": [0, 1, 2], "x": [0.0, 10.0, 0.0], "y": [0, 1, 1]}))
    out = with_canaries(data, rows)
    assert len(out.frame) == 26 and out.max_rows_per_unit == 2
    assert np.bincount(out.units).tolist() == [2] * 13  # three NEW patients, k = 2 copies each
    pd.testing.assert_frame_equal(out.frame.iloc[20:22].reset_index(drop=True), rows.iloc[[0, 0]].reset_index(drop=True))
    row_level = with_canaries(TableData(data.frame, schema), rows)
    assert len(row_level.frame) == 23 and row_level.units is None


def test_membership_attack_counts_patients_and_sees_a_leaky_release():
    schema = Schema.from_dict(SCHEMA)
    raw_in, raw_out, raw_ref = _visits(seed=1), _visits(seed=2), _visits(seed=3)
    train, holdout, ref = (schema.prepare(r) for r in (raw_in, raw_out, raw_ref))
    units = {k: r["patient_id"].to_numpy() for k, r in (("train", raw_in), ("holdout", raw_out), ("test", raw_ref))}
    cand = build_unit_candidates(train, holdout, schema, train_units=units["train"], holdout_units=units["holdout"],
                                 rng=np.random.default_rng(0), reference=ref, reference_units=units["test"],
                                 max_per_side=50)
    assert cand.labels.tolist() == [1] * 50 + [0] * 50  # 50 member and 50 non-member PATIENTS
    assert len(cand.features) == 300 and np.bincount(cand.groups).tolist() == [3] * 100  # all of their rows
    # a release that copies ONE row of each training patient: every member patient is found
    leaky = train.groupby(units["train"]).head(1)
    rep = DCRAttack(top_k=10).run(cand, leaky, rng=np.random.default_rng(1))
    assert rep["auroc"] >= 0.98
    # the same release attacked row by row: only a third of the member rows were copied
    from dpsynth.metrics.privacy_attacks import build_candidates

    rows = build_candidates(train, holdout, schema, rng=np.random.default_rng(0), reference=ref, max_per_side=150)
    assert DCRAttack(top_k=10).run(rows, leaky, rng=np.random.default_rng(1))["auroc"] < rep["auroc"] - 0.2
    # shadow models trained on halves of the reference PATIENTS by a generator that copies its input
    seen = []

    def copy_generator(frame, rng, units=None):
        seen.append(units)
        return frame.groupby(units).head(1).reset_index(drop=True)

    shadow = ShadowModelAttack(fit_sample=copy_generator, reference_frame=ref, n_shadow=2, top_k=10)
    assert shadow.run(cand, leaky, rng=np.random.default_rng(2))["auroc"] > 0.9
    assert all(len(np.unique(u)) == 100 and len(u) == 300 for u in seen)  # 100 of 200 patients, all 3 rows each
    fresh = schema.prepare(_visits(seed=9).drop(columns="patient_id"))  # a release that never saw them
    assert 0.35 < DCRAttack(top_k=10).run(cand, fresh, rng=np.random.default_rng(1))["auroc"] < 0.65


def test_black_box_audit_inserts_whole_patients_under_a_patient_level_run():
    schema = Schema.from_dict(SCHEMA)
    raw = _visits(n_patients=150)
    data = unit_table_data(schema.prepare(raw), raw["patient_id"].to_numpy(), schema, max_rows=2,
                           rng=np.random.default_rng(0))
    gen = get_generator_class("independent")()
    out = audit_generator(gen, data, budget=Budget(epsilon=1.0), rng=np.random.default_rng(3), canaries=40,
                          method="black-box")
    assert out["unit"].startswith("patient") and out["canaries"] == 40 and out["n_train"] == 300
    assert gen.ledger_.epsilon() == pytest.approx(1.0, abs=1e-2)
    assert out["epsilon_lower_bound"] <= 1.0  # an honest run is not caught


def test_infer_schema_per_patient_bounds_the_inference_and_names_the_unit():
    raw = _visits(n_patients=300, rows=4).astype(str)
    assert patient_id_columns(["PatientID", "a", "subject_id", "x"]) == ["PatientID", "subject_id"]
    schema, splits, ledger = infer_split(raw, split=SplitSpec(seed=0), budget=Budget(epsilon=4.0),
                                         rng=np.random.default_rng(0), name="visits", target="y")
    assert schema.unit_column == "patient_id" and schema.max_rows_per_unit == 1 and "patient_id" in schema.drop
    assert "patient_id" not in splits.train.columns and len(splits.train) == len(splits.train_units)
    n_train_patients = len(np.unique(splits.train_units))
    assert n_train_patients == 180 and len(splits.train) == 720  # split by patient: all 4 rows of each
    assert set(np.unique(splits.train_units)).isdisjoint(np.unique(splits.holdout_units))
    assert ledger.delta <= 1.0 / (10 * n_train_patients)  # delta resolved on PATIENTS, not rows
    with pytest.raises(Exception, match="patient id"):
        infer_split(raw, split=SplitSpec(seed=0), budget=Budget(epsilon=4.0), rng=np.random.default_rng(0),
                    name="visits", target="patient_id")


def test_cli_infer_schema_trains_per_patient_and_evaluates_per_patient(tmp_path):
    path = tmp_path / "visits.csv"
    _visits(n_patients=150, rows=3).to_csv(path, index=False)
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--data", str(path), "--infer-schema", "--target", "y", "--generator",
                                    "independent", "--epsilon", "4", "--max-rows-per-patient", "2", "--out", str(run)])
    assert res.exit_code == 0, res.output
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["privacy_unit"] == {"column": "patient_id", "max_rows_per_unit": 2}
    from dpsynth.api import evaluate_run

    result = evaluate_run(run=run, report_dir=tmp_path / "eval", seed=0)
    cands = result.results["privacy"]["candidates"]
    assert cands["unit"] == "patient (all rows)" and cands["members"] == cands["non_members"] <= 30


def test_cli_audit_of_a_patient_level_run_inserts_patients(tmp_path):
    import yaml

    path, schema_path, run = tmp_path / "visits.csv", tmp_path / "schema.yaml", tmp_path / "run"
    _visits(n_patients=150, rows=3).to_csv(path, index=False)
    schema_path.write_text(yaml.safe_dump(SCHEMA))
    res = CliRunner().invoke(main, ["train", "--data", str(path), "--schema", str(schema_path), "--generator",
                                    "independent", "--epsilon", "2", "--max-rows-per-patient", "2", "--out", str(run)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["audit", "--run", str(run), "--canaries", "20", "--method", "black-box", "--out",
                                    str(tmp_path / "audit.json")])
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "audit.json").read_text())
    assert out["unit"] == "patient (canary = a new patient with 2 rows)" and out["canaries"] == 20
    assert out["n_train"] == 2 * 30  # the holdout's 30 patients (of 150), bounded to k = 2 of their 3 rows
    assert out["epsilon_lower_bound"] <= 2.0
