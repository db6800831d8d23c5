"""``dp-merf-image``: the conditional generator network of ``dp-gan-image`` trained against a fixed
kernel critic instead of a DP-SGD discriminator: it matches one DP release of the real images'
mean embedding under random Fourier features (DP-MERF: Harder, Adamczewski and Park, "DP-MERF:
Differentially Private Mean Embeddings with Random Features for Practical Privacy-preserving
Data Generation", AISTATS 2021; a generative moment-matching network with a DP target).

Why: on small sets ``dp-gan-image``'s discriminator is drowned by its DP-SGD noise within 50 steps
and the generator follows it into checkerboards (evaluation/README.md, issue 12, session 23). Here
the real images are read once, by a Gaussian mechanism whose signal grows with n, and everything
after it is post-processing: the generator can train as long as it likes for free.

Privacy argument
----------------
- The random frequencies (``n_frequencies`` split over ``length_scales``) are drawn from the run's
  RNG: no data. Images are average-pooled to at most ``feature_resolution`` pixels a side first (a
  public, fixed map), so the features stay affordable at clinical resolution.
- The feature map phi(x) = [cos(W x), sin(W x)] / sqrt(F) over all F frequencies has L2 norm
  exactly 1 for every image. An image's labelled embedding phi(x) (x) e_y (its class's block) has
  norm 1, so the per-class sums of all training embeddings have L2 sensitivity 1 when one image is
  added or removed.
- Those sums are released once with Gaussian noise; the noise multiplier is calibrated by the
  accountant so that the ledger's total (this release and the class frequencies before it) is the
  target epsilon. Divided by the public n they are the target mean embedding.
- Class frequencies (for drawing labels) are the shared Gaussian histogram release
  (:class:`~dpsynth.generators.image.base.ImageGenerator`). The generator's training, on
  ||target - mean embedding of its samples||^2, and all sampling are post-processing.
- ``init``: the generator may start from a network pretrained WITHOUT privacy on *public* images
  (``dpsynth pretrain -g dp-gan-image|dp-merf-image``, :mod:`dpsynth.generators.image.pretrain`); the
  ledger records the sources as public (epsilon 0). No private image is read by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from dpsynth.data.images import ImageData
from dpsynth.errors import ConfigError
from dpsynth.generators.base import ProgressFn
from dpsynth.generators.image.base import ImageGenerator
from dpsynth.generators.image.gan.dp_gan_image import GeneratorNetMixin
from dpsynth.generators.registry import register
from dpsynth.privacy.accountants import calibrate_noise
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.mechanisms import gaussian_noise


def pooled(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Average-pool (B, C, H, W) so that neither side exceeds ``resolution`` (identity below it)."""
    h, w = images.shape[2:]
    if max(h, w) <= resolution:
        return images
    return F.adaptive_avg_pool2d(images, (min(h, resolution), min(w, resolution)))


#: the planned number of random frequencies keeps the release's noise norm per class, sigma sqrt(2 F) / n,
#: at most this (a class's share of the target embedding has norm <= its frequency <= 1), between these
#: bounds. One value, not searched; on BreastMNIST's VALIDATION split at epsilon 1 fewer frequencies
#: alone did not help (300: still the majority class), pooling (below) did (evaluation/README.md, session 24).
MAX_NOISE_NORM = 0.2
MIN_FREQUENCIES, MAX_FREQUENCIES = 100, 2000
#: the planned pooling: features on images pooled to at most FINE_RESOLUTION pixels a side, or to
#: COARSE_RESOLUTION when the release is noise-limited (the rule above plans fewer than
#: MAX_FREQUENCIES, n / sigma < 316). Pixel-level random frequencies let the generator fit the noise
#: with pixel patterns; coarse ones cannot. BreastMNIST VALIDATION split, seed 0, epsilon 1
#: (n / sigma 132): CNN balanced accuracy 0.500 at 28 px (pixel noise) -> 0.584 at 7 px (real 0.794);
#: epsilon 10 (n / sigma 1,008) at 28 px: 0.675 (real 0.791). The threshold is the rule's, not tuned.
FINE_RESOLUTION, COARSE_RESOLUTION = 32, 7


def _wanted_frequencies(n: int, noise_multiplier: float) -> float:
    """F at which the release's noise norm per class, sigma sqrt(2 F) / n, equals MAX_NOISE_NORM."""
    return (MAX_NOISE_NORM * n / noise_multiplier) ** 2 / 2


def planned_frequencies(asked: int | None, *, n: int, noise_multiplier: float | None) -> int:
    """``asked``, or when None the most frequencies (within the bounds) whose noise norm per class
    stays under :data:`MAX_NOISE_NORM`: F = (MAX_NOISE_NORM n / sigma)^2 / 2, from public n and the
    calibrated sigma (None: the non-private reference, no noise)."""
    if asked is not None:
        return int(asked)
    if not noise_multiplier:
        return MAX_FREQUENCIES
    return int(min(MAX_FREQUENCIES, max(MIN_FREQUENCIES, _wanted_frequencies(n, noise_multiplier))))


def planned_resolution(asked: int | None, *, n: int, noise_multiplier: float | None) -> int:
    """``asked``, or when None :data:`COARSE_RESOLUTION` when the release is noise-limited (see
    :data:`FINE_RESOLUTION`), else :data:`FINE_RESOLUTION`. Public facts only."""
    if asked is not None:
        return int(asked)
    if not noise_multiplier:
        return FINE_RESOLUTION
    limited = _wanted_frequencies(n, noise_multiplier) < MAX_FREQUENCIES
    return COARSE_RESOLUTION if limited else FINE_RESOLUTION


class RandomFourierFeatures:
    """phi(x) = [cos(W x), sin(W x)] / sqrt(F): an unbiased estimate of a sum of Gaussian kernels
    (one per length scale, equal weights), with ||phi(x)|| = 1 for every x. The length scales are
    in units of sqrt(d), d the number of pooled pixels, with pixels in [-1, 1]."""

    def __init__(self, *, dim: int, n_frequencies: int, length_scales: tuple[float, ...], gen: torch.Generator):
        per_scale = np.array_split(np.arange(n_frequencies), len(length_scales))
        blocks = [torch.randn(dim, len(idx), generator=gen, dtype=torch.float64) / (scale * math.sqrt(dim))
                  for scale, idx in zip(length_scales, per_scale)]
        self.weights = torch.cat(blocks, dim=1).float()  # (d, F)
        self.n_frequencies = n_frequencies

    def to(self, device) -> "RandomFourierFeatures":
        self.weights = self.weights.to(device)
        return self

    def __call__(self, flat: torch.Tensor) -> torch.Tensor:
        proj = flat @ self.weights
        return torch.cat([torch.cos(proj), torch.sin(proj)], dim=1) / math.sqrt(self.n_frequencies)


@register("dp-merf-image")
@dataclass(eq=False, kw_only=True)
class DPMERFImage(GeneratorNetMixin, ImageGenerator):
    """Conditional generator matching a DP random-feature mean embedding (DP-MERF).

    n_frequencies: random frequencies (2 x that many features per class; None: planned from n and
    the calibrated noise, :func:`planned_frequencies`); length_scales: the Gaussian kernels' widths
    in units of sqrt(pixels); feature_resolution: images are pooled to at most this many pixels a
    side before the features (None: planned, :func:`planned_resolution`); steps / batch_size / lr:
    the generator's Adam steps (post-processing: they cost no privacy); batch_size is per class.
    init: a generator pretrained on public images (a dp-gan-image or dp-merf-image checkpoint with
    the same noise_dim and generator_channels)."""

    noise_dim: int = 32
    generator_channels: int = 64
    n_frequencies: int | None = None
    length_scales: tuple[float, ...] = (0.25, 0.5, 1.0)
    feature_resolution: int | None = None
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    sample_batch_size: int = 512
    device: str = "auto"
    init: str | None = None

    def __post_init__(self) -> None:
        integers = ["noise_dim", "generator_channels", "steps", "batch_size", "sample_batch_size"]
        for key in integers + [k for k in ("n_frequencies", "feature_resolution") if getattr(self, k) is not None]:
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{self.name}: {key} must be an integer, got {value!r}")
        scales = self.length_scales if isinstance(self.length_scales, (list, tuple)) else [self.length_scales]
        if not isinstance(self.lr, (int, float)) or not all(isinstance(v, (int, float)) for v in scales):
            key = "lr" if not isinstance(self.lr, (int, float)) else "length_scales"
            raise ConfigError(f"{self.name}: {key} must be {'a number' if key == 'lr' else 'numbers'}, "
                              f"got {getattr(self, key)!r}")
        self.length_scales = tuple(float(v) for v in scales)
        checks = {"noise_dim": self.noise_dim >= 1, "generator_channels": self.generator_channels >= 1,
                  "n_frequencies": self.n_frequencies is None or self.n_frequencies >= 1,
                  "feature_resolution": self.feature_resolution is None or self.feature_resolution >= 1,
                  "steps": self.steps >= 1, "batch_size": self.batch_size >= 1, "lr": self.lr > 0,
                  "length_scales": len(self.length_scales) >= 1 and all(s > 0 for s in self.length_scales)}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"{self.name}: {bad[0]} must be positive, got {getattr(self, bad[0])!r}")
        if (self.n_frequencies or MIN_FREQUENCIES) < len(self.length_scales):
            raise ConfigError(f"{self.name}: n_frequencies ({self.n_frequencies}) must be >= the number of "
                              f"length_scales ({len(self.length_scales)})")

    def get_params(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["length_scales"] = list(self.length_scales)
        return out

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        return self.features_(pooled(images, self.feature_resolution_).flatten(1))

    # ---- training -----------------------------------------------------------------------
    def fit(self, data: ImageData, *, budget: Budget, rng: np.random.Generator, ledger: Ledger | None = None,
            progress: ProgressFn | None = None) -> "DPMERFImage":
        schema, n = data.schema, len(data)
        device, ledger, gen = self._start_fit(data, budget=budget, rng=rng, ledger=ledger)
        self.generator_.to(device)
        self.class_probs_ = self._class_probs(data, budget=budget, ledger=ledger, rng=rng)
        sigma = self._calibrate(budget, ledger)
        self.n_frequencies_ = planned_frequencies(self.n_frequencies, n=n, noise_multiplier=sigma)
        self.feature_resolution_ = planned_resolution(self.feature_resolution, n=n, noise_multiplier=sigma)
        dim = int(np.prod(pooled(torch.zeros(1, *schema.shape), self.feature_resolution_).shape[1:]))
        self.features_ = RandomFourierFeatures(dim=dim, n_frequencies=self.n_frequencies_,
                                               length_scales=self.length_scales, gen=gen).to(device)
        target = self._release_embedding(data, noise_multiplier=sigma, ledger=ledger, rng=rng,
                                         secure=budget.secure_mode).to(device)
        self._train_generator(target, gen=gen, device=device, progress=progress, epsilon=ledger.epsilon())
        self.generator_.cpu().eval()
        self.ledger_ = ledger
        return self

    def _calibrate(self, budget: Budget, ledger: Ledger) -> float | None:
        """The release's noise multiplier: the smallest that keeps the ledger's total (with what it
        already holds) within the target epsilon. None: the non-private reference."""
        if budget.non_private:
            ledger.record_non_private(purpose=f"non-private reference: {self.name} exact mean embedding")
            return None
        return calibrate_noise(base=ledger.gaussian_history(), base_rho=ledger.rho(), sample_rate=1.0, steps=1,
                               target_epsilon=float(budget.epsilon), delta=ledger.accountant_delta(),
                               accountant=ledger.accountant)

    def _release_embedding(self, data: ImageData, *, noise_multiplier: float | None, ledger: Ledger,
                           rng: np.random.Generator, secure: bool = False) -> torch.Tensor:
        """The per-class sums of the labelled embeddings, charged to the ledger, + Gaussian noise
        (std ``noise_multiplier`` x sensitivity 1; None: exact), / the public n."""
        k = data.schema.n_classes
        width = self.features_.n_frequencies
        sums = torch.zeros(k, 2 * width, dtype=torch.float64)
        labels = torch.from_numpy(np.asarray(data.labels, dtype=np.int64))
        for i in range(0, len(data), 512):
            chunk = torch.from_numpy(np.asarray(data.images[i : i + 512], dtype=np.float32))
            phi = self._features(chunk.to(self.features_.weights.device))
            sums.index_add_(0, labels[i : i + 512], phi.cpu().double())
        if noise_multiplier is not None:
            ledger.record_gaussian(purpose="random-feature mean embedding, per-class sums (DP-MERF)",
                                   noise_multiplier=noise_multiplier,
                                   params={"l2_sensitivity": 1.0, "features_per_class": 2 * width, "classes": k})
            sums = sums + torch.from_numpy(gaussian_noise(tuple(sums.shape), std=noise_multiplier, rng=rng,
                                                          secure=secure))
        self.noise_multiplier_ = noise_multiplier or 0.0
        self.dp_plan_ = {"mechanism": "gaussian", "noise_multiplier": self.noise_multiplier_, "l2_sensitivity": 1.0,
                         "n_frequencies": width, "length_scales": list(self.length_scales),
                         "feature_resolution": self.feature_resolution_, "generator_steps": self.steps}
        return (sums / len(data)).float()

    def _train_generator(self, target: torch.Tensor, *, gen: torch.Generator, device, progress: ProgressFn | None,
                         epsilon: float) -> None:
        """Adam on ||target - sum_c p_c mean phi(G(z, c)) (x) e_c||^2, a balanced batch of
        ``batch_size`` fakes per class, weighted by the released class frequencies."""
        k = self.schema_.n_classes
        probs = torch.as_tensor(self.class_probs_, dtype=torch.float32, device=device)[:, None]
        labels = torch.arange(k).repeat_interleave(self.batch_size).to(device)
        opt = torch.optim.Adam(self.generator_.parameters(), lr=self.lr)
        self.generator_.train()
        for step in range(1, self.steps + 1):
            z = torch.randn(len(labels), self.noise_dim, generator=gen).to(device)
            phi = self._features(self.generator_(z, labels))
            fake = torch.zeros(k, phi.shape[1], device=device).index_add_(0, labels, phi) / self.batch_size
            loss = ((target - probs * fake) ** 2).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if progress is not None:
                progress({"step": step, "steps": self.steps, "mmd2": loss.item(), "epsilon": epsilon})
