"""The DP-SGD engine: Poisson sampling, calibrated noise, every step charged, no way around it."""

import pytest
import torch
from opacus.data_loader import DPDataLoader
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from torch import nn
from torch.utils.data import TensorDataset

from dpsynth.errors import PrivacyError
from dpsynth.privacy.accountants import opacus_rdp_epsilon
from dpsynth.privacy.engine import DPSGDEngine, plan_dp_sgd, validate_module
from dpsynth.privacy.ledger import Ledger


def _setup(*, n=300, batch_size=30, steps=20, target=2.0, preprocessing=None):
    ledger = Ledger(delta=1e-5, target_epsilon=target)
    if preprocessing:
        ledger.record_gaussian(purpose="counts", noise_multiplier=preprocessing)
    plan = plan_dp_sgd(ledger=ledger, n=n, batch_size=batch_size, steps=steps, max_grad_norm=1.0)
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = TensorDataset(torch.randn(n, 4, generator=gen), torch.randn(n, 1, generator=gen))
    engine = DPSGDEngine(ledger=ledger, plan=plan, purpose="test")
    model, opt, loader = engine.make_private(module=model, optimizer=opt, dataset=data, torch_rng=gen)
    return ledger, plan, engine, model, opt, loader


def _train(engine, model, opt, loader):
    while engine.can_step():
        for x, y in loader:
            if not engine.can_step():
                break
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            engine.step(opt)


def test_loader_is_poisson_sampled():
    _, plan, engine, _, _, loader = _setup()
    assert isinstance(loader, DPDataLoader)
    assert isinstance(loader.batch_sampler, UniformWithReplacementSampler)
    assert loader.sample_rate == pytest.approx(plan.sample_rate)
    sizes = {len(x) for x, _ in loader}
    assert len(sizes) > 1  # batch sizes vary: Poisson, not fixed-size


def test_every_step_is_charged_and_matches_opacus():
    ledger, plan, engine, model, opt, loader = _setup(steps=25, preprocessing=30.0)
    _train(engine, model, opt, loader)
    assert engine.steps_taken == plan.steps == 25
    # opacus' own accountant saw exactly the steps the ledger charged
    assert engine.opacus_history() == [(plan.noise_multiplier, plan.sample_rate, 25)]
    sgd_only = opacus_rdp_epsilon(engine.opacus_history(), delta=1e-5)
    assert sgd_only < ledger.epsilon() <= 2.0 + 1e-9
    assert ledger.epsilon() > 1.9  # calibrated close to the target, not wastefully below


def test_engine_refuses_steps_past_the_plan():
    ledger, plan, engine, model, opt, loader = _setup(steps=3)
    _train(engine, model, opt, loader)
    x, y = next(iter(loader))
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    with pytest.raises(PrivacyError, match="cross"):
        engine.step(opt)
    assert engine.steps_taken == 3


def test_no_non_private_path_through_the_dp_api():
    with pytest.raises(PrivacyError):
        plan_dp_sgd(ledger=Ledger(delta=1e-5), n=100, batch_size=10, steps=5, max_grad_norm=1.0)  # no target
    ledger = Ledger(delta=1e-5, target_epsilon=1.0)
    plan = plan_dp_sgd(ledger=ledger, n=100, batch_size=10, steps=5, max_grad_norm=1.0)
    assert plan.noise_multiplier > 0.3


def test_batchnorm_is_rejected():
    with pytest.raises(PrivacyError, match="not DP-SGD compatible"):
        validate_module(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), name="disc")
