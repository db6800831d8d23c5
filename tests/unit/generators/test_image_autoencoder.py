"""Latent DP diffusion: the public autoencoder (its folder, that it learns, its refusals) and
dp-diffusion-image trained on its latents (the ledger, the epsilon, decoding, save and load)."""

import json

import numpy as np
import pytest
import torch

from dpsynth.config import build_generator
from dpsynth.data.image_schema import ImageSchema
from dpsynth.data.images import ImageData
from dpsynth.errors import ConfigError
from dpsynth.generators.image.autoencoder import load_autoencoder, pretrain_autoencoder
from dpsynth.privacy.budget import Budget
from tests.conftest import dp_accounting_epsilon

torch.set_num_threads(1)
SCHEMA = ImageSchema(height=16, width=16, channels=1, low=0, high=255, classes=("dark", "bright"), name="private")
TINY = {"block_out_channels": (8, 8), "norm_num_groups": 4, "noise_multiplicity": 1, "num_train_timesteps": 50,
        "sample_steps": 2, "max_physical_batch_size": 16, "steps": 4, "batch_size": 16, "device": "cpu"}


def blobs(rng, n):
    """Grey 16x16 images: a bright square at a random place on a dark ground (uint8, N x 16 x 16)."""
    out = np.full((n, 16, 16), 30, np.uint8)
    for img, (r, c) in zip(out, rng.integers(0, 10, (n, 2))):
        img[r:r + 6, c:c + 6] = 220
    return out


@pytest.fixture(scope="module")
def autoencoder(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("public")
    np.savez(folder / "toypublic.npz", train_images=blobs(rng, 64), train_labels=np.zeros((64, 1), np.uint8))
    return pretrain_autoencoder(public=[folder / "toypublic.npz"], shape=(1, 16, 16), out=folder / "ae", steps=150,
                                batch_size=16, seed=0, licences={"toypublic": "CC0-1.0"})


@pytest.fixture(scope="module")
def private():
    rng = np.random.default_rng(1)
    pixels = blobs(rng, 120).astype(np.float64)[:, None]
    labels = (pixels.reshape(120, -1).argmax(1) % 16 >= 8).astype(np.int64)  # bright square on the right or left
    return ImageData(SCHEMA.to_unit(pixels), labels, SCHEMA)


def test_the_folder_has_weights_provenance_a_datasheet_and_reconstructions(autoencoder):
    info = json.loads((autoencoder / "autoencoder.json").read_text())
    assert info["shape"] == [1, 16, 16] and info["latent_shape"] == [4, 4, 4] and info["n_images"] == 64
    assert info["sources"][0]["licence"] == "CC0-1.0" and "no private data" in info["privacy"]
    assert (autoencoder / "weights.safetensors").is_file() and (autoencoder / "reconstructions.png").is_file()
    assert "public images only" in (autoencoder / "DATASHEET.md").read_text()


def test_the_autoencoder_reconstructs_better_than_the_mean_image(autoencoder):
    """A trivial baseline: every image replaced by the mean image. 150 steps must beat it clearly."""
    images = torch.from_numpy(blobs(np.random.default_rng(7), 64).astype(np.float32)[:, None] / 127.5 - 1.0)
    ae = load_autoencoder(autoencoder)
    latents = ae.encode(images)
    assert latents.shape == (64, 4, 4, 4)  # standardised per channel by the public statistics: near 0 and 1
    assert latents.mean((0, 2, 3)).abs().max() < 0.5 and ((latents.std((0, 2, 3)) - 1).abs() < 0.5).all()
    mse = float(((ae.decode(latents) - images) ** 2).mean())
    baseline = float(((images - images.mean(0)) ** 2).mean())
    assert mse < 0.5 * baseline, (mse, baseline)


def test_latent_dp_diffusion_spends_what_the_accountant_says_and_decodes_pixels(autoencoder, private):
    gen = build_generator("dp-diffusion-image", {**TINY, "autoencoder": str(autoencoder), "prior_share": 0.0})
    gen.fit(private, budget=Budget(epsilon=4.0), rng=np.random.default_rng(0))
    public = [e for e in gen.ledger_.entries if e.mechanism == "public"]
    assert len(public) == 1 and "public autoencoder" in public[0].purpose
    assert not any(e.purpose.startswith("DCT") for e in gen.ledger_.entries)  # the prior switched off
    (sgd,) = [e for e in gen.ledger_.entries if e.mechanism == "dp-sgd"]
    assert gen.unet_.config.in_channels == 4 and tuple(gen.unet_.config.sample_size) == (4, 4)
    assert gen.ledger_.epsilon() <= 4.0
    history = gen.ledger_.gaussian_history()
    # rel 1e-4: dp_accounting drops a few low orders here (its series does not converge at sigma 0.9)
    assert gen.ledger_.epsilon() == pytest.approx(dp_accounting_epsilon(history, gen.ledger_.delta), rel=1e-4)
    # DDIM clips the predicted clean latent to the public range (pixels: to [-1, 1])
    assert gen._scheduler().config.clip_sample_range == gen.autoencoder_.clip == load_autoencoder(autoencoder).clip > 1
    synth = gen.sample(6, rng=np.random.default_rng(3))
    assert synth.images.shape == (6, 1, 16, 16)
    # a saved model carries its decoder: the same draw after a state round trip, without the folder
    again = build_generator("dp-diffusion-image", {**TINY, "prior_share": 0.0}).load_state_dict(gen.state_dict(),
                                                                                                schema=SCHEMA)
    assert np.array_equal(again.sample(6, rng=np.random.default_rng(3)).images, synth.images)
    assert sgd.steps == 4


def test_the_pixel_prior_feeds_the_latent_unet_through_the_encoder(autoencoder, private):
    """The DCT prior is released on pixels (through the ledger); its samples are encoded for the
    warm-up and the SDEdit start, and the run spends what the accountant says."""
    gen = build_generator("dp-diffusion-image", {**TINY, "autoencoder": str(autoencoder), "prior_share": 0.25,
                                                 "prior_k": 4, "warmup_steps": 3})
    seen = []
    encode = gen._to_model_space
    gen._to_model_space = lambda x: seen.append(tuple(x.shape)) or encode(x)
    gen.fit(private, budget=Budget(epsilon=4.0), rng=np.random.default_rng(0))
    assert {e.purpose.split(":")[0] for e in gen.ledger_.entries} >= {"DCT-Gaussian prior", "UNet DP-SGD (noise multiplicity)"}
    history = gen.ledger_.gaussian_history()
    assert gen.ledger_.epsilon() == pytest.approx(dp_accounting_epsilon(history, gen.ledger_.delta), rel=1e-4)
    assert gen.ledger_.epsilon() <= 4.0
    warm = [s for s in seen if s[1:] == (1, 16, 16)]  # pixel prior samples: 3 warm-up batches + the private set
    assert len(warm) == 4 and gen._strength() == 0.5
    synth = gen.sample(5, rng=np.random.default_rng(2))  # SDEdit starts from an encoded prior image
    assert synth.images.shape == (5, 1, 16, 16) and len(seen) == 5


def test_latent_mode_switches_the_prior_on_by_default(autoencoder, private):
    """No prior_share: the latent plan's step is quiet and the set is not small, yet the rule turns
    the prior on because an autoencoder is set (the latent UNet alone collapsed on validation)."""
    latent = build_generator("dp-diffusion-image", {**TINY, "autoencoder": str(autoencoder)})
    pixel = build_generator("dp-diffusion-image", dict(TINY))
    for gen in (latent, pixel):  # the size rules and the noise rule alone say off
        assert gen._resolved_prior_share(100_000, 10.0, 0.001) == (0.25 if gen is latent else 0.0)
    latent.fit(private, budget=Budget(epsilon=4.0), rng=np.random.default_rng(0))
    assert latent.prior_share_ == 0.25 and latent.dp_plan_["dct_prior"]["share_of_rho"] == 0.25
    assert any(e.purpose.startswith("DCT-Gaussian prior") for e in latent.ledger_.entries)
    assert latent.ledger_.epsilon() <= 4.0


def test_latent_mode_refuses_what_it_cannot_do_in_one_line(autoencoder, private, tmp_path):
    with pytest.raises(ConfigError, match="autoencoder") as err:
        build_generator("dp-diffusion-image", {**TINY, "autoencoder": str(autoencoder), "init": str(tmp_path)})
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="not a public autoencoder"):
        build_generator("dp-diffusion-image", {**TINY, "autoencoder": str(tmp_path)}).fit(
            private, budget=Budget(epsilon=4.0), rng=np.random.default_rng(0))
    wrong = ImageSchema(height=8, width=8, channels=1, low=0, high=255, classes=("a", "b"), name="small")
    small = ImageData(np.zeros((40, 1, 8, 8), np.float32), np.arange(40) % 2, wrong)
    with pytest.raises(ConfigError, match=r"trained at C,H,W=\(1, 16, 16\)"):
        build_generator("dp-diffusion-image", {**TINY, "autoencoder": str(autoencoder)}).fit(
            small, budget=Budget(epsilon=4.0), rng=np.random.default_rng(0))


def test_pretraining_a_pixel_checkpoint_refuses_a_latent_config(autoencoder, tmp_path):
    from dpsynth.generators.image.pretrain import pretrain_image_generator

    with pytest.raises(ConfigError, match="latents is not supported"):
        pretrain_image_generator(generator="dp-diffusion-image", public=[autoencoder / "weights.safetensors"],
                                 shape=(1, 16, 16), out=tmp_path / "ckpt", steps=1, batch_size=4,
                                 params={**TINY, "autoencoder": str(autoencoder)})
    assert not (tmp_path / "ckpt").exists()
