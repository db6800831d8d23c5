"""Patient-level DP: k=1 is today's run, sensitivity scales with k, DP-SGD samples and clips patients."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner
from opacus import GradSampleModule
from torch import nn

import dpsynth.generators  # noqa: F401  (registers the generators)
from dpsynth.api import training_data
from dpsynth.cli import main
from dpsynth.data.schema import Schema
from dpsynth.data.splits import SplitSpec, split_table
from dpsynth.data.table import TableData
from dpsynth.generators.tabular.marginal.measure import Measurer
from dpsynth.generators.registry import get_generator_class
from dpsynth.privacy.accountants import opacus_rdp_epsilon
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.unit_sgd import sum_grad_samples_by_unit, unit_dataset, unit_rows

SCHEMA = {"name": "visits", "target": "y", "privacy_unit": "patient_id", "drop": ["patient_id"],
          "columns": [{"name": "a", "kind": "categorical", "categories": [0, 1, 2]},
                      {"name": "x", "kind": "continuous", "low": 0, "high": 10},
                      {"name": "y", "kind": "binary", "categories": [0, 1]}]}


def _table(n_patients=120, rows=3, seed=0):
    rng = np.random.default_rng(seed)
    n = n_patients * rows
    a = rng.integers(0, 3, n)
    return pd.DataFrame({"patient_id": np.repeat(np.arange(1000, 1000 + n_patients), rows), "a": a,
                         "x": np.clip(rng.normal(3 + a, 1, n), 0, 10).round(3), "y": (a == 2).astype(int)})


def _prepared(raw, schema):
    return schema.prepare(raw), np.asarray(pd.factorize(raw["patient_id"])[0])


@pytest.mark.parametrize("generator,params", [("independent", {}), ("aim", {"max_iterations": 3, "final_pgm_iters": 20,
                                                                             "pgm_iters": 10})])
def test_marginal_k1_ledger_and_output_equal_the_row_level_run(generator, params):
    schema = Schema.from_dict(SCHEMA)
    frame, _ = _prepared(_table(), schema)
    cls = get_generator_class(generator)
    row = cls(**params).fit(TableData(frame, schema), budget=Budget(epsilon=1.0), rng=np.random.default_rng(5))
    unit = cls(**params).fit(TableData(frame, schema, units=np.arange(len(frame)), max_rows_per_unit=1),
                             budget=Budget(epsilon=1.0), rng=np.random.default_rng(5))
    assert unit.ledger_.to_dict() == row.ledger_.to_dict()
    assert unit.ledger_.epsilon() == pytest.approx(1.0, abs=1e-3)
    pd.testing.assert_frame_equal(unit.sample(50, rng=np.random.default_rng(1)).frame,
                                  row.sample(50, rng=np.random.default_rng(1)).frame)


def test_marginal_noise_and_selection_sensitivity_scale_with_k():
    codes = np.zeros((10, 1), dtype=np.int64)
    out = {}
    for k in (1, 3):
        ledger = Ledger(delta=1e-6, target_epsilon=50.0)
        m = Measurer(codes, [4000], ledger=ledger, rng=np.random.default_rng(0), contribution=k)
        noisy = m.measure([(0,)], rho=0.5, purpose="one-way")[0]
        m.select(np.arange(3.0), epsilon=1.0, sensitivity=2.0, purpose="pick")
        out[k] = (float(np.std(noisy.values[1:])), ledger.entries)
    # same rho charged (same noise multiplier), noise std and sensitivities x k
    assert out[3][1][0].noise_multiplier == out[1][1][0].noise_multiplier == pytest.approx(1.0)
    assert out[3][1][0].params["l2_sensitivity"] == 3 * out[1][1][0].params["l2_sensitivity"]
    assert out[3][0] == pytest.approx(3.0, rel=0.05) and out[1][0] == pytest.approx(1.0, rel=0.05)
    assert out[3][1][1].params["sensitivity"] == 6.0 and out[1][1][1].params["sensitivity"] == 2.0
    assert out[3][1][1].rho == out[1][1][1].rho


def test_per_unit_grad_samples_are_the_gradient_of_each_patients_summed_loss():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    x = torch.randn(6, 3)
    y = torch.randn(6, 1)
    units = np.array([0, 1, 0, 2, 0, 1])  # patient 0 has 3 rows
    ds = unit_dataset([x, y], units, max_rows=3)
    assert ds.tensors[0].shape == (3, 3, 3) and ds.tensors[2].sum().item() == 6
    (xr, yr), row_unit = unit_rows(ds.tensors)
    gsm = GradSampleModule(net)
    loss = ((gsm(xr) - yr) ** 2).sum(dim=1).mean()  # mean over rows (opacus loss_reduction="mean")
    loss.backward()
    sum_grad_samples_by_unit(gsm, row_unit, n_units=3)
    for u in range(3):
        rows = np.flatnonzero(units == u)
        ref = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
        ref.load_state_dict(net.state_dict())
        ((ref(x[rows]) - y[rows]) ** 2).sum().backward()
        for p, q in zip(gsm._module.parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad_sample[u], q.grad, atol=1e-5, rtol=1e-4)
    with pytest.raises(Exception, match="more than max_rows_per_unit=2"):
        unit_dataset([x], units, max_rows=2)


@pytest.mark.parametrize("generator", ["dp-gan", "dp-diffusion"])
def test_dp_sgd_samples_patients_and_k1_equals_row_level(generator):
    schema = Schema.from_dict(SCHEMA)
    params = {"epochs": 1, "batch_size": 40}
    params.update({"generator_hidden": (16,), "discriminator_hidden": (16,)} if generator == "dp-gan" else {})
    cls = get_generator_class(generator)
    # every patient has one row: the per-patient path (k=2) must plan and charge exactly the row-level run
    single, _ = _prepared(_table(n_patients=200, rows=1), schema)
    row = cls(**params).fit(TableData(single, schema), budget=Budget(epsilon=2.0), rng=np.random.default_rng(0))
    unit = cls(**params).fit(TableData(single, schema, units=np.arange(200), max_rows_per_unit=2),
                             budget=Budget(epsilon=2.0), rng=np.random.default_rng(0))
    sgd = lambda g: next(e for e in g.ledger_.entries if e.mechanism == "dp-sgd")  # noqa: E731
    assert (sgd(unit).noise_multiplier, sgd(unit).sample_rate, sgd(unit).steps) == \
           (sgd(row).noise_multiplier, sgd(row).sample_rate, sgd(row).steps)
    assert unit.ledger_.epsilon() == pytest.approx(row.ledger_.epsilon(), rel=1e-12)
    # 3 rows per patient: Poisson over the 120 patients (q = 1/ceil(120/40)), not over 360 rows
    frame, codes = _prepared(_table(n_patients=120, rows=3), schema)
    multi = cls(**params).fit(TableData(frame, schema, units=codes, max_rows_per_unit=3), budget=Budget(epsilon=2.0),
                              rng=np.random.default_rng(0))
    entry = sgd(multi)
    assert entry.sample_rate == pytest.approx(1 / 3)
    assert entry.steps == 3
    history = multi.ledger_.gaussian_history()
    assert multi.ledger_.epsilon() <= 2.0 + 1e-9
    if generator == "dp-diffusion":  # the whole ledger is DP-SGD: an independent opacus accountant agrees
        assert opacus_rdp_epsilon(history, delta=multi.ledger_.delta) == pytest.approx(multi.ledger_.epsilon(),
                                                                                       rel=1e-6)
    assert len(multi.sample(20, rng=np.random.default_rng(1)).frame) == 20


def test_training_data_bounds_the_train_split_by_patient():
    schema = Schema.from_dict({**SCHEMA, "max_rows_per_unit": 2})
    raw = _table(n_patients=100, rows=4)
    frame, codes = _prepared(raw, schema)
    splits = split_table(frame, SplitSpec(seed=0), units=codes)
    data = training_data(splits, schema, seed=0)
    assert data.max_rows_per_unit == 2 and np.bincount(data.units).max() == 2
    assert len(data.frame) == 2 * 60 and len(splits.train) == 4 * 60
    data1 = training_data(splits, schema, seed=0, max_rows_per_unit=1)
    assert len(data1.frame) == 60 and data1.max_rows_per_unit == 1


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_refuses_repeated_patient_ids_at_row_level_and_trains_per_patient(tmp_path):
    data = tmp_path / "visits.csv"
    _table(n_patients=150, rows=3).to_csv(data, index=False)
    row_schema = tmp_path / "row.yaml"
    row_schema.write_text(yaml.safe_dump({**SCHEMA, "privacy_unit": "patient (one row per patient)"}))
    result = _cli("train", "--data", data, "--schema", row_schema, "-g", "independent", "--epsilon", 1,
                  "--out", tmp_path / "bad")
    assert result.exit_code == 2
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "column 'patient_id' repeats ids" in lines[0] and "privacy_unit: patient_id" in lines[0]
    assert not (tmp_path / "bad").exists()
    unit_schema = tmp_path / "unit.yaml"
    unit_schema.write_text(yaml.safe_dump(SCHEMA))
    result = _cli("train", "--data", data, "--schema", unit_schema, "-g", "independent", "--epsilon", 1,
                  "--max-rows-per-patient", 2, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["privacy_unit"] == {"column": "patient_id", "max_rows_per_unit": 2}
    text = json.dumps(run)
    assert "dropped" not in text and run["n_train"] == 3 * 90  # the split's rows; the bounded count is not kept
    ledger = json.loads((tmp_path / "run" / "ledger.json").read_text())
    assert ledger["entries"][0]["params"]["rows_per_unit"] == 2
    assert math.isclose(ledger["epsilon"], 1.0, rel_tol=1e-3)
