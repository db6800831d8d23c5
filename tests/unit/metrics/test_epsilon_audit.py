"""Empirical epsilon lower bounds with Clopper-Pearson intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import beta

from dpsynth.errors import DpsynthError
from dpsynth.metrics.epsilon_audit import clopper_pearson, empirical_epsilon


def test_clopper_pearson_known_values():
    lo, hi = clopper_pearson(5, 10, alpha=0.05)
    assert lo == pytest.approx(0.187, abs=1e-3) and hi == pytest.approx(0.813, abs=1e-3)
    assert clopper_pearson(0, 20)[0] == 0.0 and clopper_pearson(20, 20)[1] == 1.0
    assert clopper_pearson(0, 20)[1] == pytest.approx(beta.ppf(0.975, 1, 20))
    with pytest.raises(DpsynthError):
        clopper_pearson(3, 2)


def test_perfect_attack_gives_the_analytic_bound():
    labels = np.r_[np.ones(200), np.zeros(200)].astype(int)
    scores = labels.astype(float)
    out = empirical_epsilon(labels, scores, rng=np.random.default_rng(0))
    n = out["n_members"]  # evaluation half
    # TPR = 1, FPR = 0: one-sided bounds at alpha/2 = 0.025 each
    tpr_lo, fpr_hi = 0.025 ** (1 / n), 1 - 0.025 ** (1 / out["n_non_members"])
    assert out["epsilon_lower_bound"] == pytest.approx(math.log(tpr_lo / fpr_hi), rel=1e-6)
    assert out["epsilon_lower_bound"] > 3.0  # 100 + 100 evaluation rows
    assert not out["optimistic"]


def test_random_scores_give_no_evidence():
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(300), np.zeros(300)].astype(int)
    out = empirical_epsilon(labels, rng.random(600), rng=rng)
    assert out["epsilon_lower_bound"] < 0.3


def test_delta_lowers_the_bound_and_symmetric_form_is_available():
    labels = np.r_[np.ones(300), np.zeros(300)].astype(int)
    rng = np.random.default_rng(2)
    scores = labels + rng.normal(0, 0.7, 600)
    base = empirical_epsilon(labels, scores, rng=np.random.default_rng(3))
    with_delta = empirical_epsilon(labels, scores, delta=0.1, rng=np.random.default_rng(3))
    assert with_delta["epsilon_lower_bound"] <= base["epsilon_lower_bound"]
    assert base["form"] in ("direct", "symmetric")
    optimistic = empirical_epsilon(labels, scores, calibration_fraction=0, rng=np.random.default_rng(3))
    assert optimistic["optimistic"] and optimistic["n_members"] == 300


def test_bad_arguments():
    labels = np.r_[np.ones(10), np.zeros(10)].astype(int)
    with pytest.raises(DpsynthError, match="confidence"):
        empirical_epsilon(labels, labels.astype(float), confidence=1.5, rng=np.random.default_rng(0))
    with pytest.raises(DpsynthError, match="delta"):
        empirical_epsilon(labels, labels.astype(float), delta=1.0, rng=np.random.default_rng(0))
