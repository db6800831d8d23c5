"""Bring your own table (issue 17): a realistic hospital CSV with no schema goes
schema draft -> scripted edit -> train -> generate -> evaluate with no hand-fixing of the data,
and the same with --infer-schema --target."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from dpsynth.cli import main

FAST_EVAL = {
    "utility": {"grids": {"logistic_regression": {"C": [1.0]},
                          "gradient_boosting": {"learning_rate": [0.1], "max_leaf_nodes": [15]}}},
    "fidelity": {"max_rows": 800},
    "privacy": {"max_per_side": 300},
}


def realistic_table(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Nullable lab, a few BMI values outside the documented [10, 100], 0/1 flags (target included),
    a text column, and point masses (coma score 0 for most patients, one day in hospital)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 91, n)
    sex = rng.integers(0, 2, n)
    race = rng.choice(["white", "black", "asian", "other"], n, p=[0.6, 0.25, 0.1, 0.05])
    bmi = np.round(rng.normal(27, 5, n), 1)
    bmi[:3] = [9.5, 105.0, 8.0]
    lab = np.round(rng.lognormal(1, 0.5, n), 2)
    lab[rng.random(n) < 0.3] = np.nan
    coma = np.where(rng.random(n) < 0.7, 0, rng.integers(1, 16, n))
    days = np.where(rng.random(n) < 0.4, 1, rng.integers(2, 15, n))
    smoker = (rng.random(n) < 0.3).astype(int)
    logit = -1.5 + 0.04 * (age - 50) + 0.1 * (bmi - 27) + 1.0 * smoker + 0.15 * coma - 0.8 * sex
    died = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"age": age, "sex": sex, "race": race, "bmi": bmi, "lab": lab, "coma": coma,
                         "days": days, "smoker": smoker, "died": died})


# what a user copies from the data dictionary: public facts, not read off the data
DOCUMENTED = {
    "age": {"kind": "integer", "low": 18, "high": 90, "sensitive": True},
    "sex": {"kind": "binary", "categories": [0, 1], "sensitive": True},
    "race": {"kind": "categorical", "categories": ["white", "black", "asian", "other"], "other": "other",
             "sensitive": True},
    "bmi": {"kind": "continuous", "low": 10, "high": 100, "clip": True},
    "lab": {"kind": "continuous", "low": 0, "high": 50, "nullable": True},
    "coma": {"kind": "integer", "low": 0, "high": 15, "atoms": [0]},
    "days": {"kind": "integer", "low": 1, "high": 14, "atoms": [1]},
    "smoker": {"kind": "binary", "categories": [0, 1]},
    "died": {"kind": "binary", "categories": [0, 1]},
}


def _run(args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def _edit_draft(path, *, reviewed=True):
    raw = yaml.safe_load(path.read_text())
    raw["reviewed"] = reviewed
    raw["target"] = "died"
    raw["description"] = "synthetic test cohort: age [18, 90], BMI (kg/m2), coma score 0-15"
    for col in raw["columns"]:
        doc = DOCUMENTED[col["name"]]
        for key in ("low", "high", "categories"):
            col.pop(key, None)
        col.update(doc)
        col["nullable"] = doc.get("nullable", False)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("own") / "cohort.csv"
    realistic_table().to_csv(path, index=False)
    return path


def test_schema_draft_then_train_generate_evaluate(csv_file, tmp_path):
    no_schema = _run(["train", "--data", csv_file, "--generator", "aim", "--out", tmp_path / "x"])
    assert no_schema.exit_code == 2 and "dpsynth schema draft" in no_schema.output

    draft = tmp_path / "schema.yaml"
    res = _run(["schema", "draft", csv_file, "-o", draft])
    assert res.exit_code == 0, res.output
    text = draft.read_text()
    assert "reviewed: false" in text and "target: null" in text and "sensitive: false" in text
    assert text.count("low: TODO") == 8 and text.count("categories: TODO") == 1  # race is the text column
    for value in ("27.", "9.5", "105", "white"):  # nothing from the values is in the draft
        assert value not in text
    res = _run(["train", "--data", csv_file, "--schema", draft, "--out", tmp_path / "x"])
    assert res.exit_code == 2 and "'low' is still TODO" in res.output and len(res.output.strip().splitlines()) == 1

    _edit_draft(draft, reviewed=False)
    res = _run(["train", "--data", csv_file, "--schema", draft, "--out", tmp_path / "x"])
    assert res.exit_code == 2 and "unreviewed draft" in res.output

    _edit_draft(draft)
    run = tmp_path / "run"
    res = _run(["train", "--data", csv_file, "--schema", draft, "--generator", "mst", "--epsilon", "2",
                "--seed", "3", "--split-seed", "1", "--out", run])
    assert res.exit_code == 0, res.output
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["split"]["seed"] == 1 and json.loads(json.dumps(recorded)).get("clip_to_schema") is False
    assert "clipped" not in (run / "run.json").read_text()  # the count of clipped values never enters the run

    synth = tmp_path / "synth.csv"
    res = _run(["generate", "--model", run, "-n", 3000, "-o", synth, "--seed", 1])
    assert res.exit_code == 0, res.output
    syn = pd.read_csv(synth)
    real = realistic_table()
    assert set(syn["died"].unique()) <= {0, 1} and set(syn["sex"].unique()) <= {0, 1}
    # point masses come back as exact values
    assert abs((syn["coma"] == 0).mean() - (real["coma"] == 0).mean()) < 0.05
    assert abs((syn["days"] == 1).mean() - (real["days"] == 1).mean()) < 0.05

    thresholds = tmp_path / "eval.yaml"
    thresholds.write_text(yaml.safe_dump(FAST_EVAL))
    res = _run(["evaluate", "--run", run, "--synthetic", synth, "--thresholds", thresholds,
                "--report", tmp_path / "internal"])
    assert res.exit_code == 0, res.output
    assert "TSTR vs TRTR" in res.output and "auroc" in res.output
    report = json.loads((tmp_path / "internal" / "report.json").read_text())
    assert report["meta"]["clipped_values"]["by_column"] == {"bmi": 3}  # 9.5, 105.0 and 8.0 clipped
    groups = {g["group"] for g in report["subgroups"]["groups"]}
    assert {"sex=0", "race=white"} <= groups
    tstr = report["utility"]["classification"]["tstr"]["selected"]["auroc"]
    assert tstr > 0.6


def test_infer_schema_with_target_then_generate_evaluate(csv_file, tmp_path):
    run = tmp_path / "run"
    res = _run(["train", "--data", csv_file, "--infer-schema", "--target", "died", "--sensitive", "age,sex",
                "--generator", "mst", "--epsilon", "2", "--out", run])
    assert res.exit_code == 0, res.output
    schema = yaml.safe_load((run / "schema.yaml").read_text())
    cols = {c["name"]: c for c in schema["columns"]}
    assert schema["target"] == "died" and cols["died"]["kind"] == "binary" and not cols["died"].get("nullable")
    assert cols["sex"]["kind"] == "binary" and cols["smoker"]["kind"] == "binary"
    assert cols["sex"].get("sensitive") and cols["age"].get("sensitive")
    assert cols["race"]["kind"] == "categorical" and "white" in cols["race"]["categories"]
    assert cols["days"].get("atoms") == [1.0]
    for name in ("age", "bmi"):
        assert cols[name]["low"] >= 0 and cols[name]["high"] <= 256
    synth = tmp_path / "synth.csv"
    assert _run(["generate", "--model", run, "-n", 2000, "-o", synth]).exit_code == 0
    thresholds = tmp_path / "eval.yaml"
    thresholds.write_text(yaml.safe_dump(FAST_EVAL))
    res = _run(["evaluate", "--run", run, "--synthetic", synth, "--thresholds", thresholds,
                "--report", tmp_path / "internal"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "internal" / "report.json").read_text())
    assert report["utility"]["classification"]["tstr"]["selected"]["auroc"] > 0.6
