"""grad_sample_mode 'bk' (book-keeping clipping) releases the gradient opacus' hooks mode releases
(clipped per example, summed, noised from the same seed, averaged) on every DP-SGD generator's
network, and charges the ledger exactly as hooks mode does."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from dpsynth.data.image_schema import ImageSchema
from dpsynth.errors import ConfigError, PrivacyError
from dpsynth.generators.image.diffusion.dp_diffusion_image import build_unet, denoising_loss
from dpsynth.generators.image.gan.dp_gan_image import ImageDiscriminator
from dpsynth.generators.tabular.diffusion.denoiser import MLPDenoiser
from dpsynth.generators.tabular.gan.dp_gan import Discriminator
from dpsynth.privacy.bookkeeping import BookKeeping
from dpsynth.privacy.engine import DPSGDEngine, DPSGDPlan
from dpsynth.privacy.functional_grads import per_example_grads, set_grad_samples
from dpsynth.privacy.grad_modes import without_per_example
from dpsynth.privacy.ledger import Ledger

B = 12
SCHEMA = ImageSchema(height=8, width=8, channels=1, low=0, high=1, classes=("a", "b"), name="tiny")


def _net(kind):
    torch.manual_seed(0)
    if kind == "dp-gan":
        return Discriminator(in_dim=10, hidden=(16, 16), dropout=0.0)
    if kind == "dp-diffusion":  # 3 copies x width 16: ghost norms; 8 copies x width 4: explicit per-example norms
        return MLPDenoiser(data_dim=6, cond_dim=3, width=16, depth=1, time_dim=8)
    if kind == "dp-diffusion-wide-t":
        return MLPDenoiser(data_dim=3, cond_dim=0, width=4, depth=1, time_dim=4)
    if kind == "dp-gan-image":
        return ImageDiscriminator(n_classes=2, channels=4, shape=(1, 8, 8))
    return build_unet(SCHEMA, block_out_channels=(8, 8), layers_per_block=1, norm_num_groups=4)


def _batch(kind):
    g = torch.Generator().manual_seed(1)
    if kind == "dp-gan":
        return (torch.randn(B, 10, generator=g) * 3,)
    if kind == "dp-diffusion":  # dp-diffusion's layout: [batch, copies, dim]
        return torch.randn(B, 3, 6, generator=g), torch.randint(0, 1000, (B, 3), generator=g), torch.rand(B, 3, 3, generator=g)
    if kind == "dp-diffusion-wide-t":
        return torch.randn(B, 8, 3, generator=g), torch.randint(0, 1000, (B, 8), generator=g)
    if kind == "dp-gan-image":
        return (torch.randn(B, 3, 8, 8, generator=g),)
    k = 2  # noise multiplicity: each image's K noisy copies are ONE example
    return (torch.randn(B, k, 1, 8, 8, generator=g), torch.randint(0, 1000, (B, k), generator=g),
            torch.randint(0, 2, (B, k), generator=g), torch.randn(B, k, 1, 8, 8, generator=g))


def _losses(kind, model, batch):
    if kind in ("dp-gan", "dp-gan-image"):
        logits = model(batch[0].requires_grad_(True))
        return F.binary_cross_entropy_with_logits(logits.reshape(-1), torch.ones(B), reduction="none")
    if kind.startswith("dp-diffusion") and kind != "dp-diffusion-image":
        x, t, *cond = batch
        return ((model(x, t, *cond) - x) ** 2).mean(dim=(1, 2))
    x_t, t, y, eps = batch  # the UNet: example-major rows, one loss per image
    pred = model(x_t.flatten(0, 1), t.flatten(), class_labels=y.flatten(), return_dict=False)[0]
    return ((pred - eps.flatten(0, 1)) ** 2).flatten(1).mean(1).view(B, -1).mean(1)


def _release(kind, mode, *, noise, clip=0.05):
    """(the released gradient, the ledger's epsilon after that step)."""
    model = _net(kind)
    batch = _batch(kind)
    ledger = Ledger(delta=1e-5, target_epsilon=1e9)
    plan = DPSGDPlan(sample_rate=0.5, steps=10, max_grad_norm=clip, noise_multiplier=noise)
    engine = DPSGDEngine(ledger=ledger, plan=plan, purpose="test")
    private, opt, _ = engine.make_private(module=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
                                          dataset=TensorDataset(torch.zeros(2 * B, 1)),
                                          torch_rng=torch.Generator().manual_seed(0), grad_sample_mode=mode,
                                          noise_generator=torch.Generator().manual_seed(7))
    opt.expected_batch_size = B
    opt.zero_grad(set_to_none=True)
    engine.begin_batch()
    if mode == "no_op":  # dp-diffusion-image's default: torch.func over each image's K copies
        grads, losses = per_example_grads(model, denoising_loss, *batch)
        set_grad_samples(model, grads)
    else:
        engine.backward(_losses(kind, private, batch))
    if noise > 0:  # the engine's step: noise, update, ledger
        assert engine.step(opt)
    else:  # no noise means no finite epsilon: what the step would release, before the update
        assert opt.pre_step()
    assert engine.steps_taken == (1 if noise > 0 else 0)
    return [p.grad.detach().clone() for p in model.parameters()], ledger.epsilon() if noise > 0 else None


KINDS = ["dp-gan", "dp-diffusion", "dp-diffusion-wide-t", "dp-gan-image", "dp-diffusion-image"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("noise", [0.0, 1.0])
def test_bk_releases_the_hooks_gradient_and_charges_the_same(kind, noise):
    ref_mode = "no_op" if kind == "dp-diffusion-image" else "hooks"  # hooks would clip each copy
    ref, ref_eps = _release(kind, ref_mode, noise=noise)
    got, eps = _release(kind, "bk", noise=noise)
    if noise == 0.0:  # clipping is active: the mean of clipped gradients is at most C
        assert torch.sqrt(sum((u ** 2).sum() for u in ref)) <= 0.05 * (1 + 1e-5)
    for a, b in zip(ref, got):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    assert eps == ref_eps  # one charged step each (None: noise 0, no step charged)
    if noise > 0:
        assert 0 < eps < 1e9


def test_passes_without_real_rows_are_not_clipped_and_empty_batches_release_zero():
    model = _net("dp-gan")
    ledger = Ledger(delta=1e-5, target_epsilon=1e9)
    engine = DPSGDEngine(ledger=ledger, plan=DPSGDPlan(sample_rate=0.5, steps=10, max_grad_norm=0.05,
                                                       noise_multiplier=0.0), purpose="test")
    private, opt, _ = engine.make_private(module=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
                                          dataset=TensorDataset(torch.zeros(2 * B, 1)),
                                          torch_rng=torch.Generator().manual_seed(0), grad_sample_mode="bk")
    engine.begin_batch()
    with without_per_example(private) as plain:  # a GAN's fake rows: no record, no clipping
        plain(torch.randn(B, 10))
    assert engine.bookkeeping._calls == []
    engine.backward(torch.zeros(0))  # an empty Poisson batch
    assert all(torch.count_nonzero(p.grad) == 0 for p in model.parameters())


def test_shared_layer_and_unknown_layer_are_refused():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    keeper = BookKeeping(model, max_grad_norm=1.0, enabled=lambda: True)
    with pytest.raises(PrivacyError, match="ran twice"):
        model(torch.randn(3, 4))

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(4))

        def forward(self, x):
            return x * self.w

    keeper.remove()
    with pytest.raises(ConfigError, match="no per-example gradient for layer Scale"):
        BookKeeping(Scale(), max_grad_norm=1.0, enabled=lambda: True)
