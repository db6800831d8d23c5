"""evaluation/scale_data.py --split-seed: only training patients are replicated; val/test are real, disjoint."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.conftest import shared_data

REPO = Path(__file__).resolve().parents[1]


def test_split_replicate_holds_no_evaluation_patient(tmp_path, monkeypatch):
    duckdb = pytest.importorskip("duckdb")
    pd = pytest.importorskip("pandas")
    env = os.environ.get("DPSYNTH_SHARED_DATA")
    zip_path = Path(env) / "ehr" / "diabetes130.zip" if env else shared_data("ehr", "diabetes130.zip")
    if not zip_path.exists():
        pytest.skip(f"real data {zip_path} is not available")
    sys.path.insert(0, str(REPO / "evaluation"))
    import scale_data

    monkeypatch.setattr(scale_data, "DIABETES", zip_path)
    out = scale_data.write_replicated(60_000, tmp_path, threads=1, split_seed=0)
    paths = scale_data.split_paths(tmp_path, 0)
    train_ids = set(pd.read_parquet(paths["train_ids"])["patient_nbr"])
    val, test = (pd.read_parquet(paths[p]) for p in ("val", "test"))
    assert len(train_ids) + len(val) + len(test) == 71_518
    assert abs(len(val) - 0.15 * 71_518) <= 1 and len(val) == len(test)
    assert not (set(val["patient_id"]) | set(test["patient_id"])) & train_ids
    assert not set(val["patient_id"]) & set(test["patient_id"])
    rep = duckdb.connect().execute(f"SELECT count(*), count(DISTINCT patient_id), max(patient_id) "
                                   f"FROM read_parquet('{out}')").fetchone()
    assert rep == (60_000, 60_000, 60_000)  # fresh ids; 50,062 training patients, then a partial second copy
    # rows after the first copy repeat it: the file holds len(train_ids) distinct base rows at most
    cols = [c for c in val.columns if c != "patient_id"]
    n_train = len(train_ids)
    first, second = (duckdb.connect().execute(f"SELECT * EXCLUDE (patient_id) FROM read_parquet('{out}') WHERE {w}"
                                              " ORDER BY patient_id").df() for w in
                     (f"patient_id <= {60_000 - n_train}", f"patient_id > {n_train}"))
    pd.testing.assert_frame_equal(first[cols], second[cols])
