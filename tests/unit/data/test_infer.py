"""DP schema inference: every statistic charged, bounds cover the data, rare categories hidden."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from dpsynth.cli import main
from dpsynth.data.infer import OTHER, infer_schema_dp
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    n = 3000
    return pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "lab": rng.normal(5.0, 1.0, n),
        "site": rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2]),
        "smoker": rng.random(n) < 0.3,
    }).assign(site=lambda f: f["site"].where(f.index != 7, "RARE-ONE-PATIENT"))


def test_inferred_schema_is_dp_and_covers_the_data(table):
    budget = Budget(epsilon=1.0)
    ledger = Ledger(delta=1e-5, target_epsilon=1.0)
    schema, prepare = infer_schema_dp(table, budget=budget, ledger=ledger, rng=np.random.default_rng(1))
    assert [e.mechanism for e in ledger.entries] == ["gaussian", "gaussian"]
    assert 0 < ledger.epsilon() < 0.5 and ledger.delta_spent() == pytest.approx(1e-6)
    age, lab, site = schema["age"], schema["lab"], schema["site"]
    assert age.low <= 18 and age.high >= 89 and age.high <= 256  # power-of-two bounds, not the data's max
    assert lab.low <= 2.0 and lab.high >= 8.0
    assert set(site.categories) == {"A", "B", "C", OTHER}  # the one-patient category is not revealed
    prepared = prepare(table)
    assert prepared.loc[7, "site"] == OTHER and len(prepared) == len(table)


def test_cli_trains_on_a_file_without_schema(table, tmp_path):
    table.assign(y=(table["lab"] > 5).astype(int)).to_csv(tmp_path / "t.csv", index=False)
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "t.csv"), "--infer-schema", "--generator",
                                       "independent", "--epsilon", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "DP bounds" in result.output and "DP category lists" in result.output
    ledger = Ledger.load(tmp_path / "run" / "ledger.json")
    assert ledger.epsilon() <= 1.0 + 1e-9 and len(ledger.entries) == 3
