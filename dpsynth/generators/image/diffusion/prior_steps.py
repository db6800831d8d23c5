"""The DCT-prior steps of ``dp-diffusion-image``: when the prior is on, its release through the
ledger and the warm-up on its samples (:mod:`dpsynth.generators.image.dct_prior`)."""

from __future__ import annotations

import numpy as np
import torch

from dpsynth.data.images import ImageData
from dpsynth.errors import ConfigError
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger

#: the DCT-Gaussian prior (:mod:`dpsynth.generators.image.dct_prior`) is on by default below this many
#: training images (a public fact): at 546 images (BreastMNIST) DP-SGD alone left the synthetic-trained
#: CNN at the majority class; at 4,708 (PneumoniaMNIST) it learned the classes without it. The
#: threshold between them is judgement, not a measured optimum; checked at 1,080 (RetinaMNIST,
#: VALIDATION split, eps 10, seed 0): without the prior 0.200 (one class of 5, grey static), with it
#: 0.333 (fundus discs), real 0.425.
PRIOR_BELOW_N = 2000
#: ... and whenever n x epsilon (both public) is below this: the DP-SGD signal grows with n and
#: epsilon together, and the prior pays off where it is weak. VALIDATION split, seed 0, eps 1
#: (synthetic-trained CNN balanced accuracy, prior off -> on with SDEdit 0.5): PneumoniaMNIST
#: (n x eps 4,708) 0.750 -> 0.835 (real 0.951; mottled grey -> chest-like layouts); HAM10000 8x8
#: (5,961) 0.156 -> 0.178 (real 0.268, majority 0.143). PneumoniaMNIST eps 10 (47,080) met its
#: target without it; RetinaMNIST eps 10 (10,800) gained with it. 20,000 is judgement between them.
PRIOR_BELOW_N_EPSILON = 20_000
#: ... and whenever the planned DP-SGD step's noise on the averaged gradient, sigma / B per unit of
#: clip norm (the plan of :mod:`dpsynth.privacy.image_schedule` at the target epsilon: public), is
#: above this. A bigger image shrinks the batch a step may hold, so at the same n and epsilon the
#: step is noisier: PneumoniaMNIST at 64x64 on a CPU plans 16 images per step, sigma / B 0.030,
#: more than at epsilon 1 in 28x28 (0.022), where the prior helped. Checked on PneumoniaMNIST 64's
#: VALIDATION split, epsilon 10, seed 0, one CNN per side, prior off -> on: synthetic-trained balanced
#: accuracy 0.583 -> 0.825 (real 0.902 / 0.933), AUROC 0.798 -> 0.935, domain FID 11.7 -> 0.876
#: (mottled grey texture -> blurred chest layouts; evaluation/README.md, issue 12). 0.01 is judgement
#: between the plans the rules above leave without the prior (PneumoniaMNIST 28 eps 10: 0.0057, its
#: target met; HAM10000 8x8 eps 10: 0.0053) and those the prior helped on validation (RetinaMNIST eps
#: 10: 0.013; HAM10000 eps 1: 0.018); no decision of the two rules above on the benchmark sets changes.
PRIOR_ABOVE_NOISE_PER_IMAGE = 0.01
#: its share of the budget's zCDP rho (not tuned), and where sampling starts (SDEdit): the prior image
#: noised to half the diffusion. 0.5 was chosen on BreastMNIST's VALIDATION split at epsilon 10, seed 0
#: (synthetic-trained CNN balanced accuracy: strength 1 0.500, 0.7 0.617, 0.5 0.657, 0.3 0.659; the
#: prior's own samples 0.536; real 0.796; evaluation/README.md, issue 12).
DEFAULT_PRIOR_SHARE = 0.25
DEFAULT_SDEDIT_STRENGTH = 0.5
#: plain Adam steps on prior samples before DP-SGD when the prior is on, per planned DP-SGD step
#: (DP-FETA's warm-up; free in privacy; 1000 at the default 600 steps). Same split and seed: SDEdit 0.5
#: after 1000 warm-up steps 0.726 vs 0.657 without; pure-noise sampling 0.541 vs 0.500. One value
#: tried, not tuned.
WARMUP_PER_DP_STEP = 5 / 3


class DCTPriorSteps:
    """Mixin of :class:`~dpsynth.generators.image.diffusion.dp_diffusion_image.DPDiffusionImage` and
    :class:`~dpsynth.generators.image.gan.dp_gan_image.DPGANImage` (reads their prior_share, prior_k,
    prior_clip, warmup_steps and, the diffusion's only, sdedit_strength fields)."""

    def _check_prior_settings(self) -> None:
        """One-line errors for prior_share, warmup_steps, prior_k and (where the generator has it)
        sdedit_strength."""
        name, sdedit = self.name, getattr(self, "sdedit_strength", None)
        if self.prior_share is not None and not 0.0 <= self.prior_share < 1.0:
            raise ConfigError(f"{name}: prior_share must be in [0, 1), got {self.prior_share!r}")
        if self.warmup_steps is not None and int(self.warmup_steps) < 0:
            raise ConfigError(f"{name}: warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if int(self.prior_k) < 1:
            raise ConfigError(f"{name}: prior_k must be >= 1, got {self.prior_k!r}")
        if sdedit is not None and not 0.0 < sdedit <= 1.0:
            raise ConfigError(f"{name}: sdedit_strength must be in (0, 1], got {sdedit!r}")
        if self.prior_share == 0.0 and (self.warmup_steps or (sdedit or 1.0) < 1.0):
            uses = "warmup_steps and sdedit_strength < 1 use" if hasattr(self, "sdedit_strength") else \
                "warmup_steps trains on"
            raise ConfigError(f"{name}: {uses} the DCT prior: set prior_share > 0 (the share of the budget it spends)")

    def _resolved_prior_share(self, n: int, epsilon: float, noise_per_image: float = 0.0) -> float:
        """``prior_share``, or when None: :data:`DEFAULT_PRIOR_SHARE` below :data:`PRIOR_BELOW_N`
        images, below :data:`PRIOR_BELOW_N_EPSILON` images x epsilon, above
        :data:`PRIOR_ABOVE_NOISE_PER_IMAGE` planned noise per image (sigma / B), in latent mode
        (an ``autoencoder``), or when warm-up / SDEdit asks for the prior; else 0.
        ``epsilon``: the target (the non-private reference's is inf, its noise 0)."""
        if self.prior_share is not None:
            return float(self.prior_share)
        asked = (self.warmup_steps or 0) > 0 or (getattr(self, "sdedit_strength", None) or 1.0) < 1.0
        small = n < PRIOR_BELOW_N or n * epsilon < PRIOR_BELOW_N_EPSILON
        noisy = noise_per_image > PRIOR_ABOVE_NOISE_PER_IMAGE
        # latent mode: the latent plan's step is quiet (PneumoniaMNIST 64 at epsilon 10: 128 latents
        # per step, sigma / B 0.0057), yet the latent UNet alone collapsed to one class. PneumoniaMNIST
        # 64's VALIDATION split, epsilon 10, seed 0, one CNN per side: latent 600 steps 0.519 (recall
        # 0.04 / 1.00), 2400 steps 0.533, latent + prior 0.791 (real 0.902 / 0.933; issue 12).
        latent = bool(getattr(self, "autoencoder", None))
        return DEFAULT_PRIOR_SHARE if (small or noisy or latent or asked) else 0.0

    def _planned_noise_per_image(self, *, n: int, budget: Budget, delta: float) -> float:
        """sigma / B of the planned DP-SGD step (``self.schedule_``) at the target epsilon; 0 for
        the non-private reference. Public facts only."""
        if budget.non_private:
            return 0.0
        plan = self.schedule_
        sigma = plan.planning_noise_multiplier
        if sigma is None:  # a fixed batch and steps, or legacy epochs: the plan did not need it
            from dpsynth.privacy.schedule import planning_noise_multiplier

            sigma = planning_noise_multiplier(n=n, batch_size=plan.batch_size, steps=plan.steps,
                                              epsilon=float(budget.epsilon), delta=delta)
        return float(sigma) / plan.batch_size

    def _warmup(self) -> int:
        """``warmup_steps``, or when None :data:`WARMUP_PER_DP_STEP` x the planned DP-SGD steps with
        a prior, 0 without."""
        if self.warmup_steps is not None:
            return int(self.warmup_steps)
        if getattr(self, "prior_", None) is None:
            return 0
        return round(WARMUP_PER_DP_STEP * self.schedule_.steps)

    def _strength(self) -> float:
        """Where sampling starts: ``sdedit_strength``, or when None 0.5 with a prior, 1 without."""
        if self.sdedit_strength is not None:
            return float(self.sdedit_strength)
        return DEFAULT_SDEDIT_STRENGTH if getattr(self, "prior_", None) is not None else 1.0

    def _release_prior(self, data: ImageData, *, budget: Budget, ledger: Ledger, rng: np.random.Generator):
        """The DCT-Gaussian prior (:mod:`dpsynth.generators.image.dct_prior`) when ``prior_share`` > 0:
        Gaussian releases spending that share of the budget's zCDP rho. Called after the DP-SGD
        plan (batch, steps: public facts; the default rule reads its noise per image) and before
        DP-SGD's noise is calibrated, so the UNet's noise is calibrated to what is left. Class
        sizes: the released class frequencies x the public n."""
        noise = self._planned_noise_per_image(n=len(data), budget=budget, delta=ledger.delta)
        share = self.prior_share_ = self._resolved_prior_share(len(data), float(budget.epsilon), noise)
        if share == 0.0:
            return None
        from dpsynth.generators.image.dct_prior import release_dct_prior
        from dpsynth.privacy.budget import zcdp_rho_for

        if budget.non_private:
            ledger.record_non_private(purpose=f"non-private reference: {self.name} exact DCT-Gaussian prior")
        rho = None if budget.non_private else share * zcdp_rho_for(budget.epsilon, ledger.delta)
        k = min(int(self.prior_k), data.schema.height, data.schema.width)
        return release_dct_prior(data.images, data.labels, n_classes=data.schema.n_classes,
                                 class_counts=self.class_probs_ * len(data), k=k, clip=self.prior_clip,
                                 rho=rho, ledger=ledger, rng=rng, secure=budget.secure_mode)

    def _warm_up(self, model, ema, acp, *, epsilon: float, gen, device, progress) -> None:
        """``warmup_steps`` plain Adam steps on fresh prior samples (post-processing of the
        released prior: no privacy cost), labels drawn from the released class frequencies."""
        from dpsynth.privacy.image_schedule import max_batch_for

        _, h, w = self._model_shape()  # latent mode: the latent's size (prior images are encoded)
        batch_size = max_batch_for(height=h, width=w, noise_multiplicity=int(self.noise_multiplicity),
                                   device=device.type if device.type == "cuda" else "cpu")

        def prior_batch():
            labels = self._labels_for(batch_size, None, gen)
            return self._to_model_space(self.prior_.sample_torch(labels, gen)), labels

        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=self.lr)
        self._train_plain(model, opt, ema, prior_batch, acp, steps=self._warmup(), gen=gen, device=device,
                          progress=progress, phase="warm-up on the DCT prior", epsilon=epsilon)
