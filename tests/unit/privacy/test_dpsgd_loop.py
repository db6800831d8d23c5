"""The shared DP-SGD loop: a network plus a per-example loss is a complete DP-SGD training run
(planned noise, Poisson batches, every step charged, per-unit clipping), and data-independent
gradients are added after the noise, not clipped with the real rows."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from dpsynth.privacy.accountants import opacus_rdp_epsilon
from dpsynth.privacy.dpsgd_loop import DPSGDRun, DPSGDTask
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.schedule import Schedule
from dpsynth.privacy.unit_sgd import unit_dataset


def _mse(model, rows):
    x, y = rows
    return ((model(x) - y) ** 2).mean(1)


def _run(*, mode="ghost", units=None, n=240, target=2.0):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 4, generator=gen), torch.randn(n, 1, generator=gen)
    data = TensorDataset(x, y) if units is None else unit_dataset([x, y], units, max_rows=2)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    ledger = Ledger(delta=1e-5, target_epsilon=target)
    run = DPSGDRun.planned(ledger=ledger, schedule=Schedule(batch_size=24, steps=12, rule="test"), max_grad_norm=1.0,
                           purpose="test", secure_mode=False, module=model,
                           optimizer=torch.optim.SGD(model.parameters(), lr=0.1), dataset=data, torch_rng=gen,
                           grad_sample_mode=mode, per_unit=units is not None)
    return run, ledger, model


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_a_network_and_a_loss_train_under_the_plan(mode):
    run, ledger, _ = _run(mode=mode)
    seen = []
    run.train(DPSGDTask(loss=_mse, after_step=lambda m, step, losses: {"loss": float(losses.mean())}),
              max_physical_batch_size=8, progress=seen.append)
    entry = next(e for e in ledger.entries if e.mechanism == "dp-sgd")
    assert entry.steps == run.plan.steps == 12 and [p["step"] for p in seen] == list(range(1, 13))
    assert list(seen[0]) == ["step", "steps", "loss", "epsilon"]
    assert ledger.epsilon() <= 2.0 + 1e-9
    assert opacus_rdp_epsilon(run.engine.opacus_history(), delta=1e-5) == pytest.approx(ledger.epsilon(), rel=1e-6)
    assert run.summary(schedule="s") == {**run.plan.to_dict(), "schedule": "s", "grad_sample_mode": mode}


def test_patients_are_sampled_and_clipped_as_one_example():
    units = np.repeat(np.arange(120), 2)
    run, ledger, _ = _run(mode="hooks", units=units)
    assert run.plan.sample_rate == pytest.approx(1 / 5)  # Poisson over the 120 patients, not the 240 rows
    run.train(DPSGDTask(loss=_mse), max_physical_batch_size=64)
    assert next(e for e in ledger.entries if e.mechanism == "dp-sgd").steps == 12


def test_extra_gradients_are_added_after_the_noise():
    """With a zero loss on real rows and zero noise, the step is exactly the extra gradient."""
    run, ledger, model = _run(mode="hooks")
    run.optimizer.noise_multiplier = 0.0  # only to make the check exact; the ledger is not read here
    before = [p.detach().clone() for p in model.parameters()]
    shift = [torch.full_like(p, 10.0) for p in model.parameters()]  # far above the clip norm 1
    task = DPSGDTask(loss=lambda m, rows: _mse(m, rows) * 0.0, extra_grads=lambda m: shift)
    run.engine.plan = type(run.plan)(**{**run.plan.to_dict(), "steps": 1})
    run.train(task, max_physical_batch_size=64)
    for b, p in zip(before, model.parameters()):
        assert torch.allclose(b - p.detach(), torch.full_like(b, 1.0))  # lr 0.1 x 10: not clipped
