"""``dp-gan-image``: a small class-conditional DCGAN whose discriminator is trained with DP-SGD
(plain DP-DCGAN, as in Xie et al. 2018 "DPGAN" / Torkzadehmahani et al. 2019 "DP-CGAN"; no
PATE, no gradient sanitisation tricks beyond DP-SGD).

Privacy argument (the same structure as ``dp-gan``)
----------------------------------------------------
- Only the discriminator reads real images, through opacus DP-SGD (book-keeping clipping by default): Poisson
  sampling, per-example clipping of the gradient of its loss on *real* images, Gaussian noise,
  each step charged to the ledger. Its layers are Conv2d, GroupNorm, LeakyReLU and Linear only.
- Its gradient on *fake* images depends only on its current (already private) weights and on
  generator noise: computed without per-example hooks and added after noising (post-processing).
  A fixed number of fakes per step (the expected batch size) hides the real batch size.
- The generator learns only through the discriminator: post-processing.
- The label of a real image is part of its example (one-hot label maps as extra input channels).
  Fake labels, and labels for unconditional sampling, come from class frequencies released once
  with Gaussian noise and charged to the ledger. ``sample(conditions={label: c})`` is exact.
- ``prior_share`` > 0: a DP per-class DCT-Gaussian prior (:mod:`dpsynth.generators.image.dct_prior`)
  spends that share of the budget's zCDP rho before DP-SGD is planned (the discriminator's noise is
  calibrated to what is left); ``warmup_steps`` plain GAN steps on prior samples (post-processing:
  no privacy cost) then start the generator and discriminator off a diverse, blurry image of the
  modality instead of random weights (DP-FETA's warm-up, applied to the GAN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from dpsynth.data.image_schema import ImageSchema
from dpsynth.data.images import ImageData
from dpsynth.errors import ConfigError
from dpsynth.generators.base import ProgressFn, torch_generator
from dpsynth.generators.dpsgd import GANParams, gan_task
from dpsynth.generators.image.base import ImageGenerator, init_weights
from dpsynth.generators.image.diffusion.prior_steps import DCTPriorSteps
from dpsynth.generators.registry import register
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.dpsgd_loop import DPSGDRun, public_update
from dpsynth.privacy.ledger import Ledger

CLIP_FAKES_MODES = ("bk", "ew")  # per-example fake gradients by torch.func: modes without backward hooks


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class ImageGeneratorNet(nn.Module):
    """z + one-hot label -> (C, H, W) in [-1, 1]; two x2 upsamplings. Never sees real data."""

    def __init__(self, *, noise_dim: int, n_classes: int, channels: int, shape: tuple[int, int, int]) -> None:
        super().__init__()
        c, h, w = shape
        self.base = (2 * channels, h // 4, w // 4)
        self.fc = nn.Linear(noise_dim + n_classes, int(np.prod(self.base)))
        self.body = nn.Sequential(
            nn.GroupNorm(_groups(2 * channels), 2 * channels), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * channels, channels, 3, padding=1),
            nn.GroupNorm(_groups(channels), channels), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(_groups(channels), channels), nn.ReLU(),
            nn.Conv2d(channels, c, 3, padding=1), nn.Tanh(),
        )
        self.n_classes = n_classes

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(labels, self.n_classes).to(z.dtype)
        return self.body(self.fc(torch.cat([z, onehot], dim=1)).view(-1, *self.base))


class ImageDiscriminator(nn.Module):
    """DP-SGD compatible: Conv2d, GroupNorm, LeakyReLU, Linear. Input: image + label maps."""

    def __init__(self, *, n_classes: int, channels: int, shape: tuple[int, int, int]) -> None:
        super().__init__()
        c, h, w = shape
        self.net = nn.Sequential(
            nn.Conv2d(c + n_classes, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),
            nn.GroupNorm(_groups(2 * channels), 2 * channels), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * channels * (h // 4) * (w // 4), 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def with_label_maps(images: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Append one constant one-hot channel per class (the cGAN input of the discriminator)."""
    maps = F.one_hot(labels, n_classes).to(images.dtype)[:, :, None, None].expand(-1, -1, *images.shape[2:])
    return torch.cat([images, maps], dim=1)


class GeneratorNetMixin:
    """What ``dp-gan-image`` and ``dp-merf-image`` share: their :class:`ImageGeneratorNet`, sampling
    from it and its state (the generator's weights and the DP class frequencies only)."""

    def _build(self, schema: ImageSchema) -> ImageGeneratorNet:
        if schema.height % 4 or schema.width % 4:
            raise ConfigError(f"{self.name}: image size {schema.height}x{schema.width} must be divisible by 4")
        return ImageGeneratorNet(noise_dim=self.noise_dim, n_classes=schema.n_classes, channels=self.generator_channels,
                                 shape=schema.shape)

    def _start_fit(self, data: ImageData, *, budget: Budget, rng: np.random.Generator, ledger: Ledger | None):
        """The shared opening of ``fit``: checks, device, ledger, the run's torch RNG, and a freshly
        initialised generator net (from that RNG), then copied from ``init``'s public checkpoint when
        one is given (no RNG drawn; recorded in the ledger as public). Returns (device, ledger, gen)."""
        self._check_data(data, self.name)
        device = self._device()
        ledger = self._make_ledger(budget, len(data), ledger)
        gen = torch_generator(rng)
        self.schema_ = data.schema
        self.generator_ = self._build(data.schema)
        init_weights(self.generator_, gen)
        self._start_from_public(self.generator_, ledger=ledger, schema=data.schema)
        return device, ledger, gen

    def _generate(self, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        device = self._device()
        net = self.generator_.to(device).eval()
        z = torch.randn(len(labels), self.noise_dim, generator=gen).to(device)
        return net(z, labels.to(device)).float().cpu()

    def state_dict(self) -> dict[str, torch.Tensor]:
        self._check_fitted()
        state = {f"generator.{k}": v.detach().cpu().clone() for k, v in self.generator_.state_dict().items()}
        state.update(self._class_probs_state())
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor], *, schema: ImageSchema):
        self.generator_ = self._build(schema)
        prefix = "generator."
        self.generator_.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        self.generator_.eval()
        self.class_probs_ = state["class_probs"].numpy()
        self.schema_ = schema
        return self


@register("dp-gan-image")
@dataclass(eq=False, kw_only=True)
class DPGANImage(GeneratorNetMixin, GANParams, DCTPriorSteps, ImageGenerator):
    """Conditional DCGAN; discriminator trained with opacus DP-SGD (plain DP-DCGAN).

    steps / batch_size None: planned from n, image size, epsilon and delta
    (:mod:`dpsynth.privacy.image_schedule`); epochs set: the legacy epoch plan. init: a public
    pretrained generator (:mod:`dpsynth.generators.image.pretrain`); the discriminator starts fresh.
    prior_share (default 0: off; None: dp-diffusion-image's size x epsilon rule): the share of the
    budget's zCDP rho spent on the DP DCT prior (``prior_k``, ``prior_clip``); with it,
    ``warmup_steps`` (None: 5/3 x the planned DP-SGD steps) non-private GAN steps on prior samples
    before DP-SGD. discriminator_steps (n_D) DP-SGD steps per generator round; clip_fakes: clip each
    fake image's discriminator gradient to max_grad_norm like a real one's (off: the exact fake
    gradient, which outweighs the clipped, noised real one at small n)."""

    generator_channels: int = 64
    discriminator_channels: int = 32
    batch_size: int | None = None
    epochs: float | None = None
    generator_lr: float = 2e-4
    discriminator_lr: float = 2e-4
    max_physical_batch_size: int = 256
    sample_batch_size: int = 512
    device: str = "auto"
    grad_sample_mode: str = "bk"
    steps: int | None = None
    init: str | None = None
    prior_share: float | None = 0.0
    prior_k: int = 8
    prior_clip: float = 0.4
    warmup_steps: int | None = None
    clip_fakes: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_prior_settings()
        if not isinstance(self.clip_fakes, bool):
            raise ConfigError(f"{self.name}: clip_fakes must be true or false, got {self.clip_fakes!r}")
        if self.clip_fakes and self.grad_sample_mode not in CLIP_FAKES_MODES:  # torch.func cannot pass their hooks
            raise ConfigError(f"{self.name}: clip_fakes needs grad_sample_mode {' or '.join(CLIP_FAKES_MODES)}, "
                              f"got {self.grad_sample_mode!r}")

    # ---- training -----------------------------------------------------------------------
    def fit(self, data: ImageData, *, budget: Budget, rng: np.random.Generator, ledger: Ledger | None = None,
            progress: ProgressFn | None = None) -> "DPGANImage":
        schema, n = data.schema, len(data)
        device, ledger, gen = self._start_fit(data, budget=budget, rng=rng, ledger=ledger)
        disc = ImageDiscriminator(n_classes=schema.n_classes, channels=self.discriminator_channels, shape=schema.shape)
        init_weights(disc, gen)  # the discriminator starts fresh, also from a public generator
        self.generator_.to(device)
        disc.to(device)
        self.class_probs_ = self._class_probs(data, budget=budget, ledger=ledger, rng=rng)
        # the plan reads public facts only and spends nothing; the prior rule reads its noise
        steps = self._plan_schedule(n=n, schema=schema, budget=budget, ledger=ledger, device=device).steps
        self.prior_ = self._release_prior(data, budget=budget, ledger=ledger, rng=rng)
        opt_d = torch.optim.Adam(disc.parameters(), lr=self.discriminator_lr, betas=(0.5, 0.999))
        opt_g = torch.optim.Adam(self.generator_.parameters(), lr=self.generator_lr, betas=(0.5, 0.999))
        dataset = TensorDataset(torch.from_numpy(data.images), torch.from_numpy(data.labels))
        if self.prior_ is not None and self._warmup():
            def prior_batch():  # post-processing of the released prior: no privacy cost
                labels = self._labels_for(self.schedule_.batch_size, None, gen)
                return self.prior_.sample_torch(labels, gen), labels

            self._train_non_private(disc, opt_d, opt_g, prior_batch, steps=self._warmup(), gen=gen, device=device,
                                    progress=progress, epsilon=math.inf if budget.non_private else ledger.epsilon())
            disc.train()
        if budget.non_private:
            images, labels = dataset.tensors

            def real_batch():
                idx = torch.randint(len(images), (self.schedule_.batch_size,), generator=gen)
                return images[idx], labels[idx]

            self._train_non_private(disc, opt_d, opt_g, real_batch, steps=steps, gen=gen, device=device,
                                    progress=progress)
        else:
            run = DPSGDRun.planned(ledger=ledger, schedule=self.schedule_, max_grad_norm=self.max_grad_norm,
                                   purpose="image discriminator DP-SGD", secure_mode=budget.secure_mode, module=disc,
                                   optimizer=opt_d, dataset=dataset, torch_rng=gen, grad_sample_mode=self.grad_sample_mode,
                                   noise_generator=self._noise_generator(gen, device))
            self._train_dp(run, opt_g, gen=gen, device=device, progress=progress)
            self.dp_plan_ = {**run.summary(), "schedule": self.schedule_.to_dict()}
            if self.prior_ is not None:
                self.dp_plan_["dct_prior"] = {"share_of_rho": self.prior_share_, "k": self.prior_.k,
                                              "clip": self.prior_clip, "warmup_steps": self._warmup()}
            self.opacus_history_ = [list(h) for h in run.engine.opacus_history()]
        self.generator_.cpu().eval()
        self.ledger_ = ledger
        return self

    def _fakes(self, m: int, gen: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(m, self.noise_dim, generator=gen).to(device)
        labels = torch.multinomial(torch.as_tensor(self.class_probs_), m, replacement=True, generator=gen).to(device)
        return self.generator_(z, labels), labels

    def _generator_step(self, disc, opt_g, m: int, gen, device) -> float:
        self.generator_.train()
        fake, labels = self._fakes(m, gen, device)
        logits = disc(with_label_maps(fake, labels, self.schema_.n_classes))
        loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        return public_update(self.generator_, loss, opt_g)

    def _train_dp(self, run: DPSGDRun, opt_g, *, gen, device, progress) -> None:
        """The discriminator's DP-SGD steps on the shared loop (see :func:`~dpsynth.generators.dpsgd.gan_task`)."""
        k = self.schema_.n_classes
        m = run.per_rank(run.expected_batch_size)  # fixed fake count; with several ranks each draws its share

        def fake_input():
            fake, labels = self._fakes(m, gen, device)
            return with_label_maps(fake, labels, k).requires_grad_(True)

        task = gan_task(real_input=lambda rows: with_label_maps(rows[0].to(device), rows[1].to(device), k),
                        fake_input=fake_input, generator_step=lambda disc: self._generator_step(disc, opt_g, m, gen, device),
                        generator_steps=self.generator_steps, generator=self.generator_,
                        generator_round=self.generator_round,
                        fake_clip=self.max_grad_norm if self.clip_fakes else None)
        run.train(task, max_physical_batch_size=self.max_physical_batch_size, progress=progress)

    def _train_non_private(self, disc, opt_d, opt_g, batch, *, steps: int, gen, device, progress,
                           epsilon: float = math.inf) -> None:
        """Plain GAN steps on ``batch()`` (images, labels): the non-private reference on real images,
        or the warm-up on prior samples (``epsilon``: what the ledger holds, for the progress line)."""
        k = self.schema_.n_classes
        g_loss = math.nan  # until the first generator round
        for step in range(1, steps + 1):
            images, labels = batch()
            disc.train()
            with torch.no_grad():
                fake, f_labels = self._fakes(self.schedule_.batch_size, gen, device)
            lr = disc(with_label_maps(images.to(device), labels.to(device), k))
            lf = disc(with_label_maps(fake, f_labels, k))
            d_loss = F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr)) + \
                F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            disc.eval()
            for _ in range(self.generator_steps if self.generator_round(step) else 0):
                g_loss = self._generator_step(disc, opt_g, self.schedule_.batch_size, gen, device)
            if progress is not None:
                progress({"step": step, "steps": steps, "d_loss": d_loss.item(), "g_loss": g_loss, "epsilon": epsilon})
