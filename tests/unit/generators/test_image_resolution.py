"""The same image generators at 64x64 (the clinical-resolution path): a couple of DP-SGD steps,
planned by the image schedule (64px gets smaller batches on a CPU), and sampling at that size."""

import numpy as np
import pytest

from dpsynth.config import build_generator
from dpsynth.data.image_schema import ImageSchema
from dpsynth.data.images import ImageData
from dpsynth.generators.image.pretrain import convert_images
from dpsynth.privacy.budget import Budget

SCHEMA = ImageSchema(height=64, width=64, channels=1, low=0, high=255, classes=("normal", "pneumonia"), name="x64")
PARAMS = {
    "dp-diffusion-image": {"block_out_channels": (8, 8, 8), "norm_num_groups": 4, "num_train_timesteps": 50,
                           "sample_steps": 2, "max_physical_batch_size": 8, "device": "cpu", "steps": 2},
    "dp-gan-image": {"generator_channels": 8, "discriminator_channels": 8, "noise_dim": 8, "device": "cpu", "steps": 2},
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_two_dp_steps_at_64px(name):
    rng = np.random.default_rng(0)
    small = rng.uniform(-1, 1, (48, 1, 28, 28)).astype(np.float32)
    images = convert_images(small, channels=1, height=64, width=64)  # data-independent resize of a 28px set
    data = ImageData(images, rng.integers(0, 2, 48).astype(np.int64), SCHEMA)
    model = build_generator(name, PARAMS[name])
    model.fit(data, budget=Budget(epsilon=10.0), rng=rng)
    plan = model.dp_plan_["schedule"]
    # the CPU cap at 64x64: 16 images x 2 noise levels (diffusion); 32 single images, then <= n/2 = 24 (GAN)
    assert plan["steps"] == 2 and plan["batch_size"] == {"dp-diffusion-image": 16, "dp-gan-image": 24}[name]
    assert model.dp_plan_["steps"] == 2 and 0 < model.ledger_.epsilon() <= 10.0
    out = model.sample(4, rng=rng)
    assert out.images.shape == (4, 1, 64, 64) and out.images.dtype == np.uint8
