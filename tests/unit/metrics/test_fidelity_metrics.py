"""Fidelity metrics measure what they claim on ACTG 175."""

from __future__ import annotations

import numpy as np
import pytest

from dpsynth.errors import DpsynthError
from dpsynth.metrics.base import GOALS, Metric
from dpsynth.metrics.fidelity import AssociationDifference, ColumnShapes, DetectionAUROC, association_matrix
from dpsynth.metrics.manifold import AlphaPrecision, Authenticity, BetaRecall, PRDCCoverage


@pytest.fixture(scope="module")
def shapes(schema, splits, synthetics):
    return {k: ColumnShapes().evaluate(splits.train, splits.holdout, v, schema) for k, v in synthetics.items()}


@pytest.fixture(scope="module")
def assoc(schema, splits, synthetics):
    return {k: AssociationDifference().evaluate(splits.train, splits.holdout, synthetics[k], schema)
            for k in ("real", "copy", "independent")}


def test_real_vs_real_marginals_are_close(shapes):
    res = shapes["real"]
    assert res.breakdown["mean_tvd"] < 0.03
    assert res.breakdown["mean_ks"] < 0.08
    assert res.breakdown["mean_wasserstein"] < 0.02
    assert max(c.get("tvd", 0) for c in res.breakdown["columns"].values()) < 0.08


def test_copy_has_zero_distance_and_independent_keeps_marginals(shapes):
    assert shapes["copy"].value == pytest.approx(0.0, abs=1e-12)
    assert shapes["independent"].value < 0.04  # marginals survive resampling


def test_independent_marginals_break_associations(assoc):
    real, indep = assoc["real"], assoc["independent"]
    assert assoc["copy"].value == pytest.approx(0.0, abs=1e-12)
    assert indep.value > 2 * real.value
    assert indep.breakdown["max_difference"] > 0.5  # e.g. str2 x strat or r x cd496 vanish
    assert real.breakdown["max_difference"] < 0.25


def test_association_matrix_is_symmetric_unit_diagonal(schema, splits):
    m = association_matrix(splits.train, schema)
    assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1.0)
    assert np.all(m >= -1) and np.all(m <= 1)


def test_detection_auroc_near_half_for_real_and_high_for_independent(schema, splits, synthetics):
    det = DetectionAUROC(max_rows=600)
    real = det.evaluate(splits.train, splits.holdout, synthetics["real"], schema, rng=np.random.default_rng(0))
    indep = det.evaluate(splits.train, splits.holdout, synthetics["independent"], schema,
                         rng=np.random.default_rng(0))
    assert 0.4 < real.value < 0.6
    assert indep.value > 0.85
    assert real.target == 0.5 and real.goal == "target"


def test_prdc_and_alpha_beta_authenticity(schema, splits, synthetics):
    rng = np.random.default_rng(0)
    copy_auth = Authenticity(max_rows=600).evaluate(splits.train, splits.holdout, synthetics["copy"], schema, rng=rng)
    indep_auth = Authenticity(max_rows=600).evaluate(splits.train, splits.holdout, synthetics["independent"], schema,
                                                     rng=rng)
    assert copy_auth.value < 0.05  # copies are not authentic
    assert indep_auth.value > 0.8
    cov_copy = PRDCCoverage(max_rows=600).evaluate(splits.train, splits.holdout, synthetics["copy"], schema, rng=rng)
    cov_indep = PRDCCoverage(max_rows=600).evaluate(splits.train, splits.holdout, synthetics["independent"], schema,
                                                    rng=rng)
    assert cov_copy.value > 0.95 and cov_indep.value < cov_copy.value - 0.3
    assert AlphaPrecision(max_rows=600).evaluate(splits.train, splits.holdout, synthetics["copy"], schema,
                                                 rng=rng).value > 0.95
    assert BetaRecall(max_rows=600).evaluate(splits.train, splits.holdout, synthetics["real"], schema,
                                             rng=rng).value > 0.6


@pytest.mark.parametrize("metric", [ColumnShapes(), AssociationDifference(), DetectionAUROC(max_rows=300),
                                    PRDCCoverage(max_rows=300), AlphaPrecision(max_rows=300),
                                    BetaRecall(max_rows=300), Authenticity(max_rows=300)])
def test_metric_protocol_goal_range_value(metric, schema, splits, synthetics):
    assert isinstance(metric, Metric)
    res = metric.evaluate(splits.train, splits.holdout, synthetics["independent"], schema,
                          rng=np.random.default_rng(1))
    assert res.goal in GOALS and res.name == metric.name
    lo, hi = res.range
    assert lo <= res.value <= hi
    res.to_dict()


def test_missing_column_is_a_one_line_error(schema, splits, synthetics):
    bad = synthetics["independent"].drop(columns=["race"])
    with pytest.raises(DpsynthError, match="synthetic.*race"):
        ColumnShapes().evaluate(splits.train, splits.holdout, bad, schema)
