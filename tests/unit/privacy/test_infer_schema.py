"""DP schema inference: kinds from noisy cell classes, every statistic charged, bounds never absurd,
0/1 and small-integer columns as categories, atoms kept, rare categories hidden."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from dpsynth.cli import main
from dpsynth.privacy.infer_schema import OTHER, infer_schema_dp
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    n = 6000
    return pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "lab": rng.normal(5.0, 1.0, n),
        "site": rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2]),
        "smoker": rng.random(n) < 0.3,
        "flag": (rng.random(n) < 0.4).astype(int),
        "zeros": np.where(rng.random(n) < 0.6, 0.0, rng.gamma(2.0, 3.0, n)),
        "code": rng.integers(1, 6, n),
    }).assign(site=lambda f: f["site"].where(f.index != 7, "RARE-ONE-PATIENT"))


def _infer(frame, seed=1, **kw):
    ledger = Ledger(delta=1e-5, target_epsilon=1.0)
    schema, prepare = infer_schema_dp(frame, budget=Budget(epsilon=1.0), ledger=ledger,
                                      rng=np.random.default_rng(seed), **kw)
    return schema, prepare, ledger


def test_inferred_schema_is_dp_and_covers_the_data(table):
    schema, prepare, ledger = _infer(table, target="flag", sensitive=["age", "site"])
    assert [e.mechanism for e in ledger.entries] == ["gaussian"] * 3
    assert 0 < ledger.epsilon() < 0.5 and ledger.delta_spent() == pytest.approx(1e-6)
    age, lab, site = schema["age"], schema["lab"], schema["site"]
    # at epsilon 1 (5% of it for the schema) thin tails may be clipped; the bulk is always covered
    assert age.kind == "integer" and 0 <= age.low <= 22 and 80 <= age.high <= 128
    assert lab.kind == "continuous" and lab.low <= 3.5 and lab.high >= 6.5
    assert set(site.categories) == {"A", "B", "C", OTHER}  # the one-patient category is not revealed
    assert schema["smoker"].kind == "binary" and schema["flag"].kind == "binary"
    assert schema["code"].kind == "categorical" and schema["code"].categories == (1, 2, 3, 4, 5)
    assert schema["zeros"].kind == "continuous" and schema["zeros"].atoms == (0.0,)
    assert schema.target == "flag" and not schema["flag"].nullable and schema["age"].nullable
    assert schema.sensitive == ["age", "site"] and all(c.clip for c in schema.columns if c.name != "flag")
    prepared = prepare(table)
    assert prepared.loc[7, "site"] == OTHER and len(prepared) == len(table)


def test_kinds_come_from_cells_not_from_pandas_dtypes(table):
    # the same values stored as text (as a CSV with one stray word would be) give the same kinds
    as_text = table.astype(str).assign(lab=lambda f: f["lab"].where(f.index != 3, "n/a?"))
    schema, prepare, _ = _infer(as_text)
    assert schema["age"].kind == "integer" and schema["lab"].kind == "continuous"
    assert schema["flag"].kind == "binary" and schema["site"].kind == "categorical"
    assert np.isnan(prepare(as_text).loc[3, "lab"])  # a stray word in a numeric column becomes missing


@pytest.mark.parametrize("shape", ["uniform01", "normal", "lognormal", "ints", "shifted", "negative", "years"])
def test_bounds_are_never_absurd_over_many_seeds(shape):
    for seed in range(12):
        rng = np.random.default_rng(seed)
        n = 4000
        x = {"uniform01": rng.random(n), "normal": rng.normal(50, 10, n), "lognormal": rng.lognormal(3, 1, n),
             "ints": rng.integers(0, 1000, n), "shifted": rng.uniform(-20, 300, n),
             "negative": -rng.gamma(2, 5, n), "years": rng.integers(1990, 2021, n)}[shape]
        frame = pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.integers(0, 2, n), "x": x})
        schema, _, _ = _infer(frame, seed=seed)
        col = schema["x"]
        span = float(x.max() - x.min())
        assert col.low >= x.min() - 10 * span and col.high <= x.max() + 10 * span, (shape, seed, col)
        assert col.low <= np.quantile(x, 0.25) and col.high >= np.quantile(x, 0.75), (shape, seed, col)  # tails may be clipped at eps 1


def test_target_and_sensitive_must_name_columns(table):
    with pytest.raises(Exception, match="--target"):
        _infer(table, target="nope")


def test_cli_trains_on_a_file_without_schema(table, tmp_path):
    table.to_csv(tmp_path / "t.csv", index=False)
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "t.csv"), "--infer-schema", "--target", "flag",
                                       "--generator", "independent", "--epsilon", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "DP column kinds" in result.output and "DP category lists" in result.output
    ledger = Ledger.load(tmp_path / "run" / "ledger.json")
    assert ledger.epsilon() <= 1.0 + 1e-9 and len(ledger.entries) == 4
    bad = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "t.csv"), "--target", "flag",
                                    "--out", str(tmp_path / "run2")])
    assert bad.exit_code == 2 and "--infer-schema" in bad.output


def test_a_column_too_thin_to_see_is_dropped_unless_it_is_the_target(table):
    thin = table.assign(rare=np.where(np.arange(len(table)) < 30, 1.5, np.nan))
    schema, prepare, _ = _infer(thin)
    assert "rare" in schema.drop and "rare" not in schema.names and "rare" in schema.description
    assert "rare" not in prepare(thin).columns
    with pytest.raises(Exception, match="column 'rare': too few rows"):
        _infer(thin, target="rare")
