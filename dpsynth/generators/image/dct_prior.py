"""A DP per-class Gaussian over an image's lowest-frequency DCT coefficients: the "easy image"
prior that ``dp-diffusion-image`` can release before DP-SGD on small sets.

Why: on BreastMNIST (546 images) the DP-SGD gradient of a class-conditional UNet carries the
denoising signal but almost no class signal, and its synthetic-trained CNN predicts one class
(issue 12). A few Gaussian releases of low-dimensional statistics (a class's mean image and
per-coefficient spread in a k x k DCT basis) keep the coarse class difference at a small cost.
The idea is DP-FETA's (Li, Wang, Chen, Yin, Chen, Zhou: "From Easy to Hard: Building a Shortcut
for Differentially Private Image Synthesis", IEEE S&P 2025): release "central images" cheaply,
warm the generator up on them without privacy cost (post-processing), then fine-tune with DP-SGD.
Here the prior also seeds sampling (SDEdit: a prior image noised part of the way, then denoised).

Privacy argument (add/remove one image; the DCT basis and every bound are data-independent):

1. ``g``: the sum of all images' k x k DCT coefficient vectors. An image in [-1, 1]^(C H W) has
   L2 norm <= sqrt(C H W), and the orthonormal DCT keeps norms, so the sensitivity is R0 =
   sqrt(C H W) with no clipping. Divided by the public n.
2. Per class c: the sum of the deviations ``z - g`` clipped to L2 norm R1. An image is in one
   class, so the joint sensitivity of all classes' sums is R1. Divided by the DP class count
   (``class_counts``, released earlier; post-processing here).
3. Per class c: the sum of the squared deviations from the released class mean, clipped to L2
   norm R2 = R1^2 / 4 (a deviation of norm R1 spread over several coefficients); sensitivity R2.

Each release is one Gaussian mechanism in the ledger, with the zCDP rho split (0.2, 0.5, 0.3) of
the ``rho`` asked for. Sampling draws from the per-class diagonal Gaussians and inverts the DCT:
post-processing. R1 = ``clip`` x sqrt(C H W); ``clip`` = 0.4 and k = 8 were chosen on
BreastMNIST's VALIDATION split (evaluation/probe_dct_gaussian.py, evaluation/README.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.fft import dctn, idctn

from dpsynth.errors import ConfigError
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.mechanisms import gaussian_noise

#: zCDP rho shares of the three releases: global mean, class means, class variances
RHO_SHARES = (0.2, 0.5, 0.3)
#: lower bound of a released per-coefficient variance (post-processing of a noisy estimate)
MIN_VARIANCE = 1e-4


def dct_coefficients(images: np.ndarray, k: int) -> np.ndarray:
    """(N, C, H, W) images -> (N, C k k) lowest-frequency orthonormal DCT-II coefficients."""
    z = dctn(np.asarray(images, dtype=np.float64), axes=(2, 3), norm="ortho")
    return z[:, :, :k, :k].reshape(len(images), -1)


def _clip_rows(rows: np.ndarray, bound: float) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows * np.minimum(1.0, bound / np.maximum(norms, 1e-12))


@dataclass(frozen=True)
class DCTGaussianPrior:
    """Per-class diagonal Gaussians over the k x k DCT coefficients of (C, H, W) images."""

    shape: tuple[int, int, int]
    k: int
    mean: np.ndarray  # (n_classes, C k k)
    std: np.ndarray  # (n_classes, C k k)

    def sample(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Images in [-1, 1], float32 (B, C, H, W), one per class index in ``labels``."""
        labels = np.asarray(labels, dtype=np.int64)
        c, h, w = self.shape
        z = rng.normal(self.mean[labels], self.std[labels])
        full = np.zeros((len(labels), c, h, w))
        full[:, :, : self.k, : self.k] = z.reshape(len(labels), c, self.k, self.k)
        return np.clip(idctn(full, axes=(2, 3), norm="ortho"), -1.0, 1.0).astype(np.float32)

    def sample_torch(self, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """:meth:`sample` driven by a torch generator (the generators' sampling RNG)."""
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen)))
        return torch.from_numpy(self.sample(labels.cpu().numpy(), rng))

    def state_dict(self, prefix: str = "prior.") -> dict[str, torch.Tensor]:
        return {f"{prefix}mean": torch.from_numpy(self.mean.copy()), f"{prefix}std": torch.from_numpy(self.std.copy()),
                f"{prefix}k": torch.tensor(self.k)}

    @classmethod
    def from_state_dict(cls, state, *, shape: tuple[int, int, int], prefix: str = "prior.") -> DCTGaussianPrior:
        return cls(shape=tuple(shape), k=int(state[f"{prefix}k"]), mean=state[f"{prefix}mean"].numpy(),
                   std=state[f"{prefix}std"].numpy())


def release_dct_prior(images: np.ndarray, labels: np.ndarray, *, n_classes: int, class_counts: np.ndarray,
                      k: int, clip: float, rho: float | None, ledger: Ledger, rng: np.random.Generator,
                      secure: bool = False, purpose: str = "DCT-Gaussian prior") -> DCTGaussianPrior:
    """Release the prior (see the module docstring). ``rho`` None: the non-private reference
    (exact statistics, recorded as non-private by the caller). ``class_counts``: the already
    released (DP) class sizes."""
    shape = tuple(int(s) for s in images.shape[1:])
    if not 1 <= k <= min(shape[1:]):
        raise ConfigError(f"DCT prior: prior_k must be in [1, {min(shape[1:])}] for {shape[1]}x{shape[2]} images, got {k}")
    if not 0 < clip <= 1:
        raise ConfigError(f"DCT prior: prior_clip must be in (0, 1], got {clip}")
    labels = np.asarray(labels, dtype=np.int64)
    z = dct_coefficients(images, k)
    r0 = math.sqrt(float(np.prod(shape)))
    r1 = clip * r0
    r2 = r1 * r1 / 4.0
    counts = np.maximum(np.asarray(class_counts, dtype=np.float64), 2.0)

    def noisy(total: np.ndarray, sensitivity: float, share: float, what: str) -> np.ndarray:
        if rho is None:
            return total
        sigma = math.sqrt(1.0 / (2.0 * share * rho))
        ledger.record_gaussian(purpose=f"{purpose}: {what}", noise_multiplier=sigma,
                               params={"l2_sensitivity": sensitivity, "dct_k": k, "coefficients": int(z.shape[1])})
        return total + gaussian_noise(total.shape, std=sigma * sensitivity, rng=rng, secure=secure)

    g = noisy(z.sum(0), r0, RHO_SHARES[0], "sum of DCT coefficients") / len(z)
    dev = _clip_rows(z - g, r1)
    sums = np.stack([dev[labels == c].sum(0) for c in range(n_classes)])
    means = noisy(sums, r1, RHO_SHARES[1], "per-class sums of clipped deviations") / counts[:, None]
    sq = _clip_rows((dev - means[labels]) ** 2, r2)
    sq_sums = np.stack([sq[labels == c].sum(0) for c in range(n_classes)])
    var = np.maximum(noisy(sq_sums, r2, RHO_SHARES[2], "per-class sums of clipped squared deviations")
                     / counts[:, None], MIN_VARIANCE)
    return DCTGaussianPrior(shape=shape, k=k, mean=g[None, :] + means, std=np.sqrt(var))
