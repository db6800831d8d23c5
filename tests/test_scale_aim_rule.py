"""aim's public large-table rule: when it applies, what it sets, and that epsilon stays the target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.scale import aim_bound
from dpsynth.scale.aim_bound import LARGE_ROWS, MODEL_SIZE_MB, ROUNDS_PER_COLUMN, large_table_rule, work_bound


def _toy_table(tmp_path, *, n: int, predictors: int, levels: int):
    """A parquet file of ``predictors`` integer columns in [0, levels) and a binary target y that
    depends on c0, with its public schema; returns (data path, schema path)."""
    from dpsynth.data.schema import Schema

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"c{j}": rng.integers(0, levels, size=n) for j in range(predictors)})
    frame["y"] = (frame["c0"] + rng.integers(0, 2, size=n) > 2).astype(int)
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    schema_path = tmp_path / "s.yaml"
    Schema.from_dict({"name": "toy", "target": "y", "columns": [
        *({"name": f"c{j}", "kind": "integer", "low": 0, "high": levels - 1} for j in range(predictors)),
        {"name": "y", "kind": "binary", "categories": [0, 1]}]}).save(schema_path)
    return path, schema_path


def test_rule_leaves_a_small_wide_table_alone_and_bounds_100m_rows():
    # actg175-like: 1,600 rows x 26 columns; the fixed bound (T = 32) cost 0.99 -> 0.78 there
    params, why = large_table_rule(1_600, 26, {"max_iterations": None, "max_model_size": 80.0})
    assert why is None and params == {"max_iterations": None, "max_model_size": 80.0}
    assert large_table_rule(LARGE_ROWS - 1, 26)[1] is None
    params, why = large_table_rule(100_000_000, 17, {"max_iterations": None, "max_model_size": 80.0})
    assert params == {"max_iterations": ROUNDS_PER_COLUMN * 17, "max_model_size": MODEL_SIZE_MB}
    assert "100,000,000 training rows" in why and f"{ROUNDS_PER_COLUMN * 17} rounds" in why
    # one-way marginals take d / T of the measuring budget: bounded whatever the width
    for d in (5, 17, 26, 200):
        assert d / large_table_rule(LARGE_ROWS, d)[0]["max_iterations"] == 1 / ROUNDS_PER_COLUMN
    # the model loop's worst case does not depend on the rows
    assert work_bound(**large_table_rule(10**6, 17)[0]) == work_bound(**large_table_rule(10**9, 17)[0])


def test_rule_keeps_explicit_settings():
    params, why = large_table_rule(10**8, 17, {"max_iterations": 10, "max_model_size": 1.0})
    assert why is None and params == {"max_iterations": 10, "max_model_size": 1.0}
    params, why = large_table_rule(10**8, 17, {"max_iterations": 10, "max_model_size": 80.0})
    assert params == {"max_iterations": 10, "max_model_size": MODEL_SIZE_MB} and "max_iterations =" not in why


def test_apply_sets_aim_only():
    import dpsynth.generators  # noqa: F401
    from dpsynth.generators.registry import get_generator_class

    notes = []
    aim = get_generator_class("aim")()
    assert aim_bound.apply_large_table_rule(aim, 10**8, 17, note=notes.append) is not None
    assert (aim.max_iterations, aim.max_model_size) == (ROUNDS_PER_COLUMN * 17, MODEL_SIZE_MB) and len(notes) == 1
    small = get_generator_class("aim")()
    assert aim_bound.apply_large_table_rule(small, 50_000, 17, note=notes.append) is None
    assert (small.max_iterations, small.max_model_size) == (None, 80.0)
    mst = get_generator_class("mst")()
    assert aim_bound.apply_large_table_rule(mst, 10**8, 17, note=notes.append) is None and len(notes) == 1


def test_rule_on_the_engine_path_prints_why_and_spends_exactly_the_target(tmp_path, monkeypatch, capsys):
    pytest.importorskip("duckdb")
    pytest.importorskip("mbi")
    import dpsynth.generators  # noqa: F401
    from dpsynth.data.splits import SplitSpec
    from dpsynth.generators.registry import get_generator_class
    from dpsynth.privacy.budget import Budget
    from dpsynth.scale.train import fit_streaming

    monkeypatch.setattr(aim_bound, "LARGE_ROWS", 500)  # a 1,000-row file stands in for a large one
    path, schema_path = _toy_table(tmp_path, n=1000, predictors=3, levels=4)
    gen = get_generator_class("aim")(pgm_iters=5, final_pgm_iters=10)
    seen = []
    fit_streaming(data=str(path), schema_path=schema_path, engine="duckdb", generator=gen,
                  budget=Budget(epsilon=1.0, delta=1e-6), rng=np.random.default_rng(1),
                  split=SplitSpec(seed=0, holdout=0.0, test=0.0), threads=1,
                  progress=lambda info: seen.append(info) if "cells" in info else None)
    assert "aim large-table rule" in capsys.readouterr().err
    assert gen.max_iterations == ROUNDS_PER_COLUMN * 4 and gen.max_model_size == MODEL_SIZE_MB
    assert seen and all(info["steps"] == ROUNDS_PER_COLUMN * 4 for info in seen)
    assert gen.ledger_.epsilon() == pytest.approx(1.0, abs=1e-6)  # the plan keeps a 1e-7 slack (as unbounded aim)
    assert gen.ledger_.epsilon() <= 1.0 + 1e-12


def test_auto_streams_on_the_engine_path_and_its_aim_gets_the_rule(tmp_path, monkeypatch):
    """generator 'auto' picks mst or aim from public facts, so the engine path takes it: the choice is
    made before any row is read, and a chosen aim gets the large-table rule; epsilon is the target."""
    pytest.importorskip("duckdb")
    pytest.importorskip("mbi")
    import dpsynth.generators  # noqa: F401
    from dpsynth.data.splits import SplitSpec
    from dpsynth.generators.registry import get_generator_class
    from dpsynth.privacy.budget import Budget
    from dpsynth.scale import train as scale_train
    from dpsynth.scale.train import fit_streaming, resolve_engine

    monkeypatch.setattr(aim_bound, "LARGE_ROWS", 500)
    width = 16  # > 14 columns with a target -> aim
    path, schema_path = _toy_table(tmp_path, n=1000, predictors=width - 1, levels=3)
    monkeypatch.setattr(scale_train, "AUTO_ROWS", 500)
    assert resolve_engine("auto", data=str(path), generator="auto", schema_path=schema_path,
                          infer_schema=False) == "duckdb"
    assert resolve_engine("duckdb", data=str(path), generator="auto", schema_path=schema_path,
                          infer_schema=False) == "duckdb"
    gen = get_generator_class("auto")()
    fit_streaming(data=str(path), schema_path=schema_path, engine="duckdb", generator=gen,
                  budget=Budget(epsilon=1.0, delta=1e-6), rng=np.random.default_rng(1),
                  split=SplitSpec(seed=0, holdout=0.0, test=0.0), threads=1)
    assert gen.choice_ == "aim" and gen.inner_.max_iterations == ROUNDS_PER_COLUMN * width
    assert gen.inner_.max_model_size == MODEL_SIZE_MB and gen.inner_.target_degree == 3
    assert "aim large-table rule" in gen.reason_ and "1,000 training rows" in gen.reason_
    assert gen.ledger_.epsilon() == pytest.approx(1.0, abs=1e-6)
    assert gen.sample(50, rng=np.random.default_rng(2)).frame.shape == (50, width)
