"""Membership attacks: a copy of the training data is caught, independent marginals are not."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_testdata import copy_rows, independent_marginals

from dpsynth.errors import DpsynthError
from dpsynth.metrics.attack_scores import summarize_attack, tpr_at_fpr
from dpsynth.metrics.privacy_attacks import DCRAttack, DOMIASAttack, ShadowModelAttack, build_candidates

N = 250  # members and non-members each: fast, still tight enough

@pytest.fixture(scope="module")
def candidates(schema, splits):
    return build_candidates(splits.train, splits.holdout, schema, rng=np.random.default_rng(0),
                            reference=splits.test, max_per_side=N)

def _run(attack, candidates, synth, seed=0):
    return attack.run(candidates, synth, rng=np.random.default_rng(seed))

def test_copy_is_caught_by_dcr_and_domias(candidates, synthetics):
    dcr = _run(DCRAttack(), candidates, synthetics["copy"])
    domias = _run(DOMIASAttack(), candidates, synthetics["copy"])
    assert dcr["auroc"] > 0.99 and dcr["tpr_at_fpr_0.01"] > 0.95
    assert domias["auroc"] > 0.85
    # perfect separation on 125 + 125 evaluation rows: the Clopper-Pearson bound is ~3.9
    assert dcr["epsilon"]["epsilon_lower_bound"] > 3.0
    assert dcr["outliers"]["auroc"] > 0.95 and dcr["outliers"]["k"] == 50

def test_independent_marginals_resist_attacks(candidates, synthetics):
    for attack in (DCRAttack(), DOMIASAttack()):
        rep = _run(attack, candidates, synthetics["independent"])
        assert abs(rep["auroc"] - 0.5) < 0.08, (attack.name, rep["auroc"])
        assert rep["tpr_at_fpr_0.01"] < 0.06
        assert rep["epsilon"]["epsilon_lower_bound"] < 0.5

def test_shadow_attack_uses_fit_sample_callable(candidates, splits, synthetics):
    calls = []

    def fit_sample_copy(frame, rng):
        calls.append(len(frame))
        return copy_rows(frame, rng)

    shadow = ShadowModelAttack(fit_sample=fit_sample_copy, reference_frame=splits.test, n_shadow=2)
    rep = _run(shadow, candidates, synthetics["copy"])
    assert len(calls) == 2 and all(c == len(splits.test) // 2 for c in calls)
    assert rep["auroc"] > 0.95
    indep = ShadowModelAttack(fit_sample=independent_marginals, reference_frame=splits.test, n_shadow=2)
    assert abs(_run(indep, candidates, synthetics["independent"])["auroc"] - 0.5) < 0.08

def test_metric_protocol_and_reference_from_holdout(schema, splits, synthetics):
    res = DCRAttack(max_per_side=120).evaluate(splits.train, splits.holdout, synthetics["copy"], schema,
                                               rng=np.random.default_rng(0))
    assert res.goal == "target" and res.target == 0.5 and res.range == (0.0, 1.0)
    assert 0.0 <= res.value <= 1.0 and res.value > 0.99
    assert res.breakdown["n_members"] == res.breakdown["n_non_members"] == 120

def test_summarize_attack_rates():
    labels = np.r_[np.ones(100), np.zeros(100)].astype(int)
    scores = np.r_[np.linspace(1, 2, 100), np.linspace(0, 1.5, 100)]
    out = summarize_attack(labels, scores)
    assert 0.5 < out["auroc"] < 1.0
    assert tpr_at_fpr(labels, scores, 0.0) == pytest.approx(out["tpr_at_fpr_0.001"])
    assert len(out["roc"]["fpr"]) == len(out["roc"]["tpr"])
    assert summarize_attack(np.ones(5, dtype=int), np.ones(5))["auroc"] is None

def test_bad_inputs_are_one_line_errors(schema, splits):
    with pytest.raises(DpsynthError, match="fit_sample"):
        ShadowModelAttack(fit_sample=None)
    with pytest.raises(DpsynthError, match="density"):
        DOMIASAttack(density="flow")
    with pytest.raises(DpsynthError, match="at least 5"):
        build_candidates(splits.train.head(3), splits.holdout, schema, rng=np.random.default_rng(0),
                         reference=splits.test)
