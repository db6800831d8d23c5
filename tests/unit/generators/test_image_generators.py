"""The Generator contract for every registered image generator, on tiny generated 8x8 images,
and the per-example (not per-copy) clipping of DPDM's noise multiplicity."""

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from opacus.optimizers import DPOptimizer
from safetensors.torch import load_file, save_file

from dpsynth.data.image_schema import ImageSchema
from dpsynth.data.images import ImageData, SyntheticImages
from dpsynth.errors import DpsynthError
from dpsynth.generators import REGISTRY
from dpsynth.generators.image.diffusion.dp_diffusion_image import build_unet, denoising_loss
from dpsynth.privacy.accountants import RDP_ORDERS
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.functional_grads import per_example_grads, set_grad_samples

torch.set_num_threads(1)

TINY = {
    "dp-diffusion-image": {"block_out_channels": (8, 16), "norm_num_groups": 4, "batch_size": 16, "epochs": 0.75,
                           "noise_multiplicity": 2, "max_physical_batch_size": 8, "sample_steps": 3,
                           "num_train_timesteps": 100, "device": "cpu"},
    "dp-gan-image": {"generator_channels": 8, "discriminator_channels": 8, "noise_dim": 8, "batch_size": 16,
                     "epochs": 1.0, "device": "cpu"},
    "dp-merf-image": {"generator_channels": 8, "noise_dim": 8, "n_frequencies": 64, "steps": 20, "batch_size": 8,
                      "device": "cpu"},
}
IMAGE_GENERATORS = sorted(n for n, cls in REGISTRY.items() if getattr(cls, "modality", "table") == "image")
SCHEMA = ImageSchema(height=8, width=8, channels=1, low=0, high=100, classes=("dark", "bright"), name="tiny")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 64)
    pixels = np.clip(rng.normal(30 + 40 * labels[:, None, None, None], 10, (64, 1, 8, 8)), 0, 100)
    return ImageData(SCHEMA.to_unit(pixels), labels.astype(np.int64), SCHEMA)


@pytest.fixture(scope="module", params=IMAGE_GENERATORS)
def fitted(request, data):
    name = request.param
    gen = REGISTRY[name](**TINY[name]).fit(data, budget=Budget(epsilon=3.0), rng=np.random.default_rng(1))
    return name, gen


def test_the_image_generators_are_registered():
    assert {"dp-diffusion-image", "dp-gan-image", "dp-merf-image"} <= set(IMAGE_GENERATORS)


def test_sample_shape_range_and_labels(fitted):
    name, gen = fitted
    syn = gen.sample(12, rng=np.random.default_rng(2))
    assert isinstance(syn, SyntheticImages) and syn.generator == name
    assert syn.images.shape == (12, 1, 8, 8) and syn.images.dtype == np.uint8
    assert syn.images.min() >= 0 and syn.images.max() <= 100
    assert set(syn.labels.tolist()) <= {0, 1}
    cond = gen.sample(7, conditions={"label": "bright"}, rng=np.random.default_rng(3))
    assert cond.labels.tolist() == [1] * 7
    assert gen.sample(3, conditions={"label": 0}, rng=np.random.default_rng(3)).labels.tolist() == [0] * 3
    with pytest.raises(DpsynthError, match="not a declared class"):
        gen.sample(2, conditions={"label": "grey"}, rng=np.random.default_rng(3))
    with pytest.raises(DpsynthError, match="only on the label"):
        gen.sample(2, conditions={"sex": "F"}, rng=np.random.default_rng(3))


def test_balanced_sample_has_equal_class_counts(fitted):
    """``balanced=True``: equal counts per class whatever the released frequencies (the remainder
    one each), labels shuffled; refused together with a one-class condition."""
    _, gen = fitted
    syn = gen.sample(11, rng=np.random.default_rng(4), balanced=True)
    assert np.bincount(syn.labels, minlength=2).tolist() == [6, 5]
    assert syn.labels.tolist() != sorted(syn.labels.tolist())  # shuffled, not class blocks
    again = gen.sample(11, rng=np.random.default_rng(4), balanced=True)
    assert np.array_equal(syn.labels, again.labels) and np.array_equal(syn.images, again.images)
    with pytest.raises(DpsynthError, match="class-balanced"):
        gen.sample(4, conditions={"label": 0}, rng=np.random.default_rng(4), balanced=True)


def test_state_dict_round_trip_through_safetensors(fitted, tmp_path):
    name, gen = fitted
    save_file(gen.state_dict(), tmp_path / "w.safetensors")
    again = REGISTRY[name](**gen.get_params()).load_state_dict(load_file(tmp_path / "w.safetensors"), schema=SCHEMA)
    a = gen.sample(6, rng=np.random.default_rng(5))
    b = again.sample(6, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_ledger_within_target_and_equal_to_opacus_rdp(fitted):
    name, gen = fitted
    ledger = gen.ledger_
    assert 0 < ledger.epsilon() <= 3.0 * (1 + 1e-9)
    acc = RDPAccountant()
    acc.history = [tuple(h) for h in ledger.gaussian_history()]
    assert ledger.epsilon() == pytest.approx(acc.get_epsilon(delta=ledger.delta, alphas=list(RDP_ORDERS)), rel=1e-9)
    dp_sgd = [e for e in ledger.entries if e.mechanism == "dp-sgd"]
    if name == "dp-merf-image":  # no DP-SGD: two Gaussian releases, the second calibrated to what is left
        assert not dp_sgd and [e.mechanism for e in ledger.entries] == ["gaussian", "gaussian"]
        assert ledger.epsilon() == pytest.approx(3.0, rel=0.01)
        return
    assert len(dp_sgd) == 1 and dp_sgd[0].steps == gen.dp_plan_["steps"]
    # opacus' own accountant saw exactly the steps the ledger charged
    sigma, q, steps = dp_sgd[0].gaussian_triple()
    assert sum(h[2] for h in gen.opacus_history_) == steps
    assert all(h[0] == pytest.approx(sigma) and h[1] == pytest.approx(q) for h in gen.opacus_history_)

@pytest.mark.parametrize("name", IMAGE_GENERATORS)
def test_non_private_reference_is_labelled(name, data):
    gen = REGISTRY[name](**TINY[name]).fit(data, budget=Budget.non_private_reference(), rng=np.random.default_rng(1))
    assert gen.ledger_.non_private and gen.sample(4, rng=np.random.default_rng(0)).images.shape == (4, 1, 8, 8)


def test_noise_multiplicity_is_one_example_per_image():
    """K noisy copies of an image give ONE per-example gradient (the gradient of their mean loss),
    and opacus clips those B gradients, not the B*K copies."""
    gen = torch.Generator().manual_seed(0)
    unet = build_unet(SCHEMA, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4)
    b, k = 3, 4
    x_t = torch.randn(b, k, 1, 8, 8, generator=gen)
    t = torch.randint(100, (b, k), generator=gen)
    y = torch.tensor([0, 1, 1]).view(b, 1).expand(b, k).contiguous()
    eps = torch.randn(b, k, 1, 8, 8, generator=gen)
    grads, losses = per_example_grads(unet, denoising_loss, x_t, t, y, eps)
    assert all(g.shape[0] == b for g in grads.values()) and losses.shape == (b,)
    for i in range(b):  # each row is the plain autograd gradient of that image's mean over K copies
        unet.zero_grad()
        pred = unet(x_t[i], t[i], class_labels=y[i], return_dict=False)[0]
        ((pred - eps[i]) ** 2).mean().backward()
        for name, p in unet.named_parameters():
            torch.testing.assert_close(grads[name][i], p.grad, rtol=1e-4, atol=1e-6)
    # opacus clips per example: summed = sum_i g_i * min(1, C / ||g_i||), B terms
    clip = 1e-3
    opt = DPOptimizer(torch.optim.SGD(unet.parameters(), lr=0.0), noise_multiplier=0.0, max_grad_norm=clip,
                      expected_batch_size=b, loss_reduction="sum")
    set_grad_samples(unet, grads)
    opt.pre_step()
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads.values()], dim=1).norm(dim=1)
    factor = (clip / (norms + 1e-6)).clamp(max=1.0)
    for name, p in unet.named_parameters():
        torch.testing.assert_close(p.grad, torch.einsum("i,i...", factor, grads[name]), rtol=1e-4, atol=1e-9)
    total = torch.cat([p.grad.flatten() for p in unet.parameters()]).norm()
    assert total <= b * clip * (1 + 1e-4)


def test_image_generator_refuses_tables(data):
    import pandas as pd

    from dpsynth.data.schema import Schema
    from dpsynth.data.table import TableData

    frame = pd.DataFrame({"a": [0, 1] * 10})
    table = TableData(frame, Schema.from_dict({"columns": [{"name": "a", "kind": "binary"}]}))
    with pytest.raises(DpsynthError, match="trains on images"):
        REGISTRY["dp-gan-image"](**TINY["dp-gan-image"]).fit(table, budget=Budget(epsilon=1.0),
                                                              rng=np.random.default_rng(0))


def test_classifier_free_guidance(data, tmp_path):
    """cond_drop trains a null class (one more class embedding); guided sampling keeps shape,
    range and labels, round-trips through safetensors, and spends the same ledger as plain
    conditioning (the label dropout does not touch the privacy analysis)."""
    from dpsynth.errors import ConfigError

    params = {**TINY["dp-diffusion-image"], "cond_drop": 0.2, "guidance_scale": 2.0}
    gen = REGISTRY["dp-diffusion-image"](**params).fit(data, budget=Budget(epsilon=3.0), rng=np.random.default_rng(1))
    plain = REGISTRY["dp-diffusion-image"](**TINY["dp-diffusion-image"]).fit(
        data, budget=Budget(epsilon=3.0), rng=np.random.default_rng(1))
    assert gen.unet_.class_embedding.num_embeddings == 3 and plain.unet_.class_embedding.num_embeddings == 2
    assert gen.ledger_.epsilon() == pytest.approx(plain.ledger_.epsilon())
    out = gen.sample(12, conditions={"label": 1}, rng=np.random.default_rng(2))
    assert out.images.shape == (12, 1, 8, 8) and (out.labels == 1).all()
    assert out.images.min() >= 0 and out.images.max() <= 100
    save_file(gen.state_dict(), str(tmp_path / "w.safetensors"))
    again = REGISTRY["dp-diffusion-image"](**gen.get_params()).load_state_dict(
        load_file(str(tmp_path / "w.safetensors")), schema=SCHEMA)
    a = again.sample(4, conditions={"label": 0}, rng=np.random.default_rng(3)).images
    b = gen.sample(4, conditions={"label": 0}, rng=np.random.default_rng(3)).images
    assert np.array_equal(a, b)
    with pytest.raises(ConfigError, match="cond_drop"):
        REGISTRY["dp-diffusion-image"](guidance_scale=2.0)
