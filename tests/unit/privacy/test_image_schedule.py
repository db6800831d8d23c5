"""The image DP-SGD schedule: steps are a compute budget (not epochs), batches fit n and the image
size, and the noise comes from the accountant."""

import math

import pytest

from dpsynth.errors import ConfigError
from dpsynth.privacy.image_schedule import DEFAULT_STEPS, max_batch_for, plan_image_schedule
from dpsynth.privacy.schedule import subsampled_gaussian_epsilon


def plan(n, eps, **kw):
    return plan_image_schedule(n=n, height=kw.pop("hw", 28), width=kw.pop("w", 28), epsilon=eps,
                               delta=min(1e-5, 1 / (10 * n)), noise_multiplicity=kw.pop("k", 2), **kw)


def test_small_and_large_sets_get_the_same_steps_not_the_same_epochs():
    small, large = plan(546, 10.0), plan(4708, 10.0)
    assert small.steps == large.steps == DEFAULT_STEPS == 600  # an epoch plan gave 77 vs 662
    assert (small.batch_size, large.batch_size) == (128, 128)  # the CPU compute cap at 28x28, K=2
    tiny_eps = plan(546, 1.0)
    assert tiny_eps.batch_size == 16 and tiny_eps.steps == 600  # small set, strict budget: small batches


@pytest.mark.parametrize("n", [500, 4708, 100000])
@pytest.mark.parametrize("eps", [1.0, 10.0])
def test_every_size_from_500_to_100000_gets_a_run_that_meets_the_budget(n, eps):
    s = plan(n, eps)
    assert 16 <= s.batch_size <= min(128, n // 2) and s.steps == 600
    delta = min(1e-5, 1 / (10 * n))
    q = 1 / math.ceil(n / s.batch_size)
    spent = subsampled_gaussian_epsilon(noise_multiplier=s.planning_noise_multiplier, sample_rate=q, steps=s.steps,
                                        delta=delta)
    assert spent <= eps * 1.001 and s.planning_noise_multiplier > 0.3


def test_gpu_compute_allows_the_large_batches_the_rule_asks_for():
    assert plan(4708, 10.0, device="cuda").batch_size == 2048  # smallest batch with sigma >= 3
    assert plan(100000, 10.0, device="cuda").batch_size == 4096  # the cap


def test_batch_cap_follows_image_size_and_multiplicity():
    assert max_batch_for(height=28, width=28, noise_multiplicity=2, device="cpu") == 128
    assert max_batch_for(height=64, width=64, noise_multiplicity=2, device="cpu") == 16
    assert max_batch_for(height=128, width=128, noise_multiplicity=2, device="cpu") == 8
    assert max_batch_for(height=8, width=8, noise_multiplicity=2, device="cpu") == 128  # never above the 28px cap
    assert max_batch_for(height=28, width=28, noise_multiplicity=4, device="cpu") == 64
    with pytest.raises(ConfigError):
        max_batch_for(height=28, width=28, noise_multiplicity=2, device="tpu")


def test_explicit_settings_and_legacy_epochs_are_kept():
    assert (plan(546, 10.0, steps=50, batch_size=32).batch_size, plan(546, 10.0, steps=50).steps) == (32, 50)
    legacy = plan(546, 10.0, epochs=18, batch_size=128)
    assert legacy.steps == math.ceil(18 * 546 / 128) and legacy.rule == "epochs (legacy)"
