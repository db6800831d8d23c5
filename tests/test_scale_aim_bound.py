"""The public compute bound for aim: parameters only, the accounting unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.data.schema import Schema
from dpsynth.data.table import TableData
from dpsynth.generators.registry import get_generator_class
from dpsynth.privacy.budget import Budget
from dpsynth.scale.aim_bound import COMPUTE_BOUND, bounded, work_bound


def test_bounded_keeps_smaller_settings_and_fills_unset_ones():
    assert bounded({}) == COMPUTE_BOUND
    assert bounded({"max_iterations": None, "max_model_size": 1.0, "bins": 8}) == {
        "max_iterations": COMPUTE_BOUND["max_iterations"], "max_model_size": 1.0, "bins": 8}
    assert bounded({"max_iterations": 500, "max_model_size": 80.0}) == COMPUTE_BOUND
    assert work_bound(**COMPUTE_BOUND) == 524_288 * (32 * 50 + 1000)
    assert work_bound(**COMPUTE_BOUND, round_iters=1000) > work_bound(**COMPUTE_BOUND)


def test_bounded_aim_keeps_its_rounds_model_size_and_epsilon():
    pytest.importorskip("mbi")
    import dpsynth.generators  # noqa: F401  (registers the generators)

    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame({f"c{j}": rng.integers(0, 6, size=n) for j in range(6)})
    frame["y"] = (frame["c0"] + rng.integers(0, 3, size=n) > 4).astype(int)
    schema = Schema.from_dict({"name": "toy", "target": "y", "columns": [
        *({"name": f"c{j}", "kind": "integer", "low": 0, "high": 5} for j in range(6)),
        {"name": "y", "kind": "binary", "categories": [0, 1]}]})
    params = bounded({"max_iterations": 8, "max_model_size": 0.01, "pgm_iters": 5, "final_pgm_iters": 10})
    seen = []
    gen = get_generator_class("aim")(**params).fit(
        TableData(schema.prepare(frame), schema), budget=Budget(epsilon=1.0, delta=1e-6),
        rng=np.random.default_rng(1), progress=lambda info: seen.append(info) if "cells" in info else None)
    assert 0.99 < gen.ledger_.epsilon() <= 1.0 + 1e-9  # the last round spends what is left, never more
    assert 1 <= len(seen) <= 8 and all(info["steps"] == 8 for info in seen)
    assert max(info["cells"] for info in seen) <= 0.01 * 2**20 / 8


def test_engines_refuse_a_patient_level_schema(tmp_path):
    """Rows per patient are bounded only on the in-memory path: the engines refuse in one line."""
    from dpsynth.errors import DpsynthError
    from dpsynth.scale.source import TableSource

    schema = Schema.from_dict({"name": "enc", "privacy_unit": "pid", "max_rows_per_unit": 2, "drop": ["pid"],
                               "columns": [{"name": "a", "kind": "integer", "low": 0, "high": 3}]})
    path = tmp_path / "t.csv"
    path.write_text("pid,a\n1,0\n1,1\n2,3\n")
    with pytest.raises(DpsynthError, match="privacy unit column 'pid': use --engine numpy"):
        TableSource(path, schema)
