"""DP mechanisms for preprocessing statistics. Each one charges the ledger before it releases.

The noise comes from a numpy Generator, or from opacus' secure-mode sampler when ``secure``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dpsynth.privacy.budget import Budget, zcdp_rho_for
from dpsynth.privacy.ledger import Ledger


def gaussian_noise(shape, *, std: float, rng: np.random.Generator, secure: bool = False) -> np.ndarray:
    if secure:
        from opacus.optimizers.optimizer import _generate_noise

        reference = torch.zeros(shape, dtype=torch.float64)
        return _generate_noise(std=std, reference=reference, generator=None, secure_mode=True).numpy()
    return rng.normal(0.0, std, size=shape)


def preprocessing_noise_multiplier(budget: Budget, *, delta: float, releases: int = 1) -> float:
    """Noise multiplier for each of ``releases`` Gaussian preprocessing releases so that together
    they use ``budget.preprocessing_share`` of the budget's zCDP rho."""
    rho_total = zcdp_rho_for(budget.epsilon, delta)
    rho_each = budget.preprocessing_share * rho_total / releases
    return math.sqrt(1.0 / (2.0 * rho_each))


def noisy_counts(
    codes: list[np.ndarray],
    sizes: list[int],
    *,
    ledger: Ledger,
    noise_multiplier: float,
    rng: np.random.Generator,
    purpose: str,
    secure: bool = False,
    contribution: int = 1,
) -> list[np.ndarray]:
    """Gaussian-noised histograms of several integer-coded columns released together.

    Each row adds 1 to one bin of each of the k histograms, so the joint L2 sensitivity is
    sqrt(k); the noise std is ``noise_multiplier * sqrt(k)``. Counts are clipped at 0
    (post-processing). ``contribution``: the public bound on rows per privacy unit; one unit
    moves each histogram by up to that many, so the sensitivity and the std scale by it.
    """
    k = len(codes)
    ledger.record_gaussian(
        purpose=purpose, noise_multiplier=noise_multiplier,
        params={"histograms": k, "l2_sensitivity": math.sqrt(k) * contribution,
                **({"rows_per_unit": contribution} if contribution > 1 else {})},
    )
    std = noise_multiplier * math.sqrt(k) * contribution
    out = []
    for c, size in zip(codes, sizes):
        counts = np.bincount(c, minlength=size).astype(float)
        out.append(np.clip(counts + gaussian_noise(counts.shape, std=std, rng=rng, secure=secure), 0.0, None))
    return out


def noisy_total(
    n: int, *, ledger: Ledger, noise_multiplier: float, rng: np.random.Generator, purpose: str, secure: bool = False
) -> float:
    """A Gaussian-noised row count (sensitivity 1)."""
    ledger.record_gaussian(purpose=purpose, noise_multiplier=noise_multiplier, params={"l2_sensitivity": 1})
    return max(1.0, n + float(gaussian_noise((), std=noise_multiplier, rng=rng, secure=secure)))
