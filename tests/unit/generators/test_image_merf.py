"""dp-merf-image: the feature map has norm 1 (the sensitivity argument), the one embedding release
is calibrated so that the ledger's total is the target (checked with an accountant independent of
opacus), the noise it adds has the calibrated size, the generator learns the classes from the
noisy target, and bad settings are one-line errors."""

import math

import numpy as np
import pytest
import torch

from dpsynth.config import build_generator
from dpsynth.data.image_schema import ImageSchema
from dpsynth.data.images import ImageData
from dpsynth.errors import ConfigError
from dpsynth.generators.image.gan.dp_merf_image import (COARSE_RESOLUTION, FINE_RESOLUTION, MAX_FREQUENCIES,
                                                        MAX_NOISE_NORM, MIN_FREQUENCIES, RandomFourierFeatures,
                                                        planned_frequencies, planned_resolution)
from dpsynth.privacy.budget import Budget
from tests.conftest import dp_accounting_epsilon

torch.set_num_threads(1)
TINY = {"generator_channels": 16, "noise_dim": 8, "n_frequencies": 200, "steps": 300, "batch_size": 32,
        "device": "cpu"}


@pytest.fixture(scope="module")
def fitted(two_class_images):
    return build_generator("dp-merf-image", TINY).fit(two_class_images, budget=Budget(epsilon=3.0), rng=np.random.default_rng(1))


def test_every_image_has_a_feature_vector_of_norm_one():
    feats = RandomFourierFeatures(dim=64, n_frequencies=30, length_scales=(0.1, 1.0, 5.0),
                                  gen=torch.Generator().manual_seed(0))
    x = torch.cat([torch.rand(50, 64) * 2 - 1, torch.ones(1, 64), -torch.ones(1, 64), torch.zeros(1, 64)])
    phi = feats(x)
    assert phi.shape == (53, 60)
    torch.testing.assert_close(phi.norm(dim=1), torch.ones(53), rtol=0, atol=1e-5)


def test_release_is_calibrated_to_the_target_and_matches_an_independent_accountant(fitted):
    ledger = fitted.ledger_
    purposes = [e.purpose for e in ledger.entries]
    assert purposes == ["class frequencies for sampling labels",
                        "random-feature mean embedding, per-class sums (DP-MERF)"]
    assert ledger.entries[1].params["l2_sensitivity"] == 1.0
    assert ledger.entries[1].noise_multiplier == fitted.dp_plan_["noise_multiplier"]
    assert 3.0 * 0.99 <= ledger.epsilon() <= 3.0 * (1 + 1e-9)
    # rel 1e-5: dp_accounting drops a few fractional orders it cannot converge on at this sigma
    assert ledger.epsilon() == pytest.approx(dp_accounting_epsilon(ledger.gaussian_history(), ledger.delta), rel=1e-5)


def test_the_noise_added_to_the_embedding_has_the_calibrated_size(two_class_images):
    """Same random features: the DP target minus the exact one is Gaussian with std sigma / n per
    coordinate, and only the DP release is charged."""
    gen = build_generator("dp-merf-image", TINY)
    gen.feature_resolution_ = 8
    gen.features_ = RandomFourierFeatures(dim=64, n_frequencies=200, length_scales=gen.length_scales,
                                          gen=torch.Generator().manual_seed(7))
    ledger = gen._make_ledger(Budget(epsilon=3.0), len(two_class_images), None)
    sigma = gen._calibrate(Budget(epsilon=3.0), ledger)
    noisy = gen._release_embedding(two_class_images, noise_multiplier=sigma, ledger=ledger, rng=np.random.default_rng(2))
    clean = gen._release_embedding(two_class_images, noise_multiplier=None, ledger=ledger, rng=np.random.default_rng(2))
    assert len(ledger.entries) == 1 and ledger.entries[0].noise_multiplier == sigma
    assert 3.0 * 0.99 <= ledger.epsilon() <= 3.0
    ratio = ((noisy - clean).double().std() / (sigma / len(two_class_images))).item()
    assert ratio == pytest.approx(1.0, abs=0.05)  # 800 coordinates
    # the exact target holds each class's share of the embedding mass: block norm <= class frequency
    shares = np.bincount(two_class_images.labels, minlength=2) / len(two_class_images)
    assert (clean.norm(dim=1) <= torch.as_tensor(shares, dtype=torch.float32) + 1e-6).all()


def test_planned_frequencies_keep_the_noise_norm_under_the_cap():
    assert planned_frequencies(500, n=10, noise_multiplier=100.0) == 500  # asked for: kept
    assert planned_frequencies(None, n=546, noise_multiplier=None) == MAX_FREQUENCIES  # non-private
    assert planned_frequencies(None, n=546, noise_multiplier=0.54) == MAX_FREQUENCIES
    assert planned_frequencies(None, n=10, noise_multiplier=5.0) == MIN_FREQUENCIES
    f = planned_frequencies(None, n=546, noise_multiplier=4.1)
    assert MIN_FREQUENCIES < f < MAX_FREQUENCIES
    assert 4.1 * math.sqrt(2 * f) / 546 == pytest.approx(MAX_NOISE_NORM, rel=0.01)


def test_features_are_coarse_exactly_when_the_release_is_noise_limited():
    assert planned_resolution(14, n=546, noise_multiplier=4.1) == 14  # asked for: kept
    assert planned_resolution(None, n=546, noise_multiplier=4.1) == COARSE_RESOLUTION  # BreastMNIST eps 1
    assert planned_resolution(None, n=546, noise_multiplier=0.54) == FINE_RESOLUTION  # BreastMNIST eps 10
    assert planned_resolution(None, n=4708, noise_multiplier=4.1) == FINE_RESOLUTION  # PneumoniaMNIST eps 1
    assert planned_resolution(None, n=546, noise_multiplier=None) == FINE_RESOLUTION  # non-private
    for n, sigma in ((546, 4.1), (546, 0.54), (300, 1.0), (4708, 4.1)):
        coarse = planned_resolution(None, n=n, noise_multiplier=sigma) == COARSE_RESOLUTION
        assert coarse == (planned_frequencies(None, n=n, noise_multiplier=sigma) < MAX_FREQUENCIES)


def test_the_generator_learns_each_class_from_the_noisy_target(fitted, two_class_images):
    """Beats the trivial baseline: a nearest-class-mean rule fitted on synthetic images only labels
    the real images far better than the majority class does."""
    means = {}
    for index, cls in enumerate(two_class_images.schema.classes):
        images = fitted.sample(200, rng=np.random.default_rng(4), conditions={"label": cls}).to_image_data().images
        means[index] = images.reshape(200, -1).mean(0)
        real = two_class_images.images[two_class_images.labels == index].mean()
        assert abs(images.mean() - real) < 0.2, (cls, images.mean(), real)
    flat = two_class_images.images.reshape(len(two_class_images), -1)
    predicted = np.argmin(np.stack([((flat - means[c]) ** 2).sum(1) for c in (0, 1)], axis=1), axis=1)
    accuracy = (predicted == two_class_images.labels).mean()
    majority = np.bincount(two_class_images.labels).max() / len(two_class_images)
    assert accuracy > 0.95 > majority + 0.3


def test_images_larger_than_feature_resolution_are_pooled_first():
    schema = ImageSchema(height=16, width=16, channels=3, low=0, high=255, classes=("a", "b"), name="rgb16")
    rng = np.random.default_rng(0)
    two_class_images = ImageData(rng.uniform(-1, 1, (40, 3, 16, 16)).astype(np.float32), rng.integers(0, 2, 40), schema)
    gen = build_generator("dp-merf-image", {**TINY, "feature_resolution": 8, "steps": 2})
    gen.fit(two_class_images, budget=Budget(epsilon=1.0), rng=np.random.default_rng(0))
    assert gen.features_.weights.shape == (3 * 8 * 8, 200)
    assert gen.sample(3, rng=np.random.default_rng(1)).to_image_data().images.shape == (3, 3, 16, 16)


@pytest.mark.parametrize(("params", "message"), [
    ({"n_frequencies": 0}, "n_frequencies must be positive"),
    ({"length_scales": []}, "length_scales must be positive"),
    ({"length_scales": [0.5, -1.0]}, "length_scales must be positive"),
    ({"steps": 0}, "steps must be positive"),
    ({"lr": 0.0}, "lr must be positive"),
    ({"steps": "many"}, "steps must be an integer, got 'many'"),
    ({"n_frequencies": 2.5}, "n_frequencies must be an integer"),
    ({"length_scales": ["wide"]}, "length_scales must be numbers"),
    ({"lr": "fast"}, "lr must be a number"),
    ({"n_frequencies": 2}, r"n_frequencies \(2\) must be >= the number of length_scales \(3\)"),
])
def test_bad_settings_are_one_line_errors(params, message):
    with pytest.raises(ConfigError, match=message) as info:
        build_generator("dp-merf-image", {**TINY, **params})
    assert "\n" not in str(info.value)


def test_image_size_not_divisible_by_four_is_a_one_line_error():
    schema = ImageSchema(height=6, width=6, channels=1, low=0, high=1, classes=("a", "b"), name="six")
    two_class_images = ImageData(np.zeros((10, 1, 6, 6), np.float32), np.array([0, 1] * 5), schema)
    with pytest.raises(ConfigError, match="image size 6x6 must be divisible by 4"):
        build_generator("dp-merf-image", TINY).fit(two_class_images, budget=Budget(epsilon=1.0), rng=np.random.default_rng(0))
