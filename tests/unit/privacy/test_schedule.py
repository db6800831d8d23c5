"""DP-SGD planned from the budget: batch from n / epsilon / delta, steps from the compute budget."""

from __future__ import annotations

import math

import pytest
from opacus.accountants.analysis import rdp as rdp_analysis

from dpsynth.errors import ConfigError
from dpsynth.privacy.schedule import plan_schedule, planning_noise_multiplier, subsampled_gaussian_epsilon


@pytest.mark.parametrize("sigma,q,steps,delta", [(1.0, 0.01, 1000, 1e-5), (3.0, 0.1, 500, 1e-6), (0.8, 0.002, 2000, 1e-7)])
def test_planning_epsilon_matches_opacus_rdp_on_integer_orders(sigma, q, steps, delta):
    orders = list(range(2, 257))
    rdp = rdp_analysis.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders)
    expected, _ = rdp_analysis.get_privacy_spent(orders=orders, rdp=rdp, delta=delta)
    ours = subsampled_gaussian_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta)
    assert ours == pytest.approx(expected, rel=1e-6)


def test_planning_noise_meets_the_target():
    sigma = planning_noise_multiplier(n=1283, batch_size=128, steps=1003, epsilon=1.0, delta=1e-5)
    q = 1 / math.ceil(1283 / 128)
    assert subsampled_gaussian_epsilon(noise_multiplier=sigma, sample_rate=q, steps=1003, delta=1e-5) <= 1.0
    assert subsampled_gaussian_epsilon(noise_multiplier=sigma * 0.98, sample_rate=q, steps=1003, delta=1e-5) > 1.0


def test_small_sets_small_batches_large_sets_bigger_batches_same_steps():
    plans = {n: plan_schedule(n=n, epsilon=1.0, delta=min(1e-5, 1 / (10 * n)), steps=1000, batch_size=None)
             for n in (1283, 10_000, 100_000, 1_000_000)}
    batches = [plans[n].batch_size for n in sorted(plans)]
    assert batches == sorted(batches) and batches[0] < batches[-1]
    assert plans[1283].batch_size == 32 and plans[100_000].batch_size == 2048 and plans[1_000_000].batch_size == 4096
    assert all(p.steps == 1000 for p in plans.values())  # more rows: less noise per step, not more passes
    for n, p in plans.items():  # the chosen batch is the smallest power of two reaching the floor
        if p.batch_size < 4096:
            assert p.planning_noise_multiplier >= 3.0
            smaller = planning_noise_multiplier(n=n, batch_size=p.batch_size // 2, steps=1000, epsilon=1.0,
                                                delta=min(1e-5, 1 / (10 * n)))
            assert p.batch_size == 32 or smaller < 3.0
    # a larger epsilon needs a larger batch to keep the noise multiplier at the floor
    assert plan_schedule(n=1283, epsilon=4.0, delta=1e-5, steps=1000, batch_size=None).batch_size == 128


def test_tiny_table_keeps_sampling_amplification_and_legacy_and_fixed_plans():
    assert plan_schedule(n=40, epsilon=1.0, delta=1e-3, steps=100, batch_size=None).batch_size <= 20
    legacy = plan_schedule(n=100_000, epsilon=1.0, delta=1e-6, steps=1000, batch_size=None, epochs=100)
    assert (legacy.batch_size, legacy.steps) == (128, 78_125)  # the old plan: ceil(100 * n / 128)
    fixed = plan_schedule(n=5000, epsilon=1.0, delta=1e-6, steps=300, batch_size=256)
    assert (fixed.batch_size, fixed.steps) == (256, 300)
    with pytest.raises(ConfigError, match="steps"):
        plan_schedule(n=5000, epsilon=1.0, delta=1e-6, steps=0, batch_size=None)
    with pytest.raises(ConfigError, match="epochs"):
        plan_schedule(n=5000, epsilon=1.0, delta=1e-6, steps=10, batch_size=None, epochs=-1)


def test_compute_budget_bounds_examples_by_cutting_steps_not_the_noise_floor():
    free = plan_schedule(n=1283, epsilon=1.0, delta=1e-5, steps=250, batch_size=None)
    same = plan_schedule(n=1283, epsilon=1.0, delta=1e-5, steps=250, batch_size=None, max_examples=10**9)
    assert (same.batch_size, same.steps) == (free.batch_size, free.steps)  # a budget that does not bind changes nothing
    for n in (4724, 100_000, 10_000_000):
        p = plan_schedule(n=n, epsilon=1.0, delta=min(1e-5, 1 / (10 * n)), steps=1000, batch_size=None,
                          max_examples=60_000)
        assert p.steps * p.batch_size <= 60_000 and 50 <= p.steps < 1000
        if "cut to the compute budget" not in p.rule:  # steps were cut, the batch still reaches the floor
            assert p.planning_noise_multiplier >= 3.0 and "steps cut from 1000" in p.rule
    # at min_steps the batch itself is cut to fit (noise multiplier below the floor then)
    tight = plan_schedule(n=1_000_000, epsilon=1.0, delta=1e-7, steps=1000, batch_size=None, max_examples=5000)
    assert (tight.steps, tight.batch_size) == (50, 100) and "batch cut" in tight.rule
    with pytest.raises(ConfigError, match="max_examples"):
        plan_schedule(n=5000, epsilon=1.0, delta=1e-6, steps=10, batch_size=None, max_examples=0)


@pytest.mark.parametrize("name", ["dp-gan", "dp-diffusion"])
def test_tabular_generators_plan_within_their_compute_budget(name):
    from dpsynth.generators import REGISTRY

    gen = REGISTRY[name]()
    for n in (1283, 100_000):
        p = gen.plan_schedule(n, epsilon=1.0, delta=min(1e-5, 1 / (10 * n)))
        assert p.steps * p.batch_size <= gen.max_examples and p.steps >= gen.min_steps
    # a fixed batch and steps are used as given (the user's explicit choice; no budget)
    fixed = REGISTRY[name](batch_size=4096, steps=1000).plan_schedule(100_000, epsilon=1.0, delta=1e-6)
    assert (fixed.batch_size, fixed.steps) == (4096, 1000)


def test_budget_cut_batch_keeps_steps_and_is_the_same_plan_at_larger_epsilon():
    kw = dict(n=1283, delta=1e-5, steps=750, batch_size=None, max_examples=60_000, budget_cut="batch")
    lo, hi = plan_schedule(epsilon=1.0, **kw), plan_schedule(epsilon=4.0, **kw)
    assert (lo.steps, lo.batch_size) == (hi.steps, hi.batch_size) == (750, 64)
    assert hi.planning_noise_multiplier < lo.planning_noise_multiplier
    steps_cut = plan_schedule(epsilon=4.0, **{**kw, "budget_cut": "steps"})
    assert steps_cut.steps < 750 and steps_cut.steps * steps_cut.batch_size <= 60_000
    with pytest.raises(ConfigError, match="budget_cut"):
        plan_schedule(epsilon=1.0, **{**kw, "budget_cut": "rows"})
