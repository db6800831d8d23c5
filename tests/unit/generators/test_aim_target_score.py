"""AIM's target-conditional selection score: its L1 sensitivity (2 per record, x k per unit) holds
on random neighbouring tables, the exponential mechanism is charged with it, and the run still
ends at its target epsilon."""

from __future__ import annotations

import numpy as np
import pytest

from dpsynth.generators.tabular.marginal.aim import (CONDITIONAL_SENSITIVITY, candidate_weights, conditional_error,
                                                     run_aim)
from dpsynth.generators.tabular.marginal.measure import Measurer, available_rho
from dpsynth.privacy.ledger import Ledger

pytest.importorskip("mbi", reason="aim needs the optional extra dpsynth[marginal] (mbi)")


def _counts(codes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.bincount(np.ravel_multi_index(tuple(codes.T), shape), minlength=int(np.prod(shape))).reshape(shape)


@pytest.mark.parametrize("shape,axis", [((3, 2), 1), ((4, 3, 2), 2), ((2, 5, 3), 0), ((3,), 0)])
def test_conditional_error_sensitivity_is_two(shape, axis):
    """Add or remove one record (or k of one unit): the score moves by at most 2 (x k); and the
    bound is nearly reached, so a claim of 1 (the joint score's) would fail here."""
    rng = np.random.default_rng(0)
    worst = 0.0
    for trial in range(300):
        n = int(rng.integers(1, 40))
        codes = np.stack([rng.integers(0, s, n) for s in shape], axis=1)
        model = rng.dirichlet(np.full(int(np.prod(shape)), 0.5)).reshape(shape)
        if trial % 3 == 0:  # some x with no model mass (uniform conditional)
            model = model * (rng.random(shape) < 0.7)
        base = conditional_error(_counts(codes, shape), model, axis)
        k = 1 + trial % 3  # rows per unit
        extra = np.stack([rng.integers(0, s, k) for s in shape], axis=1)
        for other in (np.concatenate([codes, extra]), codes[k:]):  # add k rows / remove k rows
            moved = abs(conditional_error(_counts(other, shape), model, axis) - base)
            assert moved <= CONDITIONAL_SENSITIVITY * k + 1e-9, (trial, moved, k)
            worst = max(worst, moved / k)
    assert worst > 1.5, worst


def _codes(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    r = np.random.default_rng(seed)
    x0 = r.integers(0, 6, n)
    x1 = np.where(r.random(n) < 0.8, x0, r.integers(0, 6, n))  # feature-feature dependence
    x2 = r.integers(0, 4, n)
    y = (r.random(n) < 0.2 + 0.1 * x2).astype(int)  # the target depends on x2 only
    return np.stack([x0, x1, x2, y], axis=1), [6, 6, 4, 2]


@pytest.mark.parametrize("contribution,score,smallest", [(1, "conditional", 1), (2, "conditional", 1),
                                                         (1, "conditional-3way", 3), (2, "tv-3way", 3)])
def test_conditional_selection_is_charged_and_ends_at_target(contribution, score, smallest):
    codes, sizes = _codes(5000, seed=3)
    epsilon, target = 1.0, 3
    ledger = Ledger(delta=1e-6, target_epsilon=epsilon)
    measurer = Measurer(codes, sizes, ledger=ledger, rng=np.random.default_rng(1), contribution=contribution)
    rounds = []
    run_aim(measurer, rho=available_rho(ledger, epsilon), degree=2, max_model_size=80.0, max_rounds=6, pgm_iters=50,
            final_pgm_iters=50, estimator="numpy", progress=rounds.append, target=target, target_weight=8.0,
            target_degree=3, target_score=score)
    weights = candidate_weights(4, 2, target=target, target_weight=8.0, target_degree=3)
    per = CONDITIONAL_SENSITIVITY / 2 if score == "tv-3way" else CONDITIONAL_SENSITIVITY  # tv: half the score
    want = max(w * (per if target in r and len(r) >= smallest else 1.0) for r, w in weights.items()) * contribution
    selections = [e for e in ledger.entries if e.params.get("mechanism") == "exponential"]
    assert len(selections) == len(rounds) >= 2
    assert all(e.params["sensitivity"] == pytest.approx(want) for e in selections)
    assert ledger.epsilon() == pytest.approx(epsilon, rel=1e-5) and ledger.epsilon() <= epsilon


def test_joint_score_keeps_the_papers_sensitivity():
    codes, sizes = _codes(3000, seed=4)
    ledger = Ledger(delta=1e-6, target_epsilon=1.0)
    measurer = Measurer(codes, sizes, ledger=ledger, rng=np.random.default_rng(1))
    run_aim(measurer, rho=available_rho(ledger, 1.0), degree=2, max_model_size=80.0, max_rounds=4, pgm_iters=50,
            final_pgm_iters=50, estimator="numpy", target=3, target_weight=8.0, target_degree=3)
    weights = candidate_weights(4, 2, target=3, target_weight=8.0, target_degree=3)
    selections = [e for e in ledger.entries if e.params.get("mechanism") == "exponential"]
    assert selections and all(e.params["sensitivity"] == pytest.approx(max(weights.values())) for e in selections)
