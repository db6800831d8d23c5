"""Public pretraining then DP fine-tuning: conversion of public images, the checkpoint and its
datasheet, the copy into the fine-tuned network, the ledger's public entry, and the refusals."""

import json

import numpy as np
import pytest
import torch

from dpsynth.config import build_generator
from dpsynth.data.image_schema import ImageSchema
from dpsynth.data.images import ImageData
from dpsynth.errors import ConfigError
from dpsynth.generators.image.diffusion.dp_diffusion_image import build_unet
from dpsynth.generators.image.pretrain import convert_images, load_pretrained, pretrain_image_generator
from dpsynth.privacy.budget import Budget

TINY = {"block_out_channels": (8, 8), "norm_num_groups": 4, "noise_multiplicity": 1, "num_train_timesteps": 50,
        "sample_steps": 2, "max_physical_batch_size": 8, "device": "cpu"}
SCHEMA = ImageSchema(height=8, width=8, channels=1, low=0, high=255, classes=("a", "b", "c"), name="private")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("public")
    src = folder / "toypublic.npz"  # an RGB 16x16 "public" set with 2 classes
    np.savez(src, train_images=rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8),
             train_labels=rng.integers(0, 2, (20, 1)), test_images=rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8),
             test_labels=rng.integers(0, 2, (6, 1)))
    out = pretrain_image_generator(generator="dp-diffusion-image", public=[src], shape=(1, 8, 8), out=folder / "ckpt",
                                   steps=2, batch_size=4, params=TINY, licences={"toypublic": "CC0-1.0"})
    return out


def test_public_images_are_converted_by_fixed_rules():
    rgb = np.zeros((2, 3, 16, 16), np.float32)
    rgb[:, 0] = 1.0  # pure red -> BT.601 luma 0.299 on the [-1, 1] scale: 0.299 * 1 + 0.701 * 0 ... of unit values
    grey = convert_images(rgb, channels=1, height=8, width=8)
    assert grey.shape == (2, 1, 8, 8) and np.allclose(grey, 0.299)
    assert convert_images(grey, channels=3, height=64, width=64).shape == (2, 3, 64, 64)


def test_checkpoint_has_weights_provenance_and_a_datasheet(checkpoint):
    info = json.loads((checkpoint / "pretrain.json").read_text())
    assert info["n_images"] == 26 and info["shape"] == [1, 8, 8] and info["steps"] == 2
    assert info["sources"][0]["licence"] == "CC0-1.0" and len(info["sources"][0]["sha256"]) == 64
    assert info["classes"] == ["toypublic:0", "toypublic:1"]
    sheet = (checkpoint / "DATASHEET.md").read_text()
    assert "public images only" in sheet and "must use the same): block_out_channels=[8, 8], layers_per_block=" in sheet
    from PIL import Image

    grid = Image.open(checkpoint / "samples.png")  # one row of 10 tiles per public class, with its name
    assert grid.size == (160 + 10 * (56 + 2) + 2, 18 + 2 * (56 + 2) + 2) and "samples.png" in sheet


def test_pretraining_fits_no_dp_prior_even_on_a_small_public_set(tmp_path):
    """26 public images is below the size where a private fit gets the DCT prior; pretraining never does
    (the checkpoint is the network alone, and samples.png shows what that network draws)."""
    rng = np.random.default_rng(1)
    src = tmp_path / "toypublic.npz"
    np.savez(src, train_images=rng.integers(0, 256, (26, 8, 8), dtype=np.uint8), train_labels=rng.integers(0, 2, (26, 1)))
    out = pretrain_image_generator(generator="dp-diffusion-image", public=[src], shape=(1, 8, 8), out=tmp_path / "ckpt",
                                   steps=2, batch_size=4, params={**TINY, "warmup_steps": 5, "sdedit_strength": 0.5},
                                   licences={"toypublic": "CC0-1.0"})
    params = json.loads((out / "pretrain.json").read_text())["params"]
    assert params["prior_share"] == 0.0 and params["warmup_steps"] is None and params["sdedit_strength"] is None


def test_fine_tuning_starts_from_the_checkpoint_and_the_ledger_says_public(checkpoint):
    from safetensors.torch import load_file

    unet = build_unet(SCHEMA, block_out_channels=(8, 8), layers_per_block=1, norm_num_groups=4)
    params = build_generator("dp-diffusion-image", TINY).get_params()
    info = load_pretrained(unet, checkpoint, generator="dp-diffusion-image", params=params, shape=(1, 8, 8))
    saved = load_file(str(checkpoint / "weights.safetensors"))
    assert torch.equal(unet.state_dict()["conv_in.weight"], saved["unet.conv_in.weight"])
    emb = unet.state_dict()["class_embedding.weight"]  # 3 private classes, 2 public: rows 0-1 copied
    assert info["partial_tensors"] == ["class_embedding.weight"]
    assert torch.equal(emb[:2], saved["unet.class_embedding.weight"]) and not torch.equal(emb[2], emb[0])

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 32)
    data = ImageData(SCHEMA.to_unit(rng.integers(0, 256, (32, 1, 8, 8))), labels.astype(np.int64), SCHEMA)
    model = build_generator("dp-diffusion-image", {**TINY, "steps": 2, "batch_size": 8, "init": str(checkpoint)})
    budget = Budget(epsilon=5.0)
    model.fit(data, budget=budget, rng=np.random.default_rng(0))
    public = [e for e in model.ledger_.entries if e.mechanism == "public"]
    assert len(public) == 1 and public[0].params["sources"][0]["file"] == "toypublic.npz"
    assert public[0].params["epsilon"] == 0.0 and 0 < model.ledger_.epsilon() <= 5.0
    assert not model.ledger_.non_private
    assert model.sample(3, rng=np.random.default_rng(2)).images.shape == (3, 1, 8, 8)


def test_refusals_name_the_problem(checkpoint, tmp_path):
    unet = build_unet(SCHEMA, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4)
    params = {**build_generator("dp-diffusion-image", TINY).get_params(), "block_out_channels": [8, 16]}
    with pytest.raises(ConfigError, match="block_out_channels"):
        load_pretrained(unet, checkpoint, generator="dp-diffusion-image", params=params, shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="C,H,W"):
        load_pretrained(unet, checkpoint, generator="dp-diffusion-image", params=params, shape=(3, 8, 8))
    src = tmp_path / "mystery.npz"
    np.savez(src, train_images=np.zeros((4, 8, 8), np.uint8), train_labels=np.zeros((4, 1), np.uint8))
    with pytest.raises(ConfigError, match="unknown licence"):
        pretrain_image_generator(generator="dp-diffusion-image", public=[src], shape=(1, 8, 8), out=tmp_path / "x",
                                 steps=1, batch_size=2, params=TINY)


@pytest.mark.parametrize("mode", ["bk", "vmap"])
def test_conditioning_only_fine_tuning_moves_only_the_conditioning_weights(checkpoint, mode):
    """trainable='conditioning': the frozen convolutions keep their public values exactly, the
    conditioning path moves, and the ledger charges the same epsilon as a full fine-tune."""
    from safetensors.torch import load_file

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 32)
    data = ImageData(SCHEMA.to_unit(rng.integers(0, 256, (32, 1, 8, 8))), labels.astype(np.int64), SCHEMA)
    common = {**TINY, "steps": 3, "batch_size": 8, "init": str(checkpoint), "grad_sample_mode": mode,
              "ema_decay": 0.0}
    part = build_generator("dp-diffusion-image", {**common, "trainable": "conditioning"})
    part.fit(data, budget=Budget(epsilon=5.0), rng=np.random.default_rng(0))
    full = build_generator("dp-diffusion-image", common).fit(data, budget=Budget(epsilon=5.0),
                                                              rng=np.random.default_rng(0))
    saved = {k[len("unet."):]: v for k, v in load_file(str(checkpoint / "weights.safetensors")).items()}
    after = part.unet_.state_dict()
    assert torch.equal(after["conv_in.weight"], saved["conv_in.weight"])
    assert torch.equal(after["down_blocks.0.resnets.0.conv1.weight"], saved["down_blocks.0.resnets.0.conv1.weight"])
    assert not torch.equal(after["down_blocks.0.resnets.0.time_emb_proj.weight"],
                           saved["down_blocks.0.resnets.0.time_emb_proj.weight"])
    assert not torch.equal(full.unet_.state_dict()["conv_in.weight"], saved["conv_in.weight"])
    trained, total = part.trained_parameters_
    assert part.dp_plan_["trained_parameters"] == trained and 0 < trained < total / 2
    assert part.ledger_.epsilon() == pytest.approx(full.ledger_.epsilon())


def test_conditioning_only_needs_a_public_checkpoint():
    with pytest.raises(ConfigError, match="trainable='conditioning'.*init"):
        build_generator("dp-diffusion-image", {**TINY, "trainable": "conditioning"})
    with pytest.raises(ConfigError, match="trainable must be one of"):
        build_generator("dp-diffusion-image", {**TINY, "trainable": "convs", "init": "x"})


GAN_NET = {"noise_dim": 8, "generator_channels": 16, "device": "cpu"}


@pytest.fixture(scope="module")
def gan_checkpoint(tmp_path_factory):
    rng = np.random.default_rng(4)
    folder = tmp_path_factory.mktemp("public_gan")
    src = folder / "toypublic.npz"
    np.savez(src, train_images=rng.integers(0, 256, (24, 8, 8), dtype=np.uint8), train_labels=rng.integers(0, 2, (24, 1)))
    return pretrain_image_generator(generator="dp-gan-image", public=[src], shape=(1, 8, 8), out=folder / "ckpt",
                                    steps=2, batch_size=4, params={**GAN_NET, "discriminator_channels": 8},
                                    licences={"toypublic": "CC0-1.0"})


def test_dp_merf_image_starts_from_a_public_dp_gan_image_generator(gan_checkpoint):
    """The same generator network: every tensor is copied (the label columns of the first layer for
    the classes both have), the ledger records the public sources at epsilon 0, and the private
    release is charged exactly as without the checkpoint."""
    from safetensors.torch import load_file

    from tests.conftest import dp_accounting_epsilon

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 40)
    data = ImageData(SCHEMA.to_unit(rng.integers(0, 256, (40, 1, 8, 8))), labels.astype(np.int64), SCHEMA)
    merf = {**GAN_NET, "n_frequencies": 20, "steps": 1, "batch_size": 4, "lr": 1e-12}  # lr ~0: weights stay put
    started = build_generator("dp-merf-image", {**merf, "init": str(gan_checkpoint)})
    started.fit(data, budget=Budget(epsilon=2.0), rng=np.random.default_rng(0))
    fresh = build_generator("dp-merf-image", merf).fit(data, budget=Budget(epsilon=2.0), rng=np.random.default_rng(0))
    saved = {k[len("generator."):]: v for k, v in load_file(str(gan_checkpoint / "weights.safetensors")).items()}
    after = started.generator_.state_dict()
    torch.testing.assert_close(after["body.3.weight"], saved["body.3.weight"], rtol=0, atol=1e-6)
    assert not torch.allclose(fresh.generator_.state_dict()["body.3.weight"], saved["body.3.weight"])
    # fc input = noise (8) + one-hot label (3 private classes; the public set had 2): 10 columns copied
    torch.testing.assert_close(after["fc.weight"][:, :10], saved["fc.weight"][:, :10], rtol=0, atol=1e-6)
    public = [e for e in started.ledger_.entries if e.mechanism == "public"]
    assert len(public) == 1 and public[0].params["sources"][0]["licence"] == "CC0-1.0"
    assert started.ledger_.epsilon() == pytest.approx(fresh.ledger_.epsilon(), rel=1e-12)
    assert started.ledger_.epsilon() == pytest.approx(
        dp_accounting_epsilon(started.ledger_.gaussian_history(), started.ledger_.delta), rel=1e-5)


def test_dp_merf_image_refuses_a_checkpoint_it_cannot_start_from(gan_checkpoint, checkpoint):
    rng = np.random.default_rng(6)
    data = ImageData(SCHEMA.to_unit(rng.integers(0, 256, (12, 1, 8, 8))), rng.integers(0, 3, 12), SCHEMA)
    merf = {**GAN_NET, "n_frequencies": 20, "steps": 1, "batch_size": 2}
    with pytest.raises(ConfigError, match="noise_dim=8 in the checkpoint but 16 in this run"):
        build_generator("dp-merf-image", {**merf, "noise_dim": 16, "init": str(gan_checkpoint)}).fit(
            data, budget=Budget(epsilon=2.0), rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="pretrained for dp-diffusion-image, not dp-merf-image"):
        build_generator("dp-merf-image", {**merf, "init": str(checkpoint)}).fit(
            data, budget=Budget(epsilon=2.0), rng=np.random.default_rng(0))


def test_dp_merf_image_pretrains_on_public_images_and_starts_from_its_own_checkpoint(tmp_path):
    rng = np.random.default_rng(7)
    src = tmp_path / "toypublic.npz"
    np.savez(src, train_images=rng.integers(0, 256, (16, 8, 8), dtype=np.uint8), train_labels=rng.integers(0, 2, (16, 1)))
    ckpt = pretrain_image_generator(generator="dp-merf-image", public=[src], shape=(1, 8, 8), out=tmp_path / "ckpt",
                                    steps=2, batch_size=4, params={**GAN_NET, "n_frequencies": 20},
                                    licences={"toypublic": "CC0-1.0"})
    info = json.loads((ckpt / "pretrain.json").read_text())
    assert info["generator"] == "dp-merf-image" and "noise_dim=8, generator_channels=16" in (ckpt / "DATASHEET.md").read_text()
    data = ImageData(SCHEMA.to_unit(rng.integers(0, 256, (12, 1, 8, 8))), rng.integers(0, 3, 12), SCHEMA)
    model = build_generator("dp-merf-image", {**GAN_NET, "n_frequencies": 20, "steps": 1, "batch_size": 2,
                                              "init": str(ckpt)}).fit(data, budget=Budget(epsilon=2.0),
                                                                      rng=np.random.default_rng(0))
    assert [e.mechanism for e in model.ledger_.entries][0] == "public" and 0 < model.ledger_.epsilon() <= 2.0
