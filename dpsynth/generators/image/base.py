"""Shared parts of the image generators: device choice, DP class frequencies, exact label
conditioning and batched sampling into :class:`~dpsynth.data.images.SyntheticImages`.

Class frequencies (used to draw labels for unconditional sampling and for fake batches) are one
Gaussian histogram release charged to the ledger, like dp-gan's category frequencies.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Mapping

import math

import numpy as np
import torch
from torch import nn

from dpsynth.data.image_schema import ImageSchema
from dpsynth.data.images import ImageData, SyntheticImages
from dpsynth.errors import ConfigError, DpsynthError, SchemaError
from dpsynth.generators.base import Generator, torch_generator
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.mechanisms import noisy_counts, preprocessing_noise_multiplier

DEVICES = ("cpu", "cuda", "auto")


class ImageGenerator(Generator):
    modality = "image"
    exact_conditioning = True  # the label goes into the network; no rejection sampling
    schema_: ImageSchema | None = None

    # ---- helpers for subclasses ---------------------------------------------------------
    def plan_steps(self, n: int) -> int:
        """Optimizer steps: epochs x expected batches per epoch (legacy ``epochs``), else ``steps``
        (:mod:`dpsynth.privacy.image_schedule`; n only)."""
        from dpsynth.privacy.image_schedule import DEFAULT_STEPS

        if self.epochs is None:
            return int(self.steps or DEFAULT_STEPS)
        return max(1, int(math.ceil(self.epochs * n / (self.batch_size or 128))))

    def _plan_schedule(self, *, n: int, schema: ImageSchema, budget: Budget, ledger: Ledger, device):
        """Steps, batch and noise from public facts (:mod:`dpsynth.privacy.image_schedule`)."""
        from dpsynth.privacy.image_schedule import schedule_for

        self.schedule_ = schedule_for(self, n=n, height=schema.height, width=schema.width, budget=budget,
                                      delta=ledger.delta, device=device)
        return self.schedule_

    def _start_from_public(self, module: nn.Module, *, ledger: Ledger, schema: ImageSchema) -> None:
        """``init``: copy a public pretrained checkpoint into ``module``, recorded in the ledger as
        public (epsilon 0; :mod:`dpsynth.generators.image.pretrain`)."""
        if not self.init:
            return
        from dpsynth.generators.image.pretrain import load_pretrained, record_public

        record_public(ledger, load_pretrained(module, self.init, generator=self.name, params=self.get_params(),
                                              shape=schema.shape))

    def _device(self) -> torch.device:
        if self.device not in DEVICES:
            raise ConfigError(f"{self.name}: device must be one of {DEVICES}, got {self.device!r}")
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"{self.name}: device 'cuda' asked for but no CUDA GPU is available (use 'auto' or 'cpu')")
        return torch.device(self.device)

    @staticmethod
    def _check_data(data: ImageData, name: str) -> None:
        if not isinstance(data, ImageData):
            raise DpsynthError(f"{name} trains on images (ImageData from load_image_source), got {type(data).__name__}")
        if len(data) == 0:
            raise DpsynthError(f"{name}: no training images")

    @staticmethod
    def _noise_generator(gen: torch.Generator, device: torch.device) -> torch.Generator:
        """A generator on ``device`` for opacus' noise, seeded from the run's CPU generator."""
        if device.type == "cpu":
            return gen
        out = torch.Generator(device=device)
        out.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
        return out

    def _class_probs(self, data: ImageData, *, budget: Budget, ledger: Ledger, rng: np.random.Generator) -> np.ndarray:
        """Class frequencies: exact in the non-private reference, else one Gaussian release."""
        k = data.schema.n_classes
        if budget.non_private:
            ledger.record_non_private(purpose=f"non-private reference: {self.name} exact class frequencies, plain SGD")
            counts = np.bincount(data.labels, minlength=k).astype(float)
        elif k == 1:
            counts = np.ones(1)
        else:
            sigma = preprocessing_noise_multiplier(budget, delta=ledger.delta, releases=1)
            counts = noisy_counts([data.labels], [k], ledger=ledger, noise_multiplier=sigma, rng=rng,
                                  purpose="class frequencies for sampling labels", secure=budget.secure_mode)[0]
        total = counts.sum()
        return counts / total if total > 0 else np.full(k, 1.0 / k)

    def _labels_for(self, n: int, conditions: Mapping[str, Any] | None, gen: torch.Generator,
                    *, balanced: bool = False) -> torch.Tensor:
        schema = self.schema_
        if balanced:  # equal counts per class (the remainder spread one each), shuffled: no data used
            k = schema.n_classes
            if conditions:
                raise DpsynthError("a class-balanced sample cannot also be conditioned on one class")
            return (torch.arange(n) % k)[torch.randperm(n, generator=gen)]
        if not conditions:
            probs = torch.as_tensor(self.class_probs_, dtype=torch.float64)
            return torch.multinomial(probs, n, replacement=True, generator=gen)
        unknown = [k for k in conditions if k != schema.label]
        if unknown:
            raise DpsynthError(f"{self.name} can condition only on the label '{schema.label}', not {unknown}")
        try:
            index = schema.class_index(conditions[schema.label], source=f"condition {schema.label}")
        except SchemaError as exc:
            raise DpsynthError(str(exc)) from None
        return torch.full((n,), index, dtype=torch.long)

    # ---- sampling -----------------------------------------------------------------------
    @abstractmethod
    def _generate(self, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Images in [-1, 1], (B, C, H, W) on the CPU, for the given class indices."""

    @torch.no_grad()
    def sample(self, n: int, *, conditions: Mapping[str, Any] | None = None, rng: np.random.Generator,
               balanced: bool = False) -> SyntheticImages:
        """``n`` images; labels from the DP class frequencies, one class (``conditions``), or equal
        counts per class (``balanced``: a rebalanced release, post-processing, no privacy cost)."""
        self._check_fitted()
        if n <= 0:
            raise DpsynthError(f"number of images must be > 0, got {n}")
        gen = torch_generator(rng)
        labels = self._labels_for(n, conditions, gen, balanced=balanced)
        step = max(1, int(self.sample_batch_size))
        parts = [self._generate(labels[i : i + step], gen) for i in range(0, n, step)]
        unit = torch.cat(parts).clamp_(-1.0, 1.0).numpy()
        info = {"conditions": dict(conditions)} if conditions else {}
        if balanced:
            info["labels"] = "balanced"
        return SyntheticImages.from_unit(unit, labels.numpy(), schema=self.schema_, generator=self.name, info=info)

    def _class_probs_state(self) -> dict[str, torch.Tensor]:
        return {"class_probs": torch.tensor(self.class_probs_, dtype=torch.float64)}


def ema_update(ema: dict[str, torch.Tensor], module: torch.nn.Module, *, decay: float, step: int) -> None:
    """EMA of the weights with the usual warm-up ``min(decay, (1 + step) / (10 + step))``;
    post-processing of the privatised weights. Frozen weights (``requires_grad`` False) never move,
    so their average stays the value it was initialised with and is skipped."""
    d = min(decay, (1.0 + step) / (10.0 + step))
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.requires_grad:
                ema[name].mul_(d).add_(p.detach(), alpha=1.0 - d)


def init_weights(module: nn.Module, gen: torch.Generator) -> None:
    """Re-draw the weights with torch's default initialisation, but from ``gen``: constructors use
    torch's global RNG, which library code neither seeds nor depends on."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=gen)
                if m.bias is not None:
                    fan_in = m.weight[0].numel()  # torch's fan_in for Linear, Conv and ConvTranspose alike
                    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                    nn.init.uniform_(m.bias, -bound, bound, generator=gen)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, generator=gen)
