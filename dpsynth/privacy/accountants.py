"""Compose a ledger's entries into one (epsilon, delta) with opacus' accountants.

Gaussian releases and DP-SGD runs are (noise_multiplier, sample_rate, steps) triples, which
is exactly opacus' accountant history: RDP (default) or PRV compose them. Entries known only
through a zCDP bound (the exponential mechanism, rho-zCDP releases) add rho * alpha to the RDP
curve and are accepted by the RDP accountant only.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis

from dpsynth.errors import PrivacyError

# opacus' default RDP orders, extended for small noise (large orders) and high precision
RDP_ORDERS: tuple[float, ...] = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [80, 128, 256, 512])


def rdp_epsilon(
    gaussian: Sequence[tuple[float, float, int]],
    *,
    zcdp_rho: float = 0.0,
    delta: float,
    orders: Iterable[float] = RDP_ORDERS,
) -> tuple[float, float]:
    """Epsilon (and the best order) of the RDP composition of Gaussian triples plus rho-zCDP."""
    orders = list(orders)
    if not gaussian and zcdp_rho == 0.0:
        return 0.0, float("nan")
    total = np.zeros(len(orders))
    for noise_multiplier, sample_rate, steps in gaussian:
        total = total + steps * _rdp_one_step(float(noise_multiplier), float(sample_rate), tuple(orders))
    total = total + zcdp_rho * np.asarray(orders)
    eps, best = rdp_analysis.get_privacy_spent(orders=orders, rdp=total, delta=delta)
    return float(eps), float(best)


@lru_cache(maxsize=4096)
def _rdp_one_step(noise_multiplier: float, sample_rate: float, orders: tuple[float, ...]) -> np.ndarray:
    """opacus' RDP of one (subsampled) Gaussian step; RDP composes linearly in the step count."""
    value = rdp_analysis.compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=list(orders))
    value = np.asarray(value, dtype=float)
    value.setflags(write=False)
    return value


def prv_epsilon(gaussian: Sequence[tuple[float, float, int]], *, delta: float) -> float:
    """Epsilon of the composition of Gaussian / subsampled-Gaussian triples under opacus' PRV accountant."""
    if not gaussian:
        return 0.0
    acc = PRVAccountant()
    acc.history = [tuple(h) for h in gaussian]
    return float(acc.get_epsilon(delta=delta))


def compose(
    gaussian: Sequence[tuple[float, float, int]],
    *,
    zcdp_rho: float,
    delta: float,
    accountant: str,
) -> float:
    if accountant == "rdp":
        return rdp_epsilon(gaussian, zcdp_rho=zcdp_rho, delta=delta)[0]
    if accountant == "prv":
        if zcdp_rho > 0:
            raise PrivacyError("the PRV accountant cannot compose zCDP-only entries (exponential mechanism); use rdp")
        return prv_epsilon(gaussian, delta=delta)
    raise PrivacyError(f"unknown accountant '{accountant}'")


def opacus_rdp_epsilon(history: Sequence[tuple[float, float, int]], *, delta: float) -> float:
    """The plain opacus RDPAccountant on a history, for cross-checks."""
    acc = RDPAccountant()
    acc.history = [tuple(h) for h in history]
    return float(acc.get_epsilon(delta=delta))


def calibrate_noise(
    *,
    base: Sequence[tuple[float, float, int]],
    base_rho: float,
    sample_rate: float,
    steps: int,
    target_epsilon: float,
    delta: float,
    accountant: str,
    tolerance: float = 0.005,
) -> float:
    """Smallest noise multiplier for ``steps`` DP-SGD steps at ``sample_rate`` such that the
    composition with what was already spent (``base``, ``base_rho``) stays <= target_epsilon."""
    spent = compose(base, zcdp_rho=base_rho, delta=delta, accountant=accountant)
    if spent >= target_epsilon:
        raise PrivacyError(
            f"preprocessing already spent epsilon={spent:.4g} of the target {target_epsilon:g}; nothing left for training"
        )

    def eps_at(sigma: float) -> float:
        return compose([*base, (sigma, sample_rate, steps)], zcdp_rho=base_rho, delta=delta, accountant=accountant)

    low, high = 0.05, 1.0
    while eps_at(high) > target_epsilon:
        low, high = high, high * 2
        if high > 1e4:
            raise PrivacyError(f"cannot reach epsilon={target_epsilon:g} with {steps} steps at sample rate {sample_rate:g}")
    # bisection on sigma; eps is decreasing in sigma
    while (high - low) / high > tolerance:
        mid = 0.5 * (low + high)
        if eps_at(mid) > target_epsilon:
            low = mid
        else:
            high = mid
    assert eps_at(high) <= target_epsilon or math.isclose(eps_at(high), target_epsilon)
    return high
