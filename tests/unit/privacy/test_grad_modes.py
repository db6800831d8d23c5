"""grad_sample_mode: hooks, functorch, ew, ghost and bk release the same clipped-and-noised gradient."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from dpsynth.errors import ConfigError
from dpsynth.generators.tabular.gan.dp_gan import Discriminator
from dpsynth.generators.tabular.diffusion.denoiser import MLPDenoiser
from dpsynth.privacy.engine import DPSGDEngine, DPSGDPlan
from dpsynth.privacy.grad_modes import GRAD_SAMPLE_MODES, check_grad_sample_mode
from dpsynth.privacy.ledger import Ledger

B = 24


def _disc():
    torch.manual_seed(0)
    return Discriminator(in_dim=10, hidden=(16, 16), dropout=0.0)


def _denoiser():
    torch.manual_seed(0)
    return MLPDenoiser(data_dim=6, cond_dim=0, width=16, depth=1, time_dim=8)


def _data(kind):
    g = torch.Generator().manual_seed(1)
    if kind == "disc":
        return (torch.randn(B, 10, generator=g) * 3,)
    # dp-diffusion's shape: [batch, copies, dim], one example = all its copies
    return torch.randn(B, 3, 6, generator=g), torch.randint(0, 1000, (B, 3), generator=g)


def _per_example(kind, model, batch):
    if kind == "disc":
        logits = model(batch[0].requires_grad_(True))
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    x, t = batch
    return ((model(x, t) - x) ** 2).mean(dim=(1, 2))


def _one_step(kind, mode, *, noise, plain_backward=False, clip=0.05):
    """The gradient DP-SGD releases (clipped, summed, noised, averaged) on a fixed batch; noise
    drawn from a fixed seed."""
    model = _disc() if kind == "disc" else _denoiser()
    batch = _data(kind)
    ledger = Ledger(delta=1e-5, target_epsilon=1e9)
    plan = DPSGDPlan(sample_rate=0.5, steps=10, max_grad_norm=clip, noise_multiplier=noise)
    engine = DPSGDEngine(ledger=ledger, plan=plan, purpose="test")
    private, opt, _ = engine.make_private(module=model, optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
                                          dataset=TensorDataset(torch.zeros(2 * B, 1)),
                                          torch_rng=torch.Generator().manual_seed(0), grad_sample_mode=mode,
                                          noise_generator=torch.Generator().manual_seed(7))
    opt.expected_batch_size = B
    opt.zero_grad(set_to_none=True)
    per_example = _per_example(kind, private, batch)
    if plain_backward:
        per_example.mean().backward()  # the trap: no clipping happens in ghost mode
    else:
        engine.backward(per_example)
    assert opt.pre_step()  # what engine.step releases before the optimizer's update
    return [p.grad.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("kind", ["disc", "denoiser"])
@pytest.mark.parametrize("noise", [0.0, 1.0])
def test_modes_release_the_same_clipped_noised_gradient(kind, noise):
    ref = _one_step(kind, "hooks", noise=noise)
    clipped_norm = torch.sqrt(sum((u ** 2).sum() for u in ref)) * B
    if noise == 0.0:  # clipping is active: the summed clipped gradient is at most B * C
        assert clipped_norm <= B * 0.05 * (1 + 1e-5)
    for mode in ("functorch", "ew", "ghost", "bk"):
        other = _one_step(kind, mode, noise=noise)
        for a, b in zip(ref, other):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_plain_backward_in_ghost_mode_releases_an_unclipped_gradient():
    """Why engine.backward exists: ghost mode needs the loss routed through opacus' criterion."""
    routed = _one_step("disc", "ghost", noise=0.0, clip=0.005)
    plain = _one_step("disc", "ghost", noise=0.0, clip=0.005, plain_backward=True)
    routed_norm = torch.sqrt(sum((u ** 2).sum() for u in routed))
    plain_norm = torch.sqrt(sum((u ** 2).sum() for u in plain))
    assert routed_norm <= 0.005 * (1 + 1e-5)  # a mean of clipped gradients
    assert plain_norm > 5 * 0.005  # impossible for clipped gradients: the unclipped one, silently


def test_unknown_mode_is_a_config_error():
    assert check_grad_sample_mode("ghost") == "ghost"
    with pytest.raises(ConfigError, match="grad_sample_mode"):
        check_grad_sample_mode("fast")
    assert set(GRAD_SAMPLE_MODES) == {"hooks", "functorch", "ew", "ghost", "bk"}
