"""dp-gan-image with the DP DCT prior (prior_share, warmup_steps): the prior's releases are charged
before the discriminator's DP-SGD is calibrated to the rest, the warm-up on prior samples costs
nothing and teaches the generator the classes, and bad settings are one-line errors."""

import math

import numpy as np
import pytest
import torch

from dpsynth.config import build_generator
from dpsynth.errors import ConfigError
from dpsynth.generators.image.dct_prior import RHO_SHARES
from dpsynth.privacy.budget import Budget, zcdp_rho_for
from tests.conftest import dp_accounting_epsilon

torch.set_num_threads(1)
TINY = {"generator_channels": 16, "discriminator_channels": 8, "noise_dim": 8, "steps": 3, "batch_size": 32,
        "max_physical_batch_size": 32, "device": "cpu", "prior_k": 4}


def test_prior_is_charged_then_dp_sgd_gets_the_rest_and_epsilon_matches_an_independent_accountant(two_class_images):
    gen = build_generator("dp-gan-image", {**TINY, "prior_share": 0.3, "warmup_steps": 2})
    gen.fit(two_class_images, budget=Budget(epsilon=3.0), rng=np.random.default_rng(1))
    ledger = gen.ledger_
    prior = [e for e in ledger.entries if e.purpose.startswith("DCT-Gaussian prior")]
    rho = 0.3 * zcdp_rho_for(3.0, ledger.delta)
    assert [e.gaussian_triple()[0] for e in prior] == pytest.approx([math.sqrt(1 / (2 * s * rho)) for s in RHO_SHARES])
    assert ledger.epsilon() <= 3.0 * (1 + 1e-9)
    # rel 1e-5: dp_accounting drops a few fractional orders it cannot converge on at this sigma
    assert ledger.epsilon() == pytest.approx(dp_accounting_epsilon(ledger.gaussian_history(), ledger.delta), rel=1e-5)
    assert gen.dp_plan_["dct_prior"] == {"share_of_rho": 0.3, "k": 4, "clip": 0.4, "warmup_steps": 2}
    images = gen.sample(20, rng=np.random.default_rng(3)).to_image_data().images
    assert images.shape == (20, 1, 8, 8) and np.isfinite(images).all()


def test_off_by_default_and_then_nothing_is_charged_for_a_prior(two_class_images):
    gen = build_generator("dp-gan-image", TINY)
    gen.fit(two_class_images, budget=Budget(epsilon=3.0), rng=np.random.default_rng(1))
    assert gen.prior_ is None and "dct_prior" not in gen.dp_plan_
    assert not any(e.purpose.startswith("DCT") for e in gen.ledger_.entries)


def test_the_warm_up_alone_teaches_the_generator_each_class_brightness(two_class_images):
    # a large budget and 0 DP-SGD influence on the comparison: the generator after a long warm-up
    # on prior samples draws "bright" images brighter than "dark" ones, as the real classes are
    gen = build_generator("dp-gan-image", {**TINY, "prior_share": 0.5, "warmup_steps": 300, "steps": 1})
    gen.fit(two_class_images, budget=Budget(epsilon=50.0), rng=np.random.default_rng(1))
    dark = gen.sample(200, rng=np.random.default_rng(4), conditions={"label": "dark"}).to_image_data().images
    bright = gen.sample(200, rng=np.random.default_rng(4), conditions={"label": "bright"}).to_image_data().images
    real = {c: two_class_images.images[two_class_images.labels == c].mean() for c in (0, 1)}
    assert bright.mean() - dark.mean() > 0.5 * (real[1] - real[0])


@pytest.mark.parametrize("params, message", [
    ({"warmup_steps": 10}, "set prior_share"),
    ({"prior_share": 1.0}, "prior_share must be in"),
    ({"prior_share": 0.2, "warmup_steps": -1}, "warmup_steps must be"),
    ({"prior_k": 0}, "prior_k must be >= 1"),
])
def test_bad_prior_settings_are_one_line_errors(params, message):
    with pytest.raises(ConfigError, match=message) as info:
        build_generator("dp-gan-image", {**TINY, **params})
    assert "\n" not in str(info.value)
