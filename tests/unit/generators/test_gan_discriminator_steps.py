"""discriminator_steps (n_D) of the DP-SGD GANs: the generator updates only after every n_D-th
released discriminator step, the privacy charge does not depend on n_D (the generator's updates
are post-processing), and bad values are one-line errors naming the key."""

import math

import numpy as np
import pytest
import torch

from dpsynth.config import build_generator
from dpsynth.errors import ConfigError
from dpsynth.privacy.budget import Budget
from tests.conftest import dp_accounting_epsilon

torch.set_num_threads(1)
TINY = {"generator_channels": 16, "discriminator_channels": 8, "noise_dim": 8, "steps": 6, "batch_size": 32,
        "max_physical_batch_size": 32, "device": "cpu"}


def _fit(two_class_images, params):
    trace = []
    gen = build_generator("dp-gan-image", {**TINY, **params})
    gen.fit(two_class_images, budget=Budget(epsilon=3.0), rng=np.random.default_rng(1), progress=trace.append)
    return gen, [(d["step"], d["g_loss"]) for d in trace]


def test_the_generator_updates_after_every_n_d_th_step_and_the_charge_is_unchanged(two_class_images):
    gen, trace = _fit(two_class_images, {"discriminator_steps": 3})
    assert [s for s, _ in trace] == [1, 2, 3, 4, 5, 6]
    g = dict(trace)
    assert math.isnan(g[1]) and math.isnan(g[2])  # no generator round yet
    assert np.isfinite(g[3]) and g[4] == g[5] == g[3]  # held between rounds
    assert np.isfinite(g[6]) and g[6] != g[3]  # the second round
    base, _ = _fit(two_class_images, {})
    ledger = gen.ledger_
    assert ledger.epsilon() == pytest.approx(base.ledger_.epsilon(), rel=1e-12)
    assert ledger.epsilon() == pytest.approx(dp_accounting_epsilon(ledger.gaussian_history(), ledger.delta), rel=1e-5)
    assert gen.get_params()["discriminator_steps"] == 3


def test_n_d_one_is_the_default_and_updates_the_generator_every_step(two_class_images):
    _, trace = _fit(two_class_images, {})
    values = [g for _, g in trace]
    assert all(np.isfinite(values)) and len(set(values)) == len(values)


@pytest.mark.parametrize("generator", ["dp-gan-image", "dp-gan"])
@pytest.mark.parametrize("key, value", [("discriminator_steps", 0), ("discriminator_steps", 2.5),
                                        ("discriminator_steps", True), ("generator_steps", -1)])
def test_bad_step_counts_are_one_line_errors_naming_the_key(generator, key, value):
    with pytest.raises(ConfigError, match=f"{key} must be an integer >= 1") as info:
        build_generator(generator, {key: value})
    assert "\n" not in str(info.value) and generator in str(info.value)


def test_clipped_mean_scales_each_example_to_the_clip_then_averages():
    from dpsynth.generators.dpsgd import clipped_mean
    a = torch.tensor([[3.0, 0.0], [0.3, 0.4]])  # example norms (with b): 5 and 0.5
    b = torch.tensor([[[0.0, 4.0]], [[0.0, 0.0]]])
    out = clipped_mean([a, b], 1.0)
    assert torch.allclose(out[0], (a[0] / 5 + a[1]) / 2, atol=1e-6)
    assert torch.allclose(out[1], (b[0] / 5 + b[1]) / 2, atol=1e-6)


@pytest.mark.parametrize("mode", ["bk", "ew"])
def test_clip_fakes_bounds_the_fake_term_and_keeps_the_charge(two_class_images, mode, monkeypatch):
    from dpsynth.generators import dpsgd
    seen = []
    real = dpsgd.clipped_mean

    def spy(per_example, clip):
        out = real(per_example, clip)
        seen.append(float(torch.sqrt(sum(g.pow(2).sum() for g in out))))
        return out
    monkeypatch.setattr(dpsgd, "clipped_mean", spy)
    gen, trace = _fit(two_class_images, {"clip_fakes": True, "grad_sample_mode": mode, "max_grad_norm": 0.5})
    assert len(seen) == 6 and all(0 < v <= 0.5 + 1e-5 for v in seen)  # a mean of vectors of norm <= clip
    assert all(np.isfinite([g for _, g in trace]))
    base, _ = _fit(two_class_images, {"grad_sample_mode": mode, "max_grad_norm": 0.5})
    assert gen.ledger_.epsilon() == pytest.approx(base.ledger_.epsilon(), rel=1e-12)


@pytest.mark.parametrize("params, message", [
    ({"clip_fakes": "yes"}, "clip_fakes must be true or false"),
    ({"clip_fakes": True, "grad_sample_mode": "hooks"}, "clip_fakes needs grad_sample_mode bk or ew, got 'hooks'"),
])
def test_bad_clip_fakes_settings_are_one_line_errors(params, message):
    with pytest.raises(ConfigError, match=message) as info:
        build_generator("dp-gan-image", params)
    assert "\n" not in str(info.value)
