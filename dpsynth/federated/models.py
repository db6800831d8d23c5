"""Per-generator adapters for federated training: global weights, one local round, the result.

Each adapter drives a dpsynth generator's own networks and loss on the shared DP-SGD loop
(:class:`dpsynth.privacy.dpsgd_loop.DPSGDRun`, through the generator's ``_train_dp``) for the
steps of one round, starting from the global weights, and returns the site's new weights.
Nothing here imports flwr; :mod:`dpsynth.federated.site` supplies the ledger and the engine.

What is exchanged (the "global state", float32 tensors, a fixed key order per schema):

- ``dp-gan``: the generator network (weights and BatchNorm running statistics, which it
  computes on fake rows only) and the discriminator (the DP-SGD-trained network).
- ``dp-diffusion``: the denoiser's weights and their exponential moving average (EMA).
- ``dp-diffusion-image``: the UNet's weights and their EMA.

What a site releases once, before training (a DP release charged to its own ledger): dp-gan's
noisy category counts for the conditional vector; dp-diffusion-image's noisy class counts.
The server sums the sites' noisy counts (post-processing) for sampling.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import TensorDataset

from dpsynth.errors import ConfigError
from dpsynth.generators.base import seeded_torch, torch_generator
from dpsynth.generators.tabular.gan.conditional import cond_counts
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.dpsgd_loop import DPSGDRun
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.mechanisms import noisy_counts, preprocessing_noise_multiplier

State = dict[str, torch.Tensor]


def _prefixed(prefix: str, state: dict[str, torch.Tensor]) -> State:
    return {f"{prefix}{k}": v.detach().clone().float() for k, v in state.items() if not k.endswith("num_batches_tracked")}


def _part(state: State, prefix: str) -> State:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _valid_batchnorm(state: State) -> State:
    """BatchNorm running variances stay positive. An average is, but site-level DP adds Gaussian
    noise to every exchanged number, which can make a variance negative (and the network's
    output NaN); clamping it is post-processing."""
    return {k: v.clamp_min(1e-5) if k.endswith("running_var") else v for k, v in state.items()}


def _probs(counts: list[float]) -> np.ndarray:
    c = np.clip(np.asarray(counts, dtype=float), 0.0, None)
    return c / c.sum() if c.sum() > 0 else np.full(len(c), 1.0 / len(c))


class FederatedModel(ABC):
    """One generator in federated form. ``generator`` is a fresh registry instance holding only
    hyper-parameters; the adapter fills its learned state."""

    name: ClassVar[str]

    def __init__(self, generator, schema) -> None:
        self.generator = generator
        self.schema = schema

    # ---- what every site and the server agree on (data-free) ---------------------------
    @abstractmethod
    def initial_state(self, rng: np.random.Generator) -> State:
        """The global state before round 1, from the run's seed and the public schema only."""

    def keys(self) -> list[str]:
        """The order in which the state travels as a list of arrays."""
        if getattr(self, "_keys", None) is None:
            self._keys = list(self.initial_state(np.random.default_rng(0)).keys())
        return self._keys

    def to_arrays(self, state: State) -> list[np.ndarray]:
        return [state[k].detach().cpu().numpy().astype(np.float32) for k in self.keys()]

    def from_arrays(self, arrays: list[np.ndarray]) -> State:
        keys = self.keys()
        if len(keys) != len(arrays):
            raise ConfigError(f"{self.name}: received {len(arrays)} arrays for {len(keys)} tensors")
        return {k: torch.from_numpy(np.asarray(a, dtype=np.float32).copy()) for k, a in zip(keys, arrays)}

    def plan_steps(self, n: int) -> int:
        """The generator's own step plan for n rows (the total over all rounds at this site)."""
        return int(self.generator.plan_steps(n))

    @property
    def batch_size(self) -> int:
        return int(self.generator.batch_size)

    @property
    def max_grad_norm(self) -> float:
        return float(self.generator.max_grad_norm)

    # ---- site side ----------------------------------------------------------------------
    @abstractmethod
    def preprocess(self, data, *, budget: Budget, ledger: Ledger, rng: np.random.Generator) -> dict:
        """The site's one-off DP releases before training (JSON values), charged to its ledger."""

    @abstractmethod
    def local_round(self, state: State, data, *, released: dict, engine, rng: np.random.Generator) -> State:
        """DP-SGD steps from the global ``state`` on the site's rows until ``engine`` stops."""

    # ---- server side --------------------------------------------------------------------
    @abstractmethod
    def finalize(self, state: State, released: list[dict]):
        """The fitted generator from the final global state and every site's released counts."""


class GANModel(FederatedModel):
    """``dp-gan``: FedAvg of the generator network and the DP-SGD discriminator."""

    name = "dp-gan"

    def __init__(self, generator, schema) -> None:
        super().__init__(generator, schema)
        g = generator
        if g.clipping != "flat" or g.balanced_sampling:
            raise ConfigError("federated dp-gan supports clipping='flat' without balanced_sampling only")

    def _discriminator(self):
        from dpsynth.generators.tabular.gan.networks import Discriminator

        g = self.generator
        return Discriminator(in_dim=g.transformer_.dim + g.cond_.dim, hidden=g.discriminator_hidden, dropout=g.dropout)

    def _networks(self, state: State | None, rng: np.random.Generator):
        g = self.generator
        with seeded_torch(rng):
            g._build(self.schema)
            disc = self._discriminator()
        if state is not None:
            g.generator_.load_state_dict(_valid_batchnorm(_part(state, "generator.")), strict=False)
            disc.load_state_dict(_part(state, "discriminator."))
        return g.generator_, disc

    def initial_state(self, rng: np.random.Generator) -> State:
        net, disc = self._networks(None, rng)
        return {**_prefixed("generator.", net.state_dict()), **_prefixed("discriminator.", disc.state_dict())}

    def preprocess(self, data, *, budget: Budget, ledger: Ledger, rng: np.random.Generator) -> dict:
        g = self.generator
        g._build(self.schema)
        if not g.cond_.spans:
            return {"category_counts": []}
        counts = cond_counts(data.frame, g.cond_, transformer=g.transformer_, budget=budget, ledger=ledger, rng=rng)
        return {"category_counts": [c.tolist() for c in counts]}

    def local_round(self, state: State, data, *, released: dict, engine, rng: np.random.Generator) -> State:
        g = self.generator
        with seeded_torch(rng):  # dropout draws from torch's RNG: fork it, seed it, restore it
            net, disc = self._networks(state, rng)
            g.cond_probs_ = [_probs(c) for c in released["category_counts"]]
            g.train_cond_probs_ = g.cond_probs_
            g.balance_rates_ = None
            gen = torch_generator(rng)
            encoded = torch.from_numpy(g.transformer_.encode(data.frame))
            dataset = TensorDataset(encoded, g.cond_.for_rows(encoded, gen=gen))
            opt_d = torch.optim.Adam(disc.parameters(), lr=g.discriminator_lr, betas=(0.5, 0.9))
            opt_g = torch.optim.Adam(net.parameters(), lr=g.generator_lr, betas=(0.5, 0.9))
            run = DPSGDRun(engine=engine, module=disc, optimizer=opt_d, dataset=dataset, torch_rng=gen)
            g._train_dp(run, opt_g, gen=gen, progress=None)
        return {**_prefixed("generator.", net.state_dict()), **_prefixed("discriminator.", disc.state_dict())}

    def finalize(self, state: State, released: list[dict]):
        g = self.generator
        pooled = _pooled_counts([r["category_counts"] for r in released])
        full = {f"generator.{k}": v for k, v in _valid_batchnorm(_part(state, "generator.")).items()}
        with torch.random.fork_rng(devices=[]):
            g._build(self.schema)
        for name, value in g.generator_.state_dict().items():  # BatchNorm step counters are not exchanged
            full.setdefault(f"generator.{name}", value)
        for j, counts in enumerate(pooled):
            full[f"cond_probs.{j}"] = torch.tensor(_probs(counts), dtype=torch.float64)
        return g.load_state_dict(full, schema=self.schema)


class TabularDiffusionModel(FederatedModel):
    """``dp-diffusion``: FedAvg of the denoiser weights and of their EMA."""

    name = "dp-diffusion"

    def _denoiser(self, state: State | None, rng: np.random.Generator):
        g = self.generator
        with seeded_torch(rng):
            g._build(self.schema)
            model = g._new_denoiser()
        if state is not None:
            model.load_state_dict(_part(state, "model."))
        return model

    def initial_state(self, rng: np.random.Generator) -> State:
        model = self._denoiser(None, rng)
        return {**_prefixed("model.", model.state_dict()), **_prefixed("ema.", dict(model.named_parameters()))}

    def preprocess(self, data, *, budget: Budget, ledger: Ledger, rng: np.random.Generator) -> dict:
        return {}  # dp-diffusion reads nothing from the data outside DP-SGD

    def local_round(self, state: State, data, *, released: dict, engine, rng: np.random.Generator) -> State:
        g = self.generator
        model = self._denoiser(state, rng)
        names = [k for k, _ in model.named_parameters()]
        ema = [state[f"ema.{k}"].clone() for k in names]
        gen = torch_generator(rng)
        dataset = TensorDataset(g._encode(data.frame))
        optimizer = torch.optim.Adam(model.parameters(), lr=g.lr)
        run = DPSGDRun(engine=engine, module=model, optimizer=optimizer, dataset=dataset, torch_rng=gen)
        g._train_dp(run, ema, gen=gen, progress=None)
        return {**_prefixed("model.", model.state_dict()), **_prefixed("ema.", dict(zip(names, ema)))}

    def finalize(self, state: State, released: list[dict]):
        g = self.generator
        ema = {f"denoiser.{k}": v for k, v in _part(state, "ema.").items()}
        return g.load_state_dict(ema, schema=self.schema)


class ImageDiffusionModel(FederatedModel):
    """``dp-diffusion-image``: FedAvg of the UNet weights and of their EMA."""

    name = "dp-diffusion-image"

    def _unet(self, state: State | None, rng: np.random.Generator):
        from dpsynth.generators.image.base import init_weights

        g = self.generator
        g._null_label = self.schema.n_classes
        with torch.random.fork_rng(devices=[]):  # constructor init is overwritten below
            model = g._unet(self.schema)
        if state is None:
            init_weights(model, torch_generator(rng))
        else:
            model.load_state_dict(_part(state, "model."))
        return model

    def initial_state(self, rng: np.random.Generator) -> State:
        model = self._unet(None, rng)
        return {**_prefixed("model.", model.state_dict()), **_prefixed("ema.", dict(model.named_parameters()))}

    def preprocess(self, data, *, budget: Budget, ledger: Ledger, rng: np.random.Generator) -> dict:
        k = self.schema.n_classes
        if k == 1:
            return {"class_counts": [1.0]}
        sigma = preprocessing_noise_multiplier(budget, delta=ledger.delta, releases=1)
        counts = noisy_counts([data.labels], [k], ledger=ledger, noise_multiplier=sigma, rng=rng,
                              purpose="class frequencies for sampling labels", secure=budget.secure_mode)[0]
        return {"class_counts": counts.tolist()}

    def local_round(self, state: State, data, *, released: dict, engine, rng: np.random.Generator) -> State:
        g = self.generator
        device = g._device()
        model = self._unet(state, rng).to(device).train()
        ema = {k: state[f"ema.{k}"].clone().to(device) for k, _ in model.named_parameters()}
        gen = torch_generator(rng)
        opt = torch.optim.Adam(model.parameters(), lr=g.lr)
        dataset = TensorDataset(torch.from_numpy(data.images), torch.from_numpy(data.labels))
        run = DPSGDRun(engine=engine, module=model, optimizer=opt, dataset=dataset, torch_rng=gen,
                       grad_sample_mode="no_op", noise_generator=g._noise_generator(gen, device))
        g._train_dp(run, model, ema, g._alphas_cumprod(), gen=gen, device=device, progress=None)
        return {**_prefixed("model.", model.state_dict()), **_prefixed("ema.", ema)}

    def finalize(self, state: State, released: list[dict]):
        g = self.generator
        pooled = _pooled_counts([[r["class_counts"]] for r in released])[0]
        full = {f"unet.{k}": v for k, v in _part(state, "ema.").items()}
        full["class_probs"] = torch.tensor(_probs(pooled), dtype=torch.float64)
        with torch.random.fork_rng(devices=[]):
            return g.load_state_dict(full, schema=self.schema)


def _pooled_counts(per_site: list[list[list[float]]]) -> list[list[float]]:
    """Sum of the sites' noisy histograms (each a DP release): post-processing."""
    if not per_site:
        return []
    return [np.sum([np.asarray(site[j], dtype=float) for site in per_site], axis=0).tolist()
            for j in range(len(per_site[0]))]


ADAPTERS: dict[str, type[FederatedModel]] = {m.name: m for m in (GANModel, TabularDiffusionModel, ImageDiffusionModel)}


def federated_model(generator_name: str, params: dict[str, Any], schema) -> FederatedModel:
    """The adapter for a registered generator; a one-line ConfigError for the others."""
    from dpsynth.config import build_generator

    if generator_name not in ADAPTERS:
        raise ConfigError(f"federated training supports {', '.join(sorted(ADAPTERS))}, not '{generator_name}'")
    generator = build_generator(generator_name, params)
    return ADAPTERS[generator_name](generator, schema)


def steps_per_round(total_steps: int, rounds: int) -> int:
    """Local steps per round so that ``rounds`` rounds take at least the generator's planned steps."""
    return max(1, math.ceil(total_steps / rounds))
