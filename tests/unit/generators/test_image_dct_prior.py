"""The DCT-Gaussian prior of dp-diffusion-image (prior_share, warmup_steps, sdedit_strength): its
releases in the ledger, what it keeps of the classes, its round trip, and the refusals."""

import math

import numpy as np
import pytest
import torch
from scipy.fft import dctn

from dpsynth.config import build_generator
from dpsynth.data.image_schema import ImageSchema
from dpsynth.data.images import ImageData
from dpsynth.errors import ConfigError
from dpsynth.generators.image.dct_prior import (
    RHO_SHARES,
    dct_coefficients,
    release_dct_prior,
)
from dpsynth.privacy.budget import Budget, zcdp_rho_for
from dpsynth.privacy.ledger import Ledger
from tests.conftest import dp_accounting_epsilon

torch.set_num_threads(1)
SCHEMA = ImageSchema(height=8, width=8, channels=1, low=0, high=100, classes=("dark", "bright"), name="tiny")
TINY = {"block_out_channels": (8, 16), "norm_num_groups": 4, "steps": 3, "batch_size": 16, "noise_multiplicity": 2,
        "max_physical_batch_size": 8, "sample_steps": 4, "num_train_timesteps": 100, "device": "cpu",
        "prior_share": 0.3, "prior_k": 4}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    pixels = np.clip(rng.normal(25 + 50 * labels[:, None, None, None], 8, (200, 1, 8, 8)), 0, 100)
    return ImageData(SCHEMA.to_unit(pixels), labels.astype(np.int64), SCHEMA)


def test_dct_coefficients_are_the_top_left_of_an_orthonormal_dct():
    x = np.random.default_rng(1).uniform(-1, 1, (3, 2, 8, 8))
    z = dct_coefficients(x, 8)
    assert np.allclose(np.linalg.norm(z, axis=1), np.linalg.norm(x.reshape(3, -1), axis=1))  # norms kept
    assert np.allclose(dct_coefficients(x, 3), dctn(x, axes=(2, 3), norm="ortho")[:, :, :3, :3].reshape(3, -1))


def test_without_noise_the_prior_holds_each_class_mean_image(data):
    counts = np.bincount(data.labels).astype(float)
    prior = release_dct_prior(data.images, data.labels, n_classes=2, class_counts=counts, k=8, clip=1.0, rho=None,
                              ledger=Ledger(delta=1e-5), rng=np.random.default_rng(0))
    z = dct_coefficients(data.images, 8)
    for c in (0, 1):
        assert np.allclose(prior.mean[c], z[data.labels == c].mean(0), atol=1e-9)
    samples = prior.sample(np.array([0] * 300 + [1] * 300), np.random.default_rng(2))
    assert samples.shape == (600, 1, 8, 8) and samples.min() >= -1 and samples.max() <= 1
    assert samples[:300].mean() == pytest.approx(data.images[data.labels == 0].mean(), abs=0.02)
    assert samples[300:].mean() == pytest.approx(data.images[data.labels == 1].mean(), abs=0.02)


def test_releases_are_charged_with_the_noise_their_share_calls_for(data):
    ledger = Ledger(delta=1e-5)
    rho = 0.2
    prior = release_dct_prior(data.images, data.labels, n_classes=2, class_counts=np.array([100.0, 100.0]), k=4,
                              clip=0.4, rho=rho, ledger=ledger, rng=np.random.default_rng(0))
    sigmas = [e.gaussian_triple()[0] for e in ledger.entries]
    assert sigmas == pytest.approx([math.sqrt(1 / (2 * s * rho)) for s in RHO_SHARES])
    r0 = math.sqrt(64)
    assert [e.params["l2_sensitivity"] for e in ledger.entries] == pytest.approx([r0, 0.4 * r0, (0.4 * r0) ** 2 / 4])
    # three Gaussian releases sharing rho compose to rho-zCDP: their RDP epsilon is below rho's conversion
    assert ledger.epsilon() <= rho + 2 * math.sqrt(rho * math.log(1e5)) + 1e-9
    # the DP prior still separates the classes at this budget (the "dark" class mean is darker)
    assert prior.sample(np.zeros(200, int), np.random.default_rng(1)).mean() < \
        prior.sample(np.ones(200, int), np.random.default_rng(1)).mean() - 0.5


def test_generator_spends_the_share_then_calibrates_dp_sgd_to_the_rest(data):
    gen = build_generator("dp-diffusion-image", {**TINY, "warmup_steps": 2, "sdedit_strength": 0.5})
    gen.fit(data, budget=Budget(epsilon=3.0), rng=np.random.default_rng(1))
    ledger = gen.ledger_
    prior_entries = [e for e in ledger.entries if e.purpose.startswith("DCT-Gaussian prior")]
    rho = 0.3 * zcdp_rho_for(3.0, ledger.delta)
    assert [e.gaussian_triple()[0] for e in prior_entries] == pytest.approx([math.sqrt(1 / (2 * s * rho))
                                                                            for s in RHO_SHARES])
    assert ledger.epsilon() <= 3.0 * (1 + 1e-9)
    # the reported epsilon equals an independent accountant's over every release and step
    assert ledger.epsilon() == pytest.approx(dp_accounting_epsilon(ledger.gaussian_history(), ledger.delta), rel=1e-6)
    assert gen.dp_plan_["dct_prior"] == {"share_of_rho": 0.3, "k": 4, "clip": 0.4, "warmup_steps": 2,
                                         "sdedit_strength": 0.5}
    images = gen.sample(40, rng=np.random.default_rng(3)).to_image_data().images
    assert images.shape == (40, 1, 8, 8) and np.isfinite(images).all()


def test_sdedit_from_a_late_timestep_keeps_the_prior_image(data):
    gen = build_generator("dp-diffusion-image", {**TINY, "sdedit_strength": 0.02, "sample_steps": 50})
    gen.fit(data, budget=Budget(epsilon=50.0), rng=np.random.default_rng(1))
    bright = gen.sample(100, conditions={"label": "bright"}, rng=np.random.default_rng(4)).to_image_data().images
    dark = gen.sample(100, conditions={"label": "dark"}, rng=np.random.default_rng(4)).to_image_data().images
    # one denoising step from t=0 of 100 barely moves the prior image: the class brightness survives
    assert bright.mean() - dark.mean() > 0.5


def test_state_dict_round_trip_keeps_the_prior(data):
    gen = build_generator("dp-diffusion-image", {**TINY, "sdedit_strength": 0.5})
    gen.fit(data, budget=Budget(epsilon=3.0), rng=np.random.default_rng(1))
    state = gen.state_dict()
    assert {"prior.mean", "prior.std", "prior.k"} <= set(state)
    again = build_generator("dp-diffusion-image", {**TINY, "sdedit_strength": 0.5}).load_state_dict(state, schema=SCHEMA)
    a = gen.sample(10, rng=np.random.default_rng(5)).to_image_data().images
    b = again.sample(10, rng=np.random.default_rng(5)).to_image_data().images
    assert np.array_equal(a, b)
    plain = {k: v for k, v in state.items() if not k.startswith("prior.")}
    with pytest.raises(ConfigError, match="has none"):
        build_generator("dp-diffusion-image", {**TINY, "sdedit_strength": 0.5}).load_state_dict(plain, schema=SCHEMA)


@pytest.mark.parametrize("params, message", [
    ({"prior_share": 0.0, "warmup_steps": 10}, "set prior_share"),
    ({"prior_share": 0.0, "sdedit_strength": 0.5}, "set prior_share"),
    ({"prior_share": 1.0}, "prior_share must be in"),
    ({"sdedit_strength": 0.0}, "sdedit_strength must be in"),
    ({"warmup_steps": -1}, "warmup_steps must be"),
    ({"prior_k": 0}, "prior_k must be >= 1"),
])
def test_bad_prior_settings_are_one_line_errors(params, message):
    with pytest.raises(ConfigError, match=message) as info:
        build_generator("dp-diffusion-image", {**TINY, **params})
    assert "\n" not in str(info.value)


def test_prior_k_is_capped_at_the_image_size(data):
    gen = build_generator("dp-diffusion-image", {**TINY, "prior_k": 9})
    gen.fit(data, budget=Budget(epsilon=3.0), rng=np.random.default_rng(1))
    assert gen.prior_.k == 8 and gen.dp_plan_["dct_prior"]["k"] == 8


@pytest.mark.parametrize("side, on", [(28, False), (64, True)])
def test_the_prior_is_on_by_default_when_the_planned_step_is_too_noisy(side, on):
    """PneumoniaMNIST's size (4,708) at epsilon 10 on a CPU: 28x28 plans 128 images per step (sigma /
    B 0.0057: off, as the size rules say); 64x64 only 16 (0.030: on). Read from the plan alone."""
    from dpsynth.generators.image.diffusion.prior_steps import PRIOR_ABOVE_NOISE_PER_IMAGE

    schema = ImageSchema(height=side, width=side, channels=1, low=0, high=255, classes=("normal", "pneumonia"),
                         name="pneumonia")
    gen = build_generator("dp-diffusion-image", {"device": "cpu"})
    budget, delta = Budget(epsilon=10.0), 1e-5
    plan = gen._plan_schedule(n=4708, schema=schema, budget=budget, ledger=Ledger(delta=delta), device="cpu")
    noise = gen._planned_noise_per_image(n=4708, budget=budget, delta=delta)
    assert noise == pytest.approx(plan.planning_noise_multiplier / plan.batch_size)
    assert plan.batch_size == (16 if on else 128)
    assert (noise > PRIOR_ABOVE_NOISE_PER_IMAGE) is on
    assert gen._resolved_prior_share(4708, 10.0, noise) == (0.25 if on else 0.0)
    assert gen._resolved_prior_share(4708, 10.0) == 0.0  # the size rules alone leave it off
    # a fixed batch and steps: the plan carries no noise, the rule computes it at the target epsilon
    fixed = build_generator("dp-diffusion-image", {"device": "cpu", "batch_size": plan.batch_size, "steps": 600})
    fixed._plan_schedule(n=4708, schema=schema, budget=budget, ledger=Ledger(delta=delta), device="cpu")
    assert fixed.schedule_.planning_noise_multiplier is None
    assert fixed._planned_noise_per_image(n=4708, budget=budget, delta=delta) == pytest.approx(noise, rel=0.02)
    assert fixed._planned_noise_per_image(n=4708, budget=Budget.non_private_reference(), delta=delta) == 0.0


def test_the_prior_is_on_by_default_below_the_size_or_size_x_epsilon_threshold_only(data):
    import math

    from dpsynth.generators.image.diffusion.prior_steps import (
        PRIOR_BELOW_N,
        PRIOR_BELOW_N_EPSILON,
    )

    defaults = {k: v for k, v in TINY.items() if k not in ("prior_share", "prior_k")}
    gen = build_generator("dp-diffusion-image", defaults)
    assert gen._resolved_prior_share(len(data), 10.0) == 0.25 and gen._resolved_prior_share(len(data), math.inf) == 0.25
    assert gen._resolved_prior_share(PRIOR_BELOW_N, 10.0) == 0.0 and gen._resolved_prior_share(PRIOR_BELOW_N, math.inf) == 0.0
    # PneumoniaMNIST (4,708 images): on at epsilon 1, off at epsilon 10
    assert gen._resolved_prior_share(4708, 1.0) == 0.25 and gen._resolved_prior_share(4708, 10.0) == 0.0
    assert gen._resolved_prior_share(PRIOR_BELOW_N_EPSILON, 1.0) == 0.0
    assert gen._resolved_prior_share(PRIOR_BELOW_N_EPSILON - 1, 1.0) == 0.25
    gen.fit(data, budget=Budget(epsilon=3.0), rng=np.random.default_rng(1))
    assert gen.dp_plan_["dct_prior"]["share_of_rho"] == 0.25 and gen._strength() == 0.5
    assert gen.dp_plan_["dct_prior"]["warmup_steps"] == round(5 / 3 * gen.dp_plan_["steps"]) == 5
    assert build_generator("dp-diffusion-image", {**defaults, "sdedit_strength": 0.7})._resolved_prior_share(10**6, 10.0) == 0.25
    off = build_generator("dp-diffusion-image", {**defaults, "prior_share": 0.0})
    off.fit(data, budget=Budget(epsilon=3.0), rng=np.random.default_rng(1))
    assert off.prior_ is None and off._strength() == 1.0 and "dct_prior" not in off.dp_plan_
    assert not any(e.purpose.startswith("DCT") for e in off.ledger_.entries)
