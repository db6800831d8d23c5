"""What every DP-SGD generator (dp-gan, dp-diffusion, dp-gan-image, dp-diffusion-image) shares
besides the training loop of :mod:`dpsynth.privacy.dpsgd_loop`: its DP-SGD hyper-parameters,
declared once.

A DP-SGD generator is a keyword-only dataclass: its fields are its hyper-parameters (the
generated ``__init__`` stores them and nothing else; ``__post_init__`` checks them), so a new
generator declares only what it adds or whose default differs. ``get_params`` returns them as
JSON values (tuples as lists), which is what a run artifact stores and ``cls(**params)`` loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from dpsynth.errors import ConfigError
from dpsynth.privacy.dpsgd_loop import DPSGDTask
from dpsynth.privacy.functional_grads import per_example_grads
from dpsynth.privacy.grad_modes import GRAD_SAMPLE_MODES, check_grad_sample_mode, without_per_example


@dataclass(eq=False, kw_only=True)
class DPSGDParams:
    """batch_size: the logical (Poisson) batch; epochs: the legacy plan in passes;
    max_grad_norm: the per-example clip norm; max_physical_batch_size: the most examples in
    memory at once (BatchMemoryManager); grad_sample_mode: how opacus forms the per-example
    clipped gradient (:mod:`dpsynth.privacy.grad_modes`)."""

    grad_sample_modes: ClassVar[tuple[str, ...]] = GRAD_SAMPLE_MODES

    batch_size: int | None = None
    epochs: float | None = None
    max_grad_norm: float = 1.0
    max_physical_batch_size: int = 512
    grad_sample_mode: str = "bk"

    def __post_init__(self) -> None:
        check_grad_sample_mode(self.grad_sample_mode, allowed=self.grad_sample_modes)
        more = getattr(super(), "__post_init__", None)  # e.g. FairSGD's checks, for a generator that mixes it in
        if more is not None:
            more()

    def get_params(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(eq=False, kw_only=True)
class GANParams(DPSGDParams):
    """A GAN whose discriminator alone is trained with DP-SGD: noise_dim (generator input),
    the two learning rates, generator_steps (generator updates per round), discriminator_steps
    (discriminator steps per round, n_D: under DP a larger n_D keeps the noisy discriminator ahead
    of the generator; Bie, Kamath and Zhang, "Private GANs, revisited", TMLR 2023)."""

    noise_dim: int = 64
    generator_lr: float = 1e-3
    discriminator_lr: float = 1e-3
    generator_steps: int = 1
    discriminator_steps: int = 1

    def __post_init__(self) -> None:
        for name in ("generator_steps", "discriminator_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{getattr(self, 'name', type(self).__name__)}: {name} must be an integer >= 1, "
                                  f"got {value!r}")
        super().__post_init__()

    def generator_round(self, step: int) -> bool:
        """Whether the generator updates after discriminator step ``step`` (counted from 1)."""
        return step % self.discriminator_steps == 0


@dataclass(eq=False, kw_only=True)
class DiffusionParams(DPSGDParams):
    """A denoiser trained with DP-SGD: the forward process (num_train_timesteps, beta_schedule),
    noise_multiplicity (noisy copies inside one example's loss), Adam's lr, the EMA decay of the
    weights, and guidance_scale at sampling."""

    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    noise_multiplicity: int = 8
    lr: float = 3e-3
    ema_decay: float = 0.99
    guidance_scale: float = 1.0


def gan_task(*, real_input: Callable[[list[torch.Tensor]], torch.Tensor], fake_input: Callable[[], torch.Tensor],
             generator_step: Callable[[nn.Module], float], generator_steps: int, generator: nn.Module,
             generator_round: Callable[[int], bool] | None = None, fake_clip: float | None = None) -> DPSGDTask:
    """The DP-SGD task of a GAN whose discriminator alone reads real rows.

    (1) the loss: the discriminator's per-example loss on the real rows (``real_input(rows)``);
    (2) the gradient on fake rows (``fake_input()``, a fixed public number of them): it reads no
    real row, so it is computed without per-example bookkeeping and added after the noise; with
    ``fake_clip`` each fake row's gradient is clipped to that norm first, as the real rows' are
    (the two terms then weigh alike, as when fakes join the DP batch: Bie et al. 2023);
    (3) after each released step for which ``generator_round(step)`` holds (None: every step; see
    :meth:`GANParams.generator_round`), ``generator_steps`` updates of the generator through the
    private discriminator (``generator_step(discriminator) -> loss``): post-processing."""
    fake_loss = {}
    g_loss = {"g": math.nan}  # the last generator loss, reported between generator rounds

    def loss(disc, rows):  # (1)
        logits = disc(real_input(rows).requires_grad_(True))  # full backward hooks need an input with grad
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")

    def extra_grads(disc):  # (2)
        with torch.no_grad():
            fake = fake_input()
        with without_per_example(disc) as plain:
            if fake_clip is not None:
                bare = getattr(plain, "_module", plain)  # torch.func cannot pass opacus' backward hooks
                grads, losses = per_example_grads(bare, _fake_loss_one, fake.detach())
                fake_loss["d"] = losses.mean()
                return clipped_mean([grads[name] for name, _ in bare.named_parameters()], fake_clip)
            logits = plain(fake)
            fake_loss["d"] = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
            return torch.autograd.grad(fake_loss["d"], list(disc.parameters()))

    def after_step(disc, step, losses):  # (3)
        if generator_round is None or generator_round(step):
            disc.eval()
            with without_per_example(disc) as plain:
                for _ in range(generator_steps):
                    g_loss["g"] = generator_step(plain)
        loss_real = losses.mean() if len(losses) else losses.sum()
        return {"d_loss": (loss_real + fake_loss["d"]).item(), "g_loss": g_loss["g"]}

    return DPSGDTask(loss=loss, extra_grads=extra_grads, after_step=after_step, public_modules=(generator,))


def _fake_loss_one(forward, image: torch.Tensor) -> torch.Tensor:
    """One fake row's discriminator loss (label 0), for :func:`per_example_grads`."""
    logit = forward(image.unsqueeze(0))
    return F.binary_cross_entropy_with_logits(logit, torch.zeros_like(logit)).squeeze()


def clipped_mean(per_example: list[torch.Tensor], clip: float) -> list[torch.Tensor]:
    """The mean over examples of per-example gradients (``[B, *shape]`` per tensor), each example's
    whole gradient first scaled to L2 norm at most ``clip``."""
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per_example))
    scale = (clip / (norms + 1e-6)).clamp(max=1.0)
    return [torch.einsum("b,b...->...", scale, g) / len(scale) for g in per_example]
