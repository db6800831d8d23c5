"""``dp-diffusion-image``: a class-conditional DDPM trained with DP-SGD, after DPDM
(Dockhorn, Cao, Vahdat, Kreis: "Differentially Private Diffusion Models", TMLR 2023).

Network: a small diffusers ``UNet2DModel`` (ResNet down/up blocks, no attention, GroupNorm,
sinusoidal timestep embedding + Linear MLP, ``num_class_embeds`` = the schema's classes, whose
embedding is added to the timestep embedding). It holds only Conv2d, GroupNorm, Linear and
Embedding weights; opacus' ModuleValidator reports nothing to fix.

Privacy argument
----------------
- Only the UNet's training reads images, through opacus DP-SGD: Poisson sampling, per-example
  clipping, Gaussian noise calibrated (with preprocessing spend) to the target, each step
  charged to the ledger by :class:`~dpsynth.privacy.engine.DPSGDEngine`. Large logical batches
  run as small physical ones through BatchMemoryManager.
- Noise multiplicity (DPDM): each image is noised at K random timesteps and its loss is the mean
  of the K denoising losses. The K copies form ONE example: one clipped gradient per image. The
  default ``grad_sample_mode="bk"`` (book-keeping clipping, :mod:`dpsynth.privacy.bookkeeping`)
  sums each image's K rows before clipping; ``"vmap"`` takes ``torch.func.vmap(grad(...))`` over
  a per-*example* loss (:mod:`dpsynth.privacy.functional_grads`) with opacus in ``no_op``. Both
  release the same gradient (``tests/unit/privacy/test_bookkeeping.py``).
- The label of an image is part of its example. Class frequencies for unconditional sampling
  are one Gaussian release charged to the ledger.
- EMA of the weights and DDIM sampling are post-processing. Only the EMA weights are saved.
- Small sets, small budgets or noisy steps (default: below 2,000 images, images x epsilon below
  20,000, or a planned step with sigma / batch above 0.01, e.g. 64x64 on a CPU):
  a DP "easy image" prior, three Gaussian releases of
  per-class DCT statistics charged to the ledger before DP-SGD is calibrated
  (:mod:`dpsynth.generators.image.dct_prior`). Sampling from it, warming up on it and starting
  DDIM from its images (SDEdit) are post-processing; the prior's means and spreads are saved.

Differences from DPDM: epsilon-prediction DDPM loss on discrete timesteps (not EDM
preconditioning). Sampling is exact per class via the class embedding; optional
classifier-free guidance (``cond_drop`` > 0 trains a null class, ``guidance_scale`` w mixes
eps_null + w (eps_class - eps_null) at sampling). The reference without DP (``Budget.non_private_reference()``) trains the same
network with plain Adam on uniformly drawn batches and is recorded as non-private.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from torch.utils.data import TensorDataset

from dpsynth.data.image_schema import ImageSchema
from dpsynth.data.images import ImageData
from dpsynth.errors import ConfigError
from dpsynth.generators.base import ProgressFn, torch_generator
from dpsynth.generators.dpsgd import DiffusionParams
from dpsynth.generators.image.base import ImageGenerator, ema_update, init_weights
from dpsynth.generators.image.diffusion.latent_steps import LatentSteps
from dpsynth.generators.image.diffusion.prior_steps import DCTPriorSteps
from dpsynth.generators.registry import register
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.dpsgd_loop import DPSGDRun, DPSGDTask
from dpsynth.privacy.functional_grads import per_example_grads, set_grad_samples
from dpsynth.privacy.grad_modes import GRAD_SAMPLE_MODES
from dpsynth.privacy.ledger import Ledger

def build_unet(schema: ImageSchema, *, block_out_channels: tuple[int, ...], layers_per_block: int, norm_num_groups: int,
               null_class: bool = False):
    """The UNet; ``null_class`` adds one more class embedding (index n_classes) for
    classifier-free guidance."""
    from diffusers import UNet2DModel

    levels = len(block_out_channels)
    factor = 2 ** (levels - 1)
    if schema.height % factor or schema.width % factor:
        raise ConfigError(f"dp-diffusion-image: image size {schema.height}x{schema.width} must be divisible by"
                          f" {factor} for {levels} UNet levels (use fewer block_out_channels)")
    if any(c % norm_num_groups for c in block_out_channels):
        raise ConfigError(f"dp-diffusion-image: norm_num_groups={norm_num_groups} must divide every block_out_channels"
                          f" {list(block_out_channels)}")
    return UNet2DModel(
        sample_size=(schema.height, schema.width), in_channels=schema.channels, out_channels=schema.channels,
        block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) * levels, up_block_types=("UpBlock2D",) * levels,
        add_attention=False, norm_num_groups=norm_num_groups, num_class_embeds=schema.n_classes + (1 if null_class else 0),
    )


#: parameter-name parts that carry the timestep / class conditioning into the UNet, plus every
#: GroupNorm affine and bias: the subset ``trainable="conditioning"`` fine-tunes (DP-LDM style)
CONDITIONING_PARTS = ("time_embedding", "class_embedding", "time_emb_proj", "norm")
TRAINABLE = ("all", "conditioning")


def freeze_to_conditioning(model: torch.nn.Module) -> tuple[int, int]:
    """Leave only the conditioning path, GroupNorm affines and biases trainable (the rest is
    frozen at its public pretrained values). Returns (trainable, total) parameter counts."""
    trainable = total = 0
    for name, param in model.named_parameters():
        keep = name.endswith("bias") or any(part in name for part in CONDITIONING_PARTS)
        param.requires_grad_(keep)
        total += param.numel()
        trainable += param.numel() if keep else 0
    return trainable, total


def denoising_loss(forward, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """One example's loss: mean over its K noisy copies of the epsilon-prediction MSE."""
    pred = forward(x_t, t, class_labels=y, return_dict=False)[0]
    return ((pred - eps) ** 2).mean()


@register("dp-diffusion-image")
@dataclass(eq=False, kw_only=True)
class DPDiffusionImage(LatentSteps, DCTPriorSteps, DiffusionParams, ImageGenerator):
    """Class-conditional DDPM (diffusers UNet2DModel) trained with DP-SGD and noise multiplicity.

    cond_drop: chance that a noisy copy's label is replaced by a learned null class during
    training (classifier-free guidance; drawn from the run's RNG, independent of the data, so
    it changes nothing in the privacy analysis); guidance_scale: w in eps = eps_null + w
    (eps_class - eps_null) at sampling (1 = plain class conditioning; needs cond_drop > 0).
    trainable: "all" (default) or "conditioning": with ``init``, DP-fine-tune only the timestep
    and class embeddings, each ResNet block's conditioning projection, the GroupNorm affines and
    the biases (~10% of the weights; DP-LDM, Lyu et al. 2023, fine-tunes only the conditioning
    layers of a public model: the DP noise grows with the number of trained weights).
    prior_share: the share of the budget's zCDP rho spent on a DP per-class Gaussian over the k x k
    lowest DCT coefficients (``prior_k``, clip ``prior_clip``; :mod:`~dpsynth.generators.image.dct_prior`)
    before DP-SGD, which gets the rest. None (default): 0.25 below 2,000 training images, below
    20,000 images x epsilon, above 0.01 planned noise per image (sigma / batch) or with an
    autoencoder (:mod:`~dpsynth.generators.image.diffusion.prior_steps`), else 0.
    sdedit_strength: sampling starts from a prior image noised to this fraction of the diffusion
    (SDEdit, Meng et al. 2022); None: 0.5 with a prior, 1 (pure noise) without. warmup_steps: plain
    Adam steps on prior samples before DP-SGD (DP-FETA's warm-up; post-processing); None: 5/3 x the
    planned DP-SGD steps with a prior (1000 at the default 600), 0 without.
    steps / batch_size None: planned from n, image size, epsilon and delta
    (:mod:`dpsynth.privacy.image_schedule`); epochs set: the legacy epoch plan. init: a public
    pretrained checkpoint folder (:mod:`dpsynth.generators.image.pretrain`). autoencoder: a public
    autoencoder folder (:mod:`dpsynth.generators.image.autoencoder`): DP-SGD on each image's latent,
    samples decoded (DP-LDM); the DCT prior stays in pixels (its samples are encoded for the warm-up
    and the SDEdit start); no ``init`` with it.

    Defaults (channels (16, 32, 32), noise multiplicity 2, lr 1e-3, EMA 0.99, 25 DDIM steps) were
    re-checked on PneumoniaMNIST's VALIDATION split against lr 3e-3 and noise multiplicity 4 at the
    same DP schedule (evaluation/tune_image_defaults.py; table in evaluation/README.md, issue 12)
    and kept: they scored the best validation AUROC."""

    grad_sample_modes = ("vmap",) + GRAD_SAMPLE_MODES

    block_out_channels: tuple[int, ...] = (16, 32, 32)
    layers_per_block: int = 1
    norm_num_groups: int = 8
    noise_multiplicity: int = 2
    batch_size: int | None = None
    epochs: float | None = None
    lr: float = 1e-3
    ema_decay: float = 0.99
    sample_steps: int = 25
    ddim_eta: float = 0.0
    max_physical_batch_size: int = 64
    sample_batch_size: int = 256
    device: str = "auto"
    cond_drop: float = 0.0
    trainable: str = "all"
    prior_share: float | None = None
    prior_k: int = 8
    prior_clip: float = 0.4
    warmup_steps: int | None = None
    sdedit_strength: float | None = None
    grad_sample_mode: str = "bk"
    steps: int | None = None
    init: str | None = None
    autoencoder: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.grad_sample_mode not in ("vmap", "bk") and int(self.noise_multiplicity) != 1:
            raise ConfigError(f"dp-diffusion-image: grad_sample_mode {self.grad_sample_mode!r} clips each forward row,"
                              " so it needs noise_multiplicity 1; 'vmap' and 'bk' clip each image over its K noisy"
                              " copies")
        if not 0.0 <= self.cond_drop < 1.0:
            raise ConfigError(f"dp-diffusion-image: cond_drop must be in [0, 1), got {self.cond_drop!r}")
        if self.guidance_scale != 1.0 and self.cond_drop <= 0.0:
            raise ConfigError("dp-diffusion-image: guidance_scale != 1 needs cond_drop > 0 (a trained null class)")
        if self.trainable not in TRAINABLE:
            raise ConfigError(f"dp-diffusion-image: trainable must be one of {TRAINABLE}, got {self.trainable!r}")
        if self.trainable != "all" and not self.init:
            raise ConfigError("dp-diffusion-image: trainable='conditioning' fine-tunes a public checkpoint: set init")
        self._check_prior_settings()
        self._check_latent_settings()
        self.block_out_channels = tuple(self.block_out_channels)

    # ---- building blocks ----------------------------------------------------------------
    def _unet(self, schema: ImageSchema):
        return build_unet(schema, block_out_channels=self.block_out_channels, layers_per_block=self.layers_per_block,
                          norm_num_groups=self.norm_num_groups, null_class=self.cond_drop > 0)

    def _alphas_cumprod(self) -> torch.Tensor:
        from diffusers import DDPMScheduler

        return DDPMScheduler(num_train_timesteps=self.num_train_timesteps, beta_schedule=self.beta_schedule).alphas_cumprod

    def _noisy_copies(self, x0: torch.Tensor, y: torch.Tensor, acp: torch.Tensor, gen: torch.Generator, device):
        """K noisy copies per image: (B, K, C, H, W) inputs, timesteps (B, K), labels (B, K), targets."""
        b, k = x0.shape[0], int(self.noise_multiplicity)
        t = torch.randint(self.num_train_timesteps, (b, k), generator=gen)
        eps = torch.randn((b, k, *x0.shape[1:]), generator=gen)
        a = acp[t].view(b, k, 1, 1, 1)
        x_t = a.sqrt() * x0.unsqueeze(1) + (1 - a).sqrt() * eps
        y_k = y.view(b, 1).expand(b, k).contiguous()
        if self.cond_drop > 0:  # classifier-free guidance: some copies see the null class
            drop = torch.rand((b, k), generator=gen) < self.cond_drop
            y_k = torch.where(drop, torch.full_like(y_k, self._null_label), y_k)
        return x_t.to(device), t.to(device), y_k.to(device), eps.to(device)

    # ---- training -----------------------------------------------------------------------
    def fit(self, data: ImageData, *, budget: Budget, rng: np.random.Generator, ledger: Ledger | None = None,
            progress: ProgressFn | None = None) -> "DPDiffusionImage":
        self._check_data(data, self.name)
        if int(self.noise_multiplicity) < 1:
            raise ConfigError(f"{self.name}: noise_multiplicity must be >= 1")
        schema, n = data.schema, len(data)
        device = self._device()
        ledger = self._make_ledger(budget, n, ledger)
        gen = torch_generator(rng)
        self._null_label = schema.n_classes  # the extra class embedding when cond_drop > 0
        space = self.space_ = self._latent_space(schema, ledger=ledger)  # the schema, or a public latent space
        model = self._unet(space)
        init_weights(model, gen)  # from the run's generator, not torch's global RNG
        self._start_from_public(model, ledger=ledger, schema=schema)
        if self.trainable == "conditioning":
            self.trained_parameters_ = freeze_to_conditioning(model)
        else:
            total = sum(p.numel() for p in model.parameters())
            self.trained_parameters_ = (total, total)
        model.to(device).train()
        self.class_probs_ = self._class_probs(data, budget=budget, ledger=ledger, rng=rng)
        # the plan reads public facts only and spends nothing; the prior rule reads its noise
        steps = self._plan_schedule(n=n, schema=space, budget=budget, ledger=ledger, device=device).steps
        self.prior_ = self._release_prior(data, budget=budget, ledger=ledger, rng=rng)
        ema = {k: p.detach().clone() for k, p in model.named_parameters()}
        acp = self._alphas_cumprod()
        if self.prior_ is not None and self._warmup():
            self._warm_up(model, ema, acp, epsilon=math.inf if budget.non_private else ledger.epsilon(), gen=gen,
                          device=device, progress=progress)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=self.lr)
        dataset = TensorDataset(self._model_inputs(data.images), torch.from_numpy(data.labels))
        if budget.non_private:
            images, labels = dataset.tensors

            def real_batch():
                idx = torch.randint(len(images), (self.schedule_.batch_size,), generator=gen)
                return images[idx], labels[idx]

            self._train_plain(model, opt, ema, real_batch, acp, steps=steps, gen=gen, device=device, progress=progress)
        else:
            run = DPSGDRun.planned(ledger=ledger, schedule=self.schedule_, max_grad_norm=self.max_grad_norm,
                                   purpose="UNet DP-SGD (noise multiplicity)", secure_mode=budget.secure_mode,
                                   module=model, optimizer=opt, dataset=dataset, torch_rng=gen,
                                   grad_sample_mode="no_op" if self.grad_sample_mode == "vmap" else self.grad_sample_mode,
                                   noise_generator=self._noise_generator(gen, device))
            self._train_dp(run, model, ema, acp, gen=gen, device=device, progress=progress)
            self.dp_plan_ = {**run.summary(), "grad_sample_mode": self.grad_sample_mode,
                             "schedule": self.schedule_.to_dict(), "trainable": self.trainable,
                             "trained_parameters": self.trained_parameters_[0]}
            if self.prior_ is not None:
                self.dp_plan_["dct_prior"] = {"share_of_rho": self.prior_share_, "k": self.prior_.k,
                                              "clip": self.prior_clip, "warmup_steps": self._warmup(),
                                              "sdedit_strength": self._strength()}
            self.opacus_history_ = [list(h) for h in run.engine.opacus_history()]
        self.unet_ = self._unet(space)
        self.unet_.load_state_dict({k: v.cpu() for k, v in ema.items()})
        self.unet_.eval()
        self.schema_ = schema
        self.ledger_ = ledger
        return self

    def _train_dp(self, run: DPSGDRun, model, ema, acp, *, gen, device, progress) -> None:
        """The UNet's DP-SGD steps on the shared loop (also one federated round). ``vmap``: one
        clipped gradient per image over its K noisy copies (torch.func, opacus in ``no_op``);
        ``bk``: the same from one backward over example-major rows; else opacus' per-example
        machinery on K = 1 copy (one forward row per image)."""

        def loss(private, rows):
            x0, y = rows
            inputs = self._noisy_copies(x0, y, acp, gen, device)
            if run.grad_sample_mode == "no_op":
                grads, losses = per_example_grads(model, denoising_loss, *inputs)
                set_grad_samples(model, grads)
                return losses
            # example-major rows (an image's K copies side by side): 'bk' sums each image's rows
            # before clipping; the other modes run with K = 1
            b, k = inputs[1].shape
            x_t, t, y_k, eps = (v.flatten(0, 1) for v in inputs)
            pred = private(x_t, t, class_labels=y_k, return_dict=False)[0]
            return ((pred - eps) ** 2).flatten(1).mean(1).view(b, k).mean(1)

        def after_step(private, step, losses):
            ema_update(ema, model, decay=self.ema_decay, step=step)
            return {"loss": float(losses.mean()) if len(losses) else float("nan")}

        run.train(DPSGDTask(loss=loss, after_step=after_step), max_physical_batch_size=self.max_physical_batch_size,
                  progress=progress)

    def _train_plain(self, model, opt, ema, batch, acp, *, steps: int, gen, device, progress,
                     phase: str = "non-private reference", epsilon: float = math.inf) -> None:
        """Plain Adam steps on ``batch()`` (images, labels): the non-private reference on real
        images, or the warm-up on prior samples."""
        for step in range(1, steps + 1):
            images, labels = batch()
            loss = 0.0
            opt.zero_grad(set_to_none=True)
            for chunk in torch.arange(len(images)).split(self.max_physical_batch_size):
                x_t, t, y, eps = self._noisy_copies(images[chunk], labels[chunk], acp, gen, device)
                b = t.shape[0]
                pred = model(x_t.flatten(0, 1), t.flatten(), class_labels=y.flatten(), return_dict=False)[0]
                part = ((pred - eps.flatten(0, 1)) ** 2).mean() * (b / len(images))
                part.backward()
                loss += part.item()
            opt.step()
            ema_update(ema, model, decay=self.ema_decay, step=step)
            if progress is not None:
                progress({"step": step, "steps": steps, "loss": loss, "phase": phase, "epsilon": epsilon})

    # ---- sampling -----------------------------------------------------------------------
    def _scheduler(self):
        from diffusers import DDIMScheduler

        ae = getattr(self, "autoencoder_", None)  # latents clip to their public range, pixels to [-1, 1]
        sched = DDIMScheduler(num_train_timesteps=self.num_train_timesteps, beta_schedule=self.beta_schedule,
                              clip_sample=True, clip_sample_range=1.0 if ae is None else ae.clip,
                              timestep_spacing="trailing")
        sched.set_timesteps(int(self.sample_steps))
        return sched

    def _generate(self, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        device = self._device()
        unet = self.unet_.to(device)
        sched = self._scheduler()
        x = torch.randn((len(labels), *self._model_shape()), generator=gen).to(device)
        timesteps = sched.timesteps
        strength = self._strength()
        if strength < 1.0:  # SDEdit: start from a prior image noised to t0 = strength x T
            timesteps = timesteps[timesteps < strength * self.num_train_timesteps]
            if len(timesteps) == 0:
                raise ConfigError(f"dp-diffusion-image: sdedit_strength {strength} leaves no sampling step"
                                  f" of {self.sample_steps}")
            start = self._to_model_space(self.prior_.sample_torch(labels, gen)).to(device)
            x = sched.add_noise(start, x, timesteps[:1].expand(len(labels)).to(device))
        y = labels.to(device)
        guided = self.cond_drop > 0 and self.guidance_scale != 1.0
        if guided:
            y = torch.cat([y, torch.full_like(y, self.schema_.n_classes)])
        for t in timesteps:
            if guided:
                eps_c, eps_u = unet(torch.cat([x, x]), t.to(device), class_labels=y, return_dict=False)[0].chunk(2)
                eps = eps_u + self.guidance_scale * (eps_c - eps_u)
            else:
                eps = unet(x, t.to(device), class_labels=y, return_dict=False)[0]
            x = sched.step(eps, t, x, eta=self.ddim_eta, generator=gen if self.ddim_eta > 0 else None).prev_sample
        return self._to_pixels(x.float().cpu())

    # ---- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        self._check_fitted()
        state = {f"unet.{k}": v.detach().cpu().clone() for k, v in self.unet_.state_dict().items()}
        state.update(self._class_probs_state())
        state.update(self._latent_state())
        if getattr(self, "prior_", None) is not None:
            state.update(self.prior_.state_dict())
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor], *, schema: ImageSchema) -> "DPDiffusionImage":
        self.space_ = self._load_latent_state(state, schema)
        self.unet_ = self._unet(self.space_)
        self.unet_.load_state_dict({k[len("unet."):]: v for k, v in state.items() if k.startswith("unet.")})
        self.unet_.eval()
        self.class_probs_ = state["class_probs"].numpy()
        self.prior_ = None
        if "prior.mean" in state:
            from dpsynth.generators.image.dct_prior import DCTGaussianPrior

            self.prior_ = DCTGaussianPrior.from_state_dict(state, shape=schema.shape)
        elif (self.sdedit_strength or 1.0) < 1.0:
            raise ConfigError("dp-diffusion-image: sdedit_strength < 1 needs the DCT prior, and this checkpoint has none")
        self.schema_ = schema
        return self

