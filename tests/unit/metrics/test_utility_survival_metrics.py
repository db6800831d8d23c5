"""TSTR vs TRTR classification and survival utility on ACTG 175."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_testdata import FAST_CONFIG

from dpsynth.errors import DpsynthError
from dpsynth.metrics.survival import CoxCIndex, KaplanMeierDistance, cox_table
from dpsynth.metrics.utility import TSTRAUROC, feature_columns, utility_table

GRIDS = FAST_CONFIG["utility"]["grids"]


@pytest.fixture(scope="module")
def tables(schema, splits, synthetics):
    return {k: utility_table(train=splits.train, synthetic=synthetics[k], test=splits.test, schema=schema, grids=GRIDS)
            for k in ("copy", "independent")}


def test_copy_matches_trtr_and_independent_loses_utility(tables):
    copy, _ = tables["copy"]
    assert copy["auroc_ratio"]["selected"] == pytest.approx(1.0)
    assert 0.75 < copy["trtr"]["selected"]["auroc"] < 0.9
    indep, _ = tables["independent"]
    assert indep["tstr"]["selected"]["auroc"] < 0.65  # no joint structure, nothing to learn
    for side in ("tstr", "trtr"):
        for key in ("logistic_regression", "gradient_boosting", "selected"):
            s = indep[side][key]
            for m in ("auroc", "auprc", "accuracy", "balanced_accuracy"):
                assert 0.0 <= s[m] <= 1.0


def test_duration_is_not_a_feature_for_the_event_target(schema, tables):
    res, _ = tables["copy"]
    assert res["target"] == "cens" and "days" not in res["features"] and "cens" not in res["features"]
    assert "days" in feature_columns(schema, "race")


def test_model_selection_never_reads_the_test_labels(schema, splits, synthetics):
    """Shuffling the test labels changes the test scores, never the chosen family or params."""
    test = splits.test.copy()
    test["cens"] = test["cens"].sample(frac=1.0, random_state=0).to_numpy()
    grids = {"logistic_regression": {"C": [0.1, 1.0]}}
    a, _ = utility_table(train=splits.train, synthetic=synthetics["real"], test=splits.test, schema=schema, grids=grids)
    b, _ = utility_table(train=splits.train, synthetic=synthetics["real"], test=test, schema=schema, grids=grids)
    for side in ("tstr", "trtr"):
        assert a[side]["selected"]["params"] == b[side]["selected"]["params"]
        assert a[side]["selected"]["cv_auroc"] == b[side]["selected"]["cv_auroc"]
    assert abs(b["trtr"]["selected"]["auroc"] - 0.5) < 0.1


def test_metric_class_and_errors(schema, splits, synthetics):
    res = TSTRAUROC(grids=GRIDS).evaluate(splits.train, splits.holdout, synthetics["real"], schema, test=splits.test,
                                          rng=np.random.default_rng(0))
    assert res.goal == "maximize" and 0.85 < res.value < 1.15
    with pytest.raises(DpsynthError, match="binary"):
        TSTRAUROC(target="age").evaluate(splits.train, splits.holdout, synthetics["real"], schema, test=splits.test)
    with pytest.raises(DpsynthError, match="test split"):
        TSTRAUROC().evaluate(splits.train, splits.holdout, synthetics["real"], schema)
    one_class = synthetics["real"][synthetics["real"]["cens"].astype(int) == 0]
    with pytest.raises(DpsynthError, match="rarer class"):
        TSTRAUROC(grids=GRIDS).evaluate(splits.train, splits.holdout, one_class, schema, test=splits.test)


def test_cox_cindex_and_km_distance(schema, splits, synthetics):
    copy = cox_table(train=splits.train, synthetic=synthetics["copy"], test=splits.test, schema=schema,
                     penalizers=(0.1,))
    assert copy["c_index_ratio"] == pytest.approx(1.0) and copy["trtr"]["c_index"] > 0.7
    indep = CoxCIndex(penalizers=(0.1,)).evaluate(splits.train, splits.holdout, synthetics["independent"], schema,
                                                  test=splits.test, rng=np.random.default_rng(0))
    assert indep.value < 0.85
    km = KaplanMeierDistance()
    assert km.evaluate(splits.train, None, synthetics["copy"], schema).value == pytest.approx(0.0, abs=1e-12)
    real = km.evaluate(splits.train, None, synthetics["real"], schema, test=splits.test)
    bad = km.evaluate(splits.train, None, synthetics["independent"], schema)
    assert real.breakdown["sup"] < 0.1 and bad.breakdown["sup"] > 0.3
    assert 0.0 <= bad.value <= 1.0 and bad.goal == "minimize"
