"""Clipping strategies beyond opacus' flat clip: adaptive (quantile) and group-aware.

Both are small :class:`opacus.optimizers.DPOptimizer` subclasses swapped in after
``DPSGDEngine.make_private`` (:func:`swap_optimizer`), so Poisson sampling, the step hook of
opacus' accountant and the ledger's per-step charge stay exactly as for flat clipping.

Adaptive clipping (Andrew, Thakkar, McMahan, Ramaswamy 2021)
    Each logical step releases two things with independent Gaussian noise: the sum of clipped
    gradients (sensitivity C, noise ``grad_sigma * C``) and the centred count
    ``sum_i (b_i - 1/2)`` with ``b_i = 1{||g_i|| <= C}`` (sensitivity 1/2 under add/remove,
    noise ``count_std``). Scaling each part by its noise makes the pair one isotropic Gaussian
    whose per-example contribution has norm at most ``sqrt(grad_sigma^-2 + (2 count_std)^-2)``,
    i.e. one (subsampled) Gaussian mechanism with noise multiplier
    ``sigma = (grad_sigma^-2 + (2 count_std)^-2)^-1/2``. The ledger charges that sigma; the
    gradient noise is raised to ``grad_sigma = (sigma^-2 - (2 count_std)^-2)^-1/2``. The
    unclipped fraction is estimated with the *expected* batch size (public), never the realised
    Poisson batch size, and the bound moves geometrically toward the target quantile.

Group-aware clipping (in the spirit of DPSGD-F, Xu, Du and Wu 2021)
    Example i is clipped to the bound ``C_g`` of its group g (larger for smaller groups; the
    bounds are post-processing of DP group counts). One example changes the clipped sum by at
    most ``max_g C_g``, so the Gaussian noise is ``sigma * max_g C_g``: the step is the plain
    subsampled Gaussian mechanism with noise multiplier sigma.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from opacus.optimizers.optimizer import DPOptimizer, _check_processed_flag, _generate_noise, _mark_as_processed

from dpsynth.errors import PrivacyError

COUNT_SENSITIVITY = 0.5  # centred unclipped count: one example moves it by exactly 1/2


def grad_noise_multiplier(sigma: float, count_std: float) -> float:
    """Gradient noise multiplier that, together with the count noise, composes to ``sigma``."""
    rest = sigma ** -2 - (count_std / COUNT_SENSITIVITY) ** -2
    if rest <= 0:
        raise PrivacyError(f"adaptive clipping: count noise std {count_std:g} must exceed sigma/2 = {sigma / 2:g}")
    return rest ** -0.5


def composed_noise_multiplier(grad_sigma: float, count_std: float) -> float:
    """The noise multiplier of the joint (gradient sum, centred count) Gaussian release."""
    return (grad_sigma ** -2 + (count_std / COUNT_SENSITIVITY) ** -2) ** -0.5


def default_count_std(sigma: float, expected_batch_size: float) -> float:
    """Andrew et al.'s suggestion (expected batch / 20), kept >= sigma so the gradient noise
    grows by at most 15% (sigma / sqrt(3/4))."""
    return max(expected_batch_size / 20.0, sigma)


class _PerSampleClip(DPOptimizer):
    """Shared: per-example L2 norms over all parameters, and accumulation with given factors."""

    def _per_sample_norms(self) -> torch.Tensor:
        samples = self.grad_samples
        if len(samples[0]) == 0:
            return torch.zeros((0,), device=samples[0].device)
        norms = [g.reshape(len(g), -1).norm(2, dim=-1) for g in samples]
        return torch.stack([n.to(norms[0].device) for n in norms], dim=1).norm(2, dim=1)

    def _accumulate(self, factors: torch.Tensor) -> None:
        for p in self.params:
            _check_processed_flag(p.grad_sample)
            grad_sample = self._get_flat_grad_sample(p).to(p.dtype)
            grad = torch.einsum("i,i...", factors.to(grad_sample.device).to(p.dtype), grad_sample)
            p.summed_grad = grad if p.summed_grad is None else p.summed_grad + grad
            _mark_as_processed(p.grad_sample)


class AdaptiveClipDPOptimizer(_PerSampleClip):
    """Quantile-based adaptive clipping; ``noise_multiplier`` is the composed sigma (what opacus'
    accountant and the ledger charge), the gradient noise uses :attr:`grad_sigma`."""

    def __init__(self, optimizer, *, noise_multiplier: float, max_grad_norm: float, expected_batch_size: int,
                 target_quantile: float = 0.5, learning_rate: float = 0.2, count_std: float | None = None,
                 min_clip: float = 1e-3, max_clip: float = 1e3, **kwargs) -> None:
        super().__init__(optimizer, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
                         expected_batch_size=expected_batch_size, **kwargs)
        if not 0 < target_quantile < 1:
            raise PrivacyError(f"adaptive clipping: target quantile must be in (0, 1), got {target_quantile}")
        if not 0 < min_clip <= max_grad_norm <= max_clip:
            raise PrivacyError(f"adaptive clipping: need 0 < min_clip <= max_grad_norm <= max_clip, "
                               f"got {min_clip}, {max_grad_norm}, {max_clip}")
        self.count_std = float(count_std if count_std is not None
                               else default_count_std(noise_multiplier, expected_batch_size))
        self.grad_sigma = grad_noise_multiplier(noise_multiplier, self.count_std)
        self.target_quantile, self.learning_rate = target_quantile, learning_rate
        self.min_clip, self.max_clip = min_clip, max_clip
        self._centred = 0.0  # sum_i (b_i - 1/2) over the logical batch, before noise
        self.clip_history: list[float] = []

    def zero_grad(self, set_to_none: bool = False):
        if not self._is_last_step_skipped:
            self._centred = 0.0
        super().zero_grad(set_to_none)

    def clip_and_accumulate(self) -> None:
        norms = self._per_sample_norms()
        unclipped = (norms <= self.max_grad_norm).to(torch.float64)
        self._centred += float((unclipped - 0.5).sum())
        self._accumulate((self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0))

    def add_noise(self) -> None:
        for p in self.params:
            _check_processed_flag(p.summed_grad)
            noise = _generate_noise(std=self.grad_sigma * self.max_grad_norm, reference=p.summed_grad,
                                    generator=self.generator, secure_mode=self.secure_mode)
            p.grad = (p.summed_grad + noise).view_as(p)
            _mark_as_processed(p.summed_grad)
        count_noise = _generate_noise(std=self.count_std, reference=torch.zeros(()), generator=self.generator,
                                      secure_mode=self.secure_mode)
        self._noisy_centred = self._centred + float(count_noise)

    def pre_step(self, closure=None):
        took = super().pre_step(closure)
        if took:
            # post-processing of the noisy centred count; the expected batch size is public
            fraction = self._noisy_centred / (self.expected_batch_size * self.accumulated_iterations) + 0.5
            bound = self.max_grad_norm * math.exp(-self.learning_rate * (fraction - self.target_quantile))
            self.max_grad_norm = min(self.max_clip, max(self.min_clip, bound))
            self.clip_history.append(self.max_grad_norm)
        return took


class GroupClipDPOptimizer(_PerSampleClip):
    """Per-group clip bounds; noise calibrated to the largest bound (the sensitivity).

    Call :meth:`set_batch_groups` with the group id of every row of the physical batch before
    the step. Rows beyond those ids (audit canaries) are clipped to the largest bound."""

    def __init__(self, optimizer, *, group_bounds: Sequence[float], noise_multiplier: float, expected_batch_size: int,
                 max_grad_norm: float | None = None, **kwargs) -> None:
        bounds = torch.as_tensor([float(b) for b in group_bounds], dtype=torch.float64)
        if len(bounds) == 0 or not bool((bounds > 0).all()):
            raise PrivacyError("group clipping needs one positive clip bound per group")
        super().__init__(optimizer, noise_multiplier=noise_multiplier, max_grad_norm=float(bounds.max()),
                         expected_batch_size=expected_batch_size, **kwargs)
        self.group_bounds = bounds
        self.batch_groups: torch.Tensor | None = None

    def set_batch_groups(self, groups: torch.Tensor) -> None:
        self.batch_groups = groups.to(torch.long)

    def clip_and_accumulate(self) -> None:
        norms = self._per_sample_norms()
        if self.batch_groups is None or len(self.batch_groups) > len(norms):
            raise PrivacyError("group clipping: the batch's group ids were not set before the step")
        bounds = torch.full((len(norms),), float(self.group_bounds.max()), dtype=torch.float64)
        bounds[: len(self.batch_groups)] = self.group_bounds[self.batch_groups]
        self._accumulate((bounds.to(norms.dtype) / (norms + 1e-6)).clamp(max=1.0))
        self.batch_groups = None


def swap_optimizer(dp_optimizer: DPOptimizer, cls: type, **kwargs) -> DPOptimizer:
    """Re-wrap the optimizer that ``make_private`` returned in ``cls`` with the same noise
    multiplier, clip norm, expected batch size, noise generator and accountant step hook."""
    base = dict(noise_multiplier=dp_optimizer.noise_multiplier, expected_batch_size=dp_optimizer.expected_batch_size,
                loss_reduction=dp_optimizer.loss_reduction, generator=dp_optimizer.generator,
                secure_mode=dp_optimizer.secure_mode)
    if cls is not GroupClipDPOptimizer:
        base["max_grad_norm"] = dp_optimizer.max_grad_norm
    new = cls(dp_optimizer.original_optimizer, **base, **kwargs)
    new.step_hook = dp_optimizer.step_hook
    return new
