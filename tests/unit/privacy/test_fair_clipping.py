"""Fairness-aware DP-SGD: adaptive clipping, group-aware clipping and balanced sampling.

The ledger of each is checked against an independent accountant (Google's dp_accounting, a
separate RDP implementation) fed with parameters recomputed here from first principles."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from dpsynth.data.table import TableData
from dpsynth.generators.tabular.gan.dp_gan import DPGAN
from dpsynth.privacy.accountants import RDP_ORDERS
from dpsynth.privacy.budget import Budget, zcdp_rho_for
from dpsynth.privacy.clipping import (
    AdaptiveClipDPOptimizer,
    GroupClipDPOptimizer,
    composed_noise_multiplier,
    grad_noise_multiplier,
)
from dpsynth.privacy.groups import GroupPoissonSampler, group_clip_bounds, group_sample_rates

dp_accounting = pytest.importorskip("dp_accounting")
TINY = {"epochs": 2, "batch_size": 64, "generator_hidden": [16], "discriminator_hidden": [16]}


@pytest.fixture(scope="module")
def small(actg_splits):
    schema, splits = actg_splits
    return TableData(splits.train.iloc[:500].reset_index(drop=True), schema)


def independent_epsilon(gaussians: list[float], sgd: tuple[float, float, int], delta: float) -> float:
    """(epsilon, delta) of Gaussian releases plus Poisson-subsampled Gaussian steps, by dp_accounting."""
    acc = dp_accounting.rdp.RdpAccountant(orders=list(RDP_ORDERS))
    for sigma in gaussians:
        acc.compose(dp_accounting.GaussianDpEvent(sigma))
    sigma, q, steps = sgd
    acc.compose(dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps))
    return acc.get_epsilon(delta)


def preprocessing_sigma(epsilon: float, delta: float, *, share: float = 0.05, releases: int) -> float:
    """Each of ``releases`` Gaussian releases gets share * rho / releases of the zCDP budget."""
    return math.sqrt(1.0 / (2.0 * share * zcdp_rho_for(epsilon, delta) / releases))


# ---- adaptive clipping ------------------------------------------------------------------------
def test_adaptive_noise_split_composes_back():
    for sigma, count_std in [(1.0, 3.2), (0.7, 0.7), (2.5, 10.0)]:
        grad = grad_noise_multiplier(sigma, count_std)
        assert grad > sigma
        # Andrew et al., Theorem 1: sigma = (grad^-2 + (2 sigma_b)^-2)^-1/2
        assert (grad ** -2 + (2 * count_std) ** -2) ** -0.5 == pytest.approx(sigma, rel=1e-12)
        assert composed_noise_multiplier(grad, count_std) == pytest.approx(sigma, rel=1e-12)
    with pytest.raises(Exception, match="count noise"):
        grad_noise_multiplier(2.0, 0.9)  # sigma_b <= sigma / 2 leaves nothing for the gradient


def test_adaptive_ledger_equals_independent_accountant(small):
    gen = DPGAN(**TINY, clipping="adaptive").fit(small, budget=Budget(epsilon=1.0), rng=np.random.default_rng(0))
    ledger = gen.ledger_
    pre, sgd = ledger.entries
    assert pre.mechanism == "gaussian" and sgd.mechanism == "dp-sgd"
    p = sgd.params
    assert p["clipping"] == "adaptive" and p["count_sensitivity"] == 0.5
    # the charged sigma is exactly the composition of the two noises the optimizer adds
    composed = (p["grad_noise_multiplier"] ** -2 + (p["count_noise_std"] / 0.5) ** -2) ** -0.5
    assert sgd.noise_multiplier == pytest.approx(composed, rel=1e-9)
    assert pre.noise_multiplier == pytest.approx(preprocessing_sigma(1.0, ledger.delta, releases=1), rel=1e-9)
    expected = independent_epsilon([pre.noise_multiplier], (composed, sgd.sample_rate, sgd.steps), ledger.delta)
    assert ledger.epsilon() == pytest.approx(expected, rel=1e-6)
    assert ledger.epsilon() <= 1.0 + 1e-9


def _zero_grad_model(n_features=50):
    model = nn.Linear(n_features, 1, bias=False)
    nn.init.zeros_(model.weight)
    return model


def _set_grad_samples(model, grads: torch.Tensor) -> None:
    model.weight.grad_sample = grads.reshape(len(grads), 1, -1).clone()


def test_adaptive_optimizer_noise_and_quantile_tracking():
    torch.manual_seed(0)
    model = _zero_grad_model(200)
    opt = AdaptiveClipDPOptimizer(torch.optim.SGD(model.parameters(), lr=1.0), noise_multiplier=1.0,
                                  max_grad_norm=1.0, expected_batch_size=20, count_std=2.0,
                                  generator=torch.Generator().manual_seed(1))
    # zero gradients: what is released is noise only; its std is grad_sigma * C (before / batch)
    _set_grad_samples(model, torch.zeros(20, 200))
    assert opt.pre_step()
    measured = float(model.weight.grad.std()) * 20
    assert measured == pytest.approx(opt.grad_sigma * 1.0, rel=0.15)
    # every example's norm is 10 > C: the noisy unclipped fraction is ~0, C grows toward the median
    bounds = []
    for _ in range(30):
        opt.zero_grad()
        _set_grad_samples(model, torch.full((20, 200), 10.0 / math.sqrt(200)))
        opt.pre_step()
        bounds.append(opt.max_grad_norm)
    assert bounds[:15] == sorted(bounds[:15])  # all clipped: the bound grows geometrically...
    assert 5.0 < bounds[-1] < 20.0  # ...and then hovers around the median norm (10)


# ---- group-aware clipping ----------------------------------------------------------------------
def test_group_clipping_ledger_equals_independent_accountant(small):
    budget = Budget(epsilon=1.0)
    gen = DPGAN(**TINY, clipping="group", group_columns=("race", "gender")).fit(
        small, budget=budget, rng=np.random.default_rng(0))
    ledger = gen.ledger_
    purposes = [e.purpose for e in ledger.entries]
    assert purposes == ["category frequencies for the conditional vector", "group sizes for fairness-aware training",
                        "discriminator DP-SGD"]
    cats, groups, sgd = ledger.entries
    sigma_pre = preprocessing_sigma(1.0, ledger.delta, releases=2)  # the share is split over two releases
    assert cats.noise_multiplier == pytest.approx(sigma_pre, rel=1e-9)
    assert groups.noise_multiplier == pytest.approx(sigma_pre, rel=1e-9)
    assert groups.params["l2_sensitivity"] == 1.0
    bounds = sgd.params["group_clip_bounds"]
    assert set(bounds) == {"race=0 & gender=0", "race=0 & gender=1", "race=1 & gender=0", "race=1 & gender=1"}
    # sensitivity = the largest per-group bound; the noise is sigma times it
    assert sgd.params["max_grad_norm"] == pytest.approx(max(bounds.values()), rel=1e-5)
    assert sgd.params["noise_std"] == pytest.approx(sgd.noise_multiplier * sgd.params["max_grad_norm"], rel=1e-9)
    assert min(bounds.values()) == pytest.approx(1.0)  # the largest group keeps the base clip norm
    expected = independent_epsilon([sigma_pre, sigma_pre], (sgd.noise_multiplier, sgd.sample_rate, sgd.steps),
                                   ledger.delta)
    assert ledger.epsilon() == pytest.approx(expected, rel=1e-6)
    assert ledger.epsilon() <= 1.0 + 1e-9


def test_group_optimizer_clips_per_group_and_noises_at_the_max():
    model = _zero_grad_model(400)
    opt = GroupClipDPOptimizer(torch.optim.SGD(model.parameters(), lr=1.0), group_bounds=[1.0, 3.0],
                               noise_multiplier=0.0, expected_batch_size=1)
    big = torch.zeros(3, 400)
    big[:, 0] = 100.0  # every example's gradient has norm 100
    _set_grad_samples(model, big)
    opt.set_batch_groups(torch.tensor([0, 1, 1]))
    assert opt.pre_step()
    assert float(model.weight.grad[0, 0]) == pytest.approx(1.0 + 3.0 + 3.0, rel=1e-4)
    assert opt.max_grad_norm == 3.0
    noisy = GroupClipDPOptimizer(torch.optim.SGD(model.parameters(), lr=1.0), group_bounds=[1.0, 3.0],
                                 noise_multiplier=2.0, expected_batch_size=1, generator=torch.Generator().manual_seed(0))
    _set_grad_samples(model, torch.zeros(2, 400))
    noisy.set_batch_groups(torch.tensor([0, 0]))
    noisy.pre_step()
    assert float(model.weight.grad.std()) == pytest.approx(2.0 * 3.0, rel=0.15)  # sigma * max_g C_g


def test_group_bounds_and_rates_from_counts():
    counts = np.array([400.0, 100.0, 25.0, -3.0])
    bounds = group_clip_bounds(counts, base=1.0, power=0.5, max_ratio=4.0)
    assert bounds.tolist() == pytest.approx([1.0, 2.0, 4.0, 4.0])
    rates = group_sample_rates(counts, max_rate=0.1, power=1.0)
    # sizes below 2% of the total (525) count as 10.5: an empty cell does not starve the others
    assert rates.max() == pytest.approx(0.1) and rates[0] == pytest.approx(0.1 * 10.5 / 400)
    assert rates[3] == pytest.approx(0.1)


# ---- balanced sampling ---------------------------------------------------------------------------
def test_group_poisson_sampler_rates_and_accounting(small):
    groups = torch.tensor([0] * 300 + [1] * 30)
    sampler = GroupPoissonSampler(groups=groups, rates=np.array([0.02, 0.2]),
                                  generator=torch.Generator().manual_seed(0), steps=400)
    assert sampler.sample_rate == 0.2  # the accounted rate is the largest
    hits = torch.zeros(len(groups))
    for batch in sampler:
        hits[batch] += 1
    assert float(hits[:300].mean()) / 400 == pytest.approx(0.02, rel=0.1)
    assert float(hits[300:].mean()) / 400 == pytest.approx(0.2, rel=0.1)

    gen = DPGAN(**TINY, balanced_sampling=True).fit(small, budget=Budget(epsilon=1.0), rng=np.random.default_rng(0))
    sgd = gen.ledger_.entries[-1]
    rates = sgd.params["group_sample_rates"]
    assert sgd.sample_rate == pytest.approx(max(rates.values()), rel=1e-6)
    assert sgd.params["sample_rate_accounted"] == sgd.sample_rate
    assert min(rates.values()) < sgd.sample_rate
    syn = gen.sample(300, rng=np.random.default_rng(1)).frame
    assert len(syn) == 300 and set(syn.columns) == set(small.schema.names)
