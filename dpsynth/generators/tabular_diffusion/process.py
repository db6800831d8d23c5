"""Gaussian diffusion on the encoded table, with diffusers' schedulers (none written by hand).

- Training noise: ``DDPMScheduler.add_noise`` at uniformly drawn timesteps.
- Sampling: ``DDIMScheduler.step`` (deterministic, eta=0) over ``sampling_steps`` trailing
  timesteps, predicted clean rows clipped to [-1, 1] (the encoded domain).
- Noise multiplicity (DPDM, Dockhorn et al. 2023): each example is noised ``copies`` times at
  independent timesteps and its loss is the mean over its copies, so one example still gives
  one gradient (one per-example gradient for opacus) with much lower variance, at no privacy cost.
- Inpainting (replacement): known coordinates of x_t are overwritten with the forward-noised
  known values before each denoising step, and with the exact values at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Schedules:
    train: object  # diffusers.DDPMScheduler
    sample: object  # diffusers.DDIMScheduler

    @property
    def num_train_timesteps(self) -> int:
        return int(self.train.config.num_train_timesteps)


def make_schedules(*, num_train_timesteps: int, beta_schedule: str, prediction_type: str, sampling_steps: int) -> Schedules:
    from diffusers import DDIMScheduler, DDPMScheduler  # optional dependency: only needed to fit or sample

    common = dict(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, prediction_type=prediction_type,
                  clip_sample=True, clip_sample_range=1.0)
    train = DDPMScheduler(**common)
    sample = DDIMScheduler(**common, timestep_spacing="trailing", set_alpha_to_one=True)
    sample.set_timesteps(sampling_steps)
    return Schedules(train=train, sample=sample)


def per_example_loss(model: nn.Module, x0: torch.Tensor, cond: torch.Tensor | None, schedules: Schedules, *,
                     copies: int, gen: torch.Generator) -> torch.Tensor:
    """Denoising MSE of each example ``[B]``, averaged over its ``copies`` noised versions.

    The model sees ``[B, copies, d]`` so every copy of example i stays in row i of the batch
    (opacus' per-sample gradient of row i sums over its copies).
    """
    b, d = x0.shape
    x = x0.unsqueeze(1).expand(b, copies, d).reshape(b * copies, d)
    t = torch.randint(schedules.num_train_timesteps, (b * copies,), generator=gen)
    noise = torch.randn(b * copies, d, generator=gen)
    noisy = schedules.train.add_noise(x, noise, t)
    kind = schedules.train.config.prediction_type
    if kind == "epsilon":
        target = noise
    elif kind == "sample":
        target = x
    else:  # v_prediction
        target = schedules.train.get_velocity(x, noise, t)
    pred = model(noisy.view(b, copies, d), t.view(b, copies), cond)
    return (pred - target.view(b, copies, d)).pow(2).mean(dim=(1, 2))


@torch.no_grad()
def sample_rows(model: nn.Module, schedules: Schedules, *, n: int, dim: int, gen: torch.Generator,
                eta: float = 0.0, cond: torch.Tensor | None = None, null_cond: torch.Tensor | None = None,
                guidance_scale: float = 1.0, known: torch.Tensor | None = None, known_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Draw ``n`` encoded rows ``[n, dim]`` by DDIM from pure noise (``eta``: 0 deterministic, 1 DDPM-like).

    ``cond``/``null_cond``: condition vectors (``[n, c]`` or ``[1, c]``); with ``guidance_scale`` != 1
    the output is ``uncond + w (cond - uncond)`` (classifier-free guidance).
    ``known``/``known_mask``: values ``[dim]`` and a boolean mask ``[dim]`` to inpaint.
    """
    scheduler = schedules.sample
    x = torch.randn(n, dim, generator=gen) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        if known is not None:
            noisy_known = scheduler.add_noise(known.expand(n, dim), torch.randn(n, dim, generator=gen), t.view(1))
            x = torch.where(known_mask, noisy_known, x)
        tt = t.view(1)  # the same timestep for every row: embedded once and broadcast
        out = model(x, tt, cond)
        if guidance_scale != 1.0 and cond is not None:
            uncond = model(x, tt, null_cond)
            out = uncond + guidance_scale * (out - uncond)
        x = scheduler.step(out, t, x, eta=eta, generator=gen).prev_sample
    if known is not None:
        x = torch.where(known_mask, known.expand(n, dim), x)
    return x
