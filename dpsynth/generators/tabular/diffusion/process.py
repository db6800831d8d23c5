"""Gaussian diffusion on the encoded table, with diffusers' schedulers (none written by hand).

- The scheduler works with predicted clean rows x0 ("sample" prediction); :class:`Layout`
  turns the network output into x0 per span (EDM preconditioning for numeric coordinates,
  posterior softmax for one-hot blocks, as in continuous diffusion for categorical data).
- Training noise: ``DDPMScheduler.add_noise`` at uniformly drawn timesteps.
- Sampling: ``DDIMScheduler.step`` over ``sampling_steps`` trailing timesteps, predicted clean
  rows clipped to [-1, 1] (the encoded domain); ``eta`` 0 is deterministic DDIM, 1 is DDPM-like.
- Noise multiplicity (DPDM, Dockhorn et al. 2023): each example is noised ``copies`` times at
  independent timesteps and its loss is the mean over its copies, so one example still gives
  one gradient (one per-example gradient for opacus) with lower variance, at no privacy cost.
- Inpainting (replacement): known coordinates of x_t are overwritten with the forward-noised
  known values before each denoising step, and with the exact values at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dpsynth.data.transform import Span


@dataclass(frozen=True)
class Schedules:
    train: object  # diffusers.DDPMScheduler
    sample: object  # diffusers.DDIMScheduler

    @property
    def num_train_timesteps(self) -> int:
        return int(self.train.config.num_train_timesteps)


def make_schedules(*, num_train_timesteps: int, beta_schedule: str, sampling_steps: int) -> Schedules:
    from diffusers import DDIMScheduler, DDPMScheduler  # optional dependency: only needed to fit or sample

    common = dict(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, prediction_type="sample",
                  clip_sample=True, clip_sample_range=1.0)
    train = DDPMScheduler(**common)
    sample = DDIMScheduler(**common, timestep_spacing="trailing", set_alpha_to_one=True)
    sample.set_timesteps(sampling_steps)
    return Schedules(train=train, sample=sample)


class Layout:
    """Which coordinates of the encoded row are numeric and which form one-hot blocks, and how the
    network output becomes a predicted clean row x0 given the noisy row x_t and alpha_bar(t).

    - Numeric coordinates: EDM preconditioning (Karras et al. 2022, used by DPDM) with a public
      scale ``sigma_data``: ``x0 = c_skip x_t / sqrt(a) + c_out F``; loss ``(F - target)^2``.
    - A one-hot block: ``logits = 2 sqrt(a) / (1 - a) x_t[block] + F[block]``. The first term is
      the exact log-likelihood of the noisy block under each category, so F only has to learn
      the log-prior of the category given the rest of the row; x0 is ``2 softmax - 1`` (the
      posterior mean on the {-1, +1} scale); loss: cross-entropy.
    """

    def __init__(self, spans: tuple[Span, ...], *, sigma_data: float) -> None:
        self.numeric = torch.tensor([s.start for s in spans if s.kind == "tanh"], dtype=torch.long)
        self.blocks = [(s.start, s.stop) for s in spans if s.kind == "softmax"]
        self.columns = len(self.numeric) + len(self.blocks)
        self.sigma_data = sigma_data

    def _numeric_coefficients(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(c_skip / sqrt(a), c_out) of EDM written in alpha_bar, stable at a -> 0 and a -> 1."""
        s2 = self.sigma_data ** 2
        denom = 1.0 - a + a * s2
        return a.sqrt() * s2 / denom, self.sigma_data * (1.0 - a).sqrt() / denom.sqrt()

    def _logits(self, raw: torch.Tensor, xt: torch.Tensor, a: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
        lo, hi = block
        return 2.0 * a.sqrt() / (1.0 - a) * xt[..., lo:hi] + raw[..., lo:hi]

    def predict_x0(self, raw: torch.Tensor, xt: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Predicted clean row; ``a`` is alpha_bar(t) broadcastable to ``raw[..., :1]``."""
        out = torch.empty_like(raw)
        skip, c_out = self._numeric_coefficients(a)
        out[..., self.numeric] = skip * xt[..., self.numeric] + c_out * raw[..., self.numeric]
        for lo, hi in self.blocks:
            out[..., lo:hi] = 2.0 * torch.softmax(self._logits(raw, xt, a, (lo, hi)), dim=-1) - 1.0
        return out

    def loss(self, raw: torch.Tensor, xt: torch.Tensor, a: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """Per-row loss ``[...]``: preconditioned squared error on numerics plus cross-entropy on
        blocks, averaged over columns."""
        skip, c_out = self._numeric_coefficients(a)
        target = (x0[..., self.numeric] - skip * xt[..., self.numeric]) / c_out
        total = (raw[..., self.numeric] - target).pow(2).sum(dim=-1)
        for lo, hi in self.blocks:
            onehot = (x0[..., lo:hi] + 1.0) / 2.0
            total = total - (torch.log_softmax(self._logits(raw, xt, a, (lo, hi)), dim=-1) * onehot).sum(dim=-1)
        return total / max(1, self.columns)


def per_example_loss(model: nn.Module, x0: torch.Tensor, cond: torch.Tensor | None, schedules: Schedules,
                     layout: Layout, *, copies: int, gen: torch.Generator) -> torch.Tensor:
    """Denoising loss of each example ``[B]``, averaged over its ``copies`` noised versions.

    The model sees ``[B, copies, d]`` so every copy of example i stays in row i of the batch
    (opacus' per-sample gradient of row i sums over its copies).
    """
    b, d = x0.shape
    x = x0.unsqueeze(1).expand(b, copies, d).reshape(b * copies, d)
    t = torch.randint(schedules.num_train_timesteps, (b * copies,), generator=gen)
    noise = torch.randn(b * copies, d, generator=gen)
    noisy = schedules.train.add_noise(x, noise, t).view(b, copies, d)
    a = schedules.train.alphas_cumprod[t].view(b, copies, 1)
    raw = model(noisy, t.view(b, copies), cond)
    return layout.loss(raw, noisy, a, x.view(b, copies, d)).mean(dim=1)


@torch.no_grad()
def sample_rows(model: nn.Module, schedules: Schedules, layout: Layout, *, n: int, dim: int, gen: torch.Generator,
                eta: float = 0.0, cond: torch.Tensor | None = None, null_cond: torch.Tensor | None = None,
                guidance_scale: float = 1.0, known: torch.Tensor | None = None,
                known_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Draw ``n`` encoded rows ``[n, dim]`` from pure noise.

    ``cond``/``null_cond``: condition vectors (``[n, c]`` or ``[1, c]``); with ``guidance_scale`` != 1
    the prediction is ``uncond + w (cond - uncond)`` (classifier-free guidance).
    ``known``/``known_mask``: values ``[dim]`` and a boolean mask ``[dim]`` to inpaint.
    """
    scheduler = schedules.sample
    x = torch.randn(n, dim, generator=gen) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        if known is not None:
            noisy_known = scheduler.add_noise(known.expand(n, dim), torch.randn(n, dim, generator=gen), t.view(1))
            x = torch.where(known_mask, noisy_known, x)
        tt = t.view(1)  # the same timestep for every row: embedded once and broadcast
        a = scheduler.alphas_cumprod[t].view(1, 1)
        out = layout.predict_x0(model(x, tt, cond), x, a)
        if guidance_scale != 1.0 and cond is not None:
            uncond = layout.predict_x0(model(x, tt, null_cond), x, a)
            out = uncond + guidance_scale * (out - uncond)
        x = scheduler.step(out, t, x, eta=eta, generator=gen).prev_sample
    if known is not None:
        x = torch.where(known_mask, known.expand(n, dim), x)
    return x
