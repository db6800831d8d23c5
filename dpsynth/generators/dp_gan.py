"""``dp-gan``: a conditional tabular GAN in the spirit of CTGAN, with a DP-SGD discriminator.

Privacy argument
----------------
- Only the discriminator reads real rows, and only through opacus DP-SGD: Poisson-sampled
  batches, per-example clipping of the gradient of its loss on *real* rows, Gaussian noise.
- The discriminator's gradient on *fake* rows depends only on its current (already private)
  weights and on generator noise, so it is computed without per-example hooks and added to the
  privatised gradient after noising (post-processing). A fixed number of fake rows is used per
  step (the expected batch size), so the real batch size does not leak through it.
- The generator is trained only through the discriminator: post-processing.
- The conditional vector: for a real row, one categorical column is chosen uniformly at random
  and the row's own category of it is given to the discriminator (it is part of that row's
  per-example gradient). For fake rows and for sampling, categories are drawn from DP one-way
  frequencies (one Gaussian release of all categorical histograms, charged to the ledger), so no
  category frequency is used without being paid for.
- Numeric columns are encoded on their public schema bounds (no data-fitted GMM).

Fairness-aware training (all off by default; see :mod:`dpsynth.privacy.clipping` and
:mod:`dpsynth.privacy.groups`):

- ``clipping="adaptive"``: the clip norm follows a privately estimated quantile of the
  per-example gradient norms (Andrew et al. 2021); the noisy unclipped count is part of each
  step's Gaussian release and the ledger's noise multiplier is the composed one.
- ``clipping="group"``: each example is clipped to its group's bound (larger for smaller
  groups, from DP group counts), noise calibrated to the largest bound (DPSGD-F spirit).
- ``balanced_sampling=True``: smaller groups get larger Poisson rates (from DP group counts);
  the ledger charges the largest rate (conservative). Fake rows' conditional vectors for the
  group columns follow the balanced shares during training; sampling undoes the balancing
  (a row of group g is kept with probability q_min / q_g), so representation stays faithful.

The group sizes are one extra Gaussian histogram, charged to the ledger (the preprocessing
share is then split between it and the category frequencies). The non-private reference
ignores the clipping options (it does not clip) but honours balanced sampling.

Conditioning is not exact: ``sample(conditions=...)`` sets the conditional vector and keeps
only rows that satisfy the condition (rejection sampling, at most ``max_tries`` rounds); it
raises a clear error when the request cannot be met.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from dpsynth.data.schema import Schema, _key
from dpsynth.data.table import SyntheticData, TableData
from dpsynth.data.transform import Span, TableTransformer
from dpsynth.errors import DpsynthError
from dpsynth.generators.base import Generator, ProgressFn, seeded_torch, torch_generator
from dpsynth.generators.registry import register
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.clipping import AdaptiveClipDPOptimizer, GroupClipDPOptimizer, swap_optimizer
from dpsynth.privacy import distributed as dist
from dpsynth.privacy.engine import DPSGDEngine, plan_dp_sgd
from dpsynth.privacy.grad_modes import check_grad_sample_mode, ghost_kwargs, without_per_example
from dpsynth.privacy.groups import (
    GroupPoissonSampler,
    balanced_category_probs,
    dp_group_counts,
    group_clip_bounds,
    group_codes,
    group_columns_for,
    group_labels,
    group_sample_rates,
    group_values,
)
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.mechanisms import noisy_counts, preprocessing_noise_multiplier
from dpsynth.privacy.schedule import Schedule, plan_schedule
from dpsynth.privacy.unit_sgd import sum_grad_samples_by_unit, unit_dataset, unit_rows


class CondSpace:
    """The conditional vector: one-hot blocks of the categorical spans, one block active at a time."""

    def __init__(self, transformer: TableTransformer) -> None:
        self.spans: list[Span] = [s for s in transformer.spans if s.kind == "softmax" and s.role == "value"]
        self.offsets = np.cumsum([0] + [s.dim for s in self.spans])[:-1].tolist()
        self.dim = int(sum(s.dim for s in self.spans))

    def for_rows(self, encoded: torch.Tensor, *, gen: torch.Generator) -> torch.Tensor:
        """Per real row: pick one categorical block uniformly and copy the row's own one-hot there."""
        n = encoded.shape[0]
        cond = torch.zeros(n, self.dim)
        if not self.spans:
            return cond
        pick = torch.randint(len(self.spans), (n,), generator=gen)
        for j, (span, off) in enumerate(zip(self.spans, self.offsets)):
            rows = pick == j
            cond[rows, off : off + span.dim] = encoded[rows, span.start : span.stop]
        return cond

    def draw(self, n: int, *, probs: list[np.ndarray], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Conditional vectors for fake rows: a block uniformly, a category from its DP frequency."""
        cond = torch.zeros(n, self.dim)
        block = torch.randint(len(self.spans), (n,), generator=gen) if self.spans else torch.zeros(n, dtype=torch.long)
        category = torch.zeros(n, dtype=torch.long)
        for j, (span, off) in enumerate(zip(self.spans, self.offsets)):
            rows = (block == j).nonzero().flatten()
            if len(rows) == 0:
                continue
            cats = torch.multinomial(torch.as_tensor(probs[j], dtype=torch.float32), len(rows), replacement=True, generator=gen)
            category[rows] = cats
            cond[rows, off + cats] = 1.0
        return cond, block, category


class Residual(nn.Module):
    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.fc, self.bn = nn.Linear(i, o), nn.BatchNorm1d(o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class GeneratorNet(nn.Module):
    """Never sees real data (no DP hooks needed), so BatchNorm is allowed here."""

    def __init__(self, *, noise_dim: int, cond_dim: int, hidden: tuple[int, ...], out_dim: int) -> None:
        super().__init__()
        layers, dim = [], noise_dim + cond_dim
        for h in hidden:
            layers.append(Residual(dim, h))
            dim += h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(dim, out_dim)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(torch.cat([z, cond], dim=1)))


class Discriminator(nn.Module):
    """DP-SGD compatible: Linear + LeakyReLU + Dropout only (no BatchNorm)."""

    def __init__(self, *, in_dim: int, hidden: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        layers, dim = [], in_dim
        for h in hidden:
            layers += [nn.Linear(dim, h), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            dim = h
        layers.append(nn.Linear(dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def activate(raw: torch.Tensor, spans: tuple[Span, ...], *, tau: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """tanh on numeric spans, Gumbel-softmax on one-hot spans (as in CTGAN)."""
    parts = []
    for s in spans:
        block = raw[:, s.start : s.stop]
        if s.kind == "tanh":
            parts.append(torch.tanh(block))
        else:
            u = torch.rand(block.shape, generator=gen).clamp_(1e-10, 1 - 1e-10)
            gumbel = -torch.log(-torch.log(u))
            parts.append(F.softmax((block + gumbel) / tau, dim=1))
    return torch.cat(parts, dim=1)


@register("dp-gan")
class DPGAN(Generator):
    """Conditional tabular GAN; discriminator trained with opacus DP-SGD."""

    exact_conditioning = False
    #: white-box audits may attach a canary hook (dpsynth.privacy.canaries); never saved
    supports_canary_gradients = True
    _audit_hook = None

    def __init__(
        self,
        *,
        noise_dim: int = 64,
        generator_hidden: tuple[int, ...] = (128, 128),
        discriminator_hidden: tuple[int, ...] = (128, 128),
        dropout: float = 0.0,
        batch_size: int | None = None,
        epochs: float | None = None,
        steps: int = 1000,
        min_batch_size: int = 32,
        max_batch_size: int = 4096,
        noise_floor: float = 3.0,
        grad_sample_mode: str = "ghost",
        min_fake_batch_size: int = 0,
        generator_lr: float = 1e-3,
        discriminator_lr: float = 1e-3,
        max_grad_norm: float = 1.0,
        generator_steps: int = 1,
        tau: float = 0.2,
        max_physical_batch_size: int = 1024,
        max_tries: int = 50,
        clipping: str = "flat",
        group_columns: tuple[str, ...] = (),
        balanced_sampling: bool = False,
        clip_quantile: float = 0.5,
        clip_learning_rate: float = 0.2,
        count_noise_std: float | None = None,
        group_clip_power: float = 0.5,
        group_clip_max_ratio: float = 4.0,
        balance_power: float = 0.5,
    ) -> None:
        if clipping not in ("flat", "adaptive", "group"):
            raise ValueError(f"clipping must be 'flat', 'adaptive' or 'group', got {clipping!r}")
        self.noise_dim = noise_dim
        self.generator_hidden = tuple(generator_hidden)
        self.discriminator_hidden = tuple(discriminator_hidden)
        self.dropout = dropout
        self.batch_size = batch_size
        self.epochs = epochs
        self.steps = steps
        self.min_batch_size = min_batch_size
        self.max_batch_size = max_batch_size
        self.noise_floor = noise_floor
        self.grad_sample_mode = check_grad_sample_mode(grad_sample_mode)
        self.min_fake_batch_size = int(min_fake_batch_size)
        self.generator_lr = generator_lr
        self.discriminator_lr = discriminator_lr
        self.max_grad_norm = max_grad_norm
        self.generator_steps = generator_steps
        self.tau = tau
        self.max_physical_batch_size = max_physical_batch_size
        self.max_tries = max_tries
        self.clipping = clipping
        self.group_columns = tuple(group_columns or ())
        self.balanced_sampling = bool(balanced_sampling)
        self.clip_quantile = clip_quantile
        self.clip_learning_rate = clip_learning_rate
        self.count_noise_std = count_noise_std
        self.group_clip_power = group_clip_power
        self.group_clip_max_ratio = group_clip_max_ratio
        self.balance_power = balance_power

    @property
    def _uses_groups(self) -> bool:
        return self.clipping == "group" or self.balanced_sampling

    def get_params(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in (
            "noise_dim", "generator_hidden", "discriminator_hidden", "dropout", "batch_size", "epochs", "generator_lr",
            "discriminator_lr", "max_grad_norm", "generator_steps", "tau", "max_physical_batch_size", "max_tries",
            "clipping", "group_columns", "balanced_sampling", "clip_quantile", "clip_learning_rate", "count_noise_std",
            "group_clip_power", "group_clip_max_ratio", "balance_power", "steps", "min_batch_size", "max_batch_size",
            "noise_floor", "grad_sample_mode", "min_fake_batch_size")}
        out["group_columns"] = list(out["group_columns"])
        out["generator_hidden"] = list(out["generator_hidden"])
        out["discriminator_hidden"] = list(out["discriminator_hidden"])
        return out

    # ---- building blocks ----------------------------------------------------------------
    def _build(self, schema: Schema) -> None:
        self.transformer_ = TableTransformer(schema)
        self.cond_ = CondSpace(self.transformer_)
        self.generator_ = GeneratorNet(
            noise_dim=self.noise_dim, cond_dim=self.cond_.dim, hidden=self.generator_hidden, out_dim=self.transformer_.dim
        )
        self.schema_ = schema

    def plan_schedule(self, n: int, *, epsilon: float | None, delta: float) -> Schedule:
        """Logical batch size and discriminator steps from public facts only (the row count n of
        the privacy unit, epsilon, delta) and the compute settings, by the rule of
        :mod:`dpsynth.privacy.schedule`: ``steps`` steps (default 1000), the smallest batch in
        [min_batch_size, max_batch_size] whose noise multiplier reaches ``noise_floor`` (default 3).
        Setting ``epochs`` restores the legacy plan ``ceil(epochs * n / batch_size)`` (batch 128)."""
        return plan_schedule(n=n, epsilon=epsilon, delta=delta, steps=self.steps, batch_size=self.batch_size,
                             epochs=self.epochs, legacy_batch_size=128, min_batch_size=self.min_batch_size,
                             max_batch_size=self.max_batch_size, noise_floor=self.noise_floor)

    def plan_steps(self, n: int) -> int:
        """Discriminator steps: ``steps``, or with ``epochs`` set epochs x expected batches per epoch."""
        if self.epochs is not None:
            return max(1, int(math.ceil(self.epochs * n / (self.batch_size or 128))))
        return int(self.steps)

    # ---- training -----------------------------------------------------------------------
    def fit(self, data: TableData, *, budget: Budget, rng: np.random.Generator, ledger: Ledger | None = None,
            progress: ProgressFn | None = None) -> "DPGAN":
        with seeded_torch(rng):  # weight init and dropout draw from torch's RNG: fork it, seed it, restore it
            return self._fit(data, budget=budget, rng=rng, ledger=ledger, progress=progress)

    def _fit(self, data: TableData, *, budget: Budget, rng: np.random.Generator, ledger: Ledger | None,
             progress: ProgressFn | None) -> "DPGAN":
        schema, frame = data.schema, data.frame
        dist.refuse_data_parallel(generator="dp-gan", features=[f for f, on in (
            (f"clipping='{self.clipping}'", self.clipping != "flat"), ("balanced_sampling", self.balanced_sampling)) if on])
        n = len(frame)
        ledger = self._make_ledger(budget, n, ledger)
        self._build(schema)
        gen = torch_generator(rng)
        encoded = torch.from_numpy(self.transformer_.encode(frame))

        # DP category frequencies for the conditional vector (one Gaussian release)
        codes = [self.transformer_.category_codes(frame, schema[s.column]) for s in self.cond_.spans]
        sizes = [s.dim for s in self.cond_.spans]
        releases = 2 if self._uses_groups else 1
        if budget.non_private:
            ledger.record_non_private(purpose="non-private reference: exact category frequencies and plain SGD")
            counts = [np.bincount(c, minlength=k).astype(float) for c, k in zip(codes, sizes)]
        elif codes:
            sigma = preprocessing_noise_multiplier(budget, delta=ledger.delta, releases=releases)
            counts = noisy_counts(codes, sizes, ledger=ledger, noise_multiplier=sigma, rng=rng,
                                  purpose="category frequencies for the conditional vector", secure=budget.secure_mode,
                                  contribution=data.max_rows_per_unit)
        else:
            counts = []
        self.cond_probs_ = [c / c.sum() if c.sum() > 0 else np.full(len(c), 1.0 / len(c)) for c in counts]
        self.train_cond_probs_ = self.cond_probs_
        self.balance_rates_ = None
        groups = self._groups(frame, schema, budget=budget, ledger=ledger, rng=rng) if self._uses_groups else None

        disc = Discriminator(in_dim=self.transformer_.dim + self.cond_.dim, hidden=self.discriminator_hidden,
                             dropout=self.dropout)
        if self._audit_hook is not None:
            disc = self._audit_hook.wrap(disc)
        opt_d = torch.optim.Adam(disc.parameters(), lr=self.discriminator_lr, betas=(0.5, 0.9))
        opt_g = torch.optim.Adam(self.generator_.parameters(), lr=self.generator_lr, betas=(0.5, 0.9))
        real_cond = self.cond_.for_rows(encoded, gen=gen)  # part of each row's own example
        tensors = (encoded, real_cond) if groups is None else (encoded, real_cond, torch.from_numpy(groups["codes"]))
        dataset = TensorDataset(*tensors)
        self._per_unit = data.units is not None and data.max_rows_per_unit > 1 and not budget.non_private
        if self._per_unit:  # patient-level DP-SGD: Poisson-sample patients, clip each patient's gradient
            if groups is not None or self._audit_hook is not None:
                raise DpsynthError("dp-gan: group clipping, balanced sampling and the audit need one row per"
                                   " patient (max_rows_per_unit = 1)")
            dataset = unit_dataset(tensors, data.units, max_rows=data.max_rows_per_unit)
        n = len(dataset)  # with a privacy-unit column the schedule and the sampling rate count patients, not rows
        schedule = self.plan_schedule(n, epsilon=None if budget.non_private else budget.epsilon, delta=ledger.delta)
        self.schedule_ = schedule.to_dict()
        steps, batch_size = schedule.steps, schedule.batch_size

        if budget.non_private:
            weights = None
            if groups is not None and self.balanced_sampling:
                rates = group_sample_rates(groups["counts"], max_rate=1.0, power=self.balance_power)
                weights = torch.as_tensor(rates[groups["codes"]], dtype=torch.float64)
                self._balance_cond_probs(groups, rates, schema)
                self.balance_rates_ = rates / rates.max()
            self._train_non_private(disc, opt_d, opt_g, dataset, steps=steps, gen=gen, progress=progress,
                                    weights=weights, batch_size=batch_size)
        else:
            plan = plan_dp_sgd(ledger=ledger, n=n, batch_size=batch_size, steps=steps,
                               max_grad_norm=self.max_grad_norm)
            engine = DPSGDEngine(ledger=ledger, plan=plan, purpose="discriminator DP-SGD", secure_mode=budget.secure_mode)
            mode = self._effective_grad_sample_mode()
            disc, opt_d, loader = engine.make_private(module=disc, optimizer=opt_d, dataset=dataset, torch_rng=gen,
                                                      **ghost_kwargs(mode))
            fake_count = None
            if self.clipping != "flat" or self.balanced_sampling:
                opt_d, loader, fake_count = self._fair_dp_setup(engine, opt_d, loader, dataset, groups, schema)
            with warnings.catch_warnings():
                # opacus' per-sample hooks on the discriminator fire on batches whose inputs (real rows,
                # detached fakes) need no gradient; torch warns once per run although the per-sample
                # gradients of the weights are complete. Only that message is silenced, only here.
                warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed",
                                        category=UserWarning)
                self._train_dp(engine, disc, opt_d, opt_g, loader, gen=gen, progress=progress, fake_count=fake_count)
            dist.average_buffers(self.generator_)  # data-parallel: one set of BatchNorm statistics
            self.dp_plan_ = {**plan.to_dict(), "schedule": self.schedule_, "grad_sample_mode": mode}
            if self.clipping != "flat" or self.balanced_sampling:
                self.dp_plan_["fairness"] = {k: v for k, v in engine.entry.params.items()
                                             if k not in ("planned_steps", "poisson_sampling", "secure_mode")}
        self.generator_.eval()
        self.ledger_ = ledger
        return self

    def _effective_grad_sample_mode(self) -> str:
        """Adaptive / group clipping and the audit's canary gradients read per-example gradients
        (``p.grad_sample``), which ghost clipping never forms: they run in hooks mode."""
        if self.grad_sample_mode == "ghost" and (self.clipping != "flat" or self._audit_hook is not None
                                                 or getattr(self, "_per_unit", False)):
            return "hooks"  # patient-level DP-SGD sums per-row grad_sample per patient: hooks too
        return self.grad_sample_mode

    # ---- fairness-aware training ---------------------------------------------------------
    def _groups(self, frame: pd.DataFrame, schema: Schema, *, budget: Budget, ledger: Ledger,
                rng: np.random.Generator) -> dict:
        """Group id of each row and the group sizes: exact for the non-private reference, else
        one Gaussian histogram charged to the ledger."""
        columns = group_columns_for(schema, self.group_columns)
        codes, size = group_codes(frame, schema, columns)
        if budget.non_private:
            counts = np.bincount(codes, minlength=size).astype(float)
        else:
            sigma = preprocessing_noise_multiplier(budget, delta=ledger.delta, releases=2)
            counts = dp_group_counts(codes, size, ledger=ledger, noise_multiplier=sigma, rng=rng,
                                     secure=budget.secure_mode)
        self.group_columns_ = columns
        return {"codes": codes, "counts": counts, "columns": columns, "labels": group_labels(schema, columns)}

    def _balance_cond_probs(self, groups: dict, rates: np.ndarray, schema: Schema) -> None:
        """During balanced training, fake rows' conditional categories of the group columns follow
        the shares the balanced Poisson batches have (post-processing of the DP counts)."""
        probs = list(self.cond_probs_)
        for j, span in enumerate(self.cond_.spans):
            if span.column in groups["columns"]:
                probs[j] = balanced_category_probs(groups["counts"], rates, schema, groups["columns"], span.column)
        self.train_cond_probs_ = probs

    def _fair_dp_setup(self, engine: DPSGDEngine, opt_d, loader, dataset, groups, schema):
        """Swap in the adaptive / group clipping optimizer and the per-group Poisson loader, and
        record what they do in the DP-SGD ledger entry."""
        params = engine.entry.params
        sigma = engine.entry.noise_multiplier
        if self.clipping == "adaptive":
            opt_d = swap_optimizer(opt_d, AdaptiveClipDPOptimizer, target_quantile=self.clip_quantile,
                                   learning_rate=self.clip_learning_rate, count_std=self.count_noise_std)
            params.update({"clipping": "adaptive", "noise_multiplier_composed": sigma,
                           "grad_noise_multiplier": opt_d.grad_sigma, "count_noise_std": opt_d.count_std,
                           "count_sensitivity": 0.5, "initial_clip_norm": self.max_grad_norm,
                           "target_unclipped_quantile": self.clip_quantile,
                           "clip_learning_rate": self.clip_learning_rate,
                           "accounting": "gradient sum and centred unclipped count released together: one Gaussian "
                                         "mechanism with sigma = (grad_sigma^-2 + (2 count_std)^-2)^-1/2"})
        elif self.clipping == "group":
            bounds = group_clip_bounds(groups["counts"], base=self.max_grad_norm, power=self.group_clip_power,
                                       max_ratio=self.group_clip_max_ratio)
            opt_d = swap_optimizer(opt_d, GroupClipDPOptimizer, group_bounds=bounds.tolist())
            params.update({"clipping": "group", "max_grad_norm": float(bounds.max()),
                           "group_clip_bounds": dict(zip(groups["labels"], bounds.round(6).tolist())),
                           "noise_std": sigma * float(bounds.max()),
                           "accounting": "per-group clip bounds from DP group counts; noise calibrated to the "
                                         "largest bound (the sensitivity)"})
        fake_count = None
        if self.balanced_sampling:
            q = loader.sample_rate
            rates = group_sample_rates(groups["counts"], max_rate=q, power=self.balance_power)
            sampler = GroupPoissonSampler(groups=dataset.tensors[2], rates=rates,
                                          generator=loader.batch_sampler.generator, steps=len(loader))
            loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=loader.collate_fn,
                                                 generator=loader.generator)
            expected = float(np.sum(rates * groups["counts"]))  # from DP counts: post-processing
            fake_count = max(1, int(round(expected)))
            opt_d.expected_batch_size = fake_count
            self._balance_cond_probs(groups, rates, schema)
            self.balance_rates_ = rates / rates.max()
            params.update({"balanced_sampling": True, "sample_rate_accounted": q,
                           "group_sample_rates": dict(zip(groups["labels"], rates.round(8).tolist())),
                           "sampling_note": "Poisson rates differ per group; accounted with the largest rate "
                                            "(conservative)"})
        return opt_d, loader, fake_count

    def _fake_batch(self, m: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        z = torch.randn(m, self.noise_dim, generator=gen)
        probs = getattr(self, "train_cond_probs_", None) or self.cond_probs_
        cond, block, category = self.cond_.draw(m, probs=probs, gen=gen)
        fake = activate(self.generator_(z, cond), self.transformer_.spans, tau=self.tau, gen=gen)
        return fake, cond, block, category

    def _generator_step(self, disc_forward, opt_g: torch.optim.Optimizer, m: int, gen: torch.Generator) -> float:
        fake, cond, block, category = self._fake_batch(m, gen)
        logits = disc_forward(torch.cat([fake, cond], dim=1))
        loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)) + self._cond_loss(fake, block, category)
        opt_g.zero_grad(set_to_none=True)
        grads = dist.average_gradients(torch.autograd.grad(loss, list(self.generator_.parameters())))
        for p, g in zip(self.generator_.parameters(), grads):
            p.grad = g
        opt_g.step()
        return loss.item()

    def _cond_loss(self, fake: torch.Tensor, block: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        """Cross-entropy pushing the generated block to the requested category (CTGAN)."""
        if not self.cond_.spans:
            return fake.new_zeros(())
        loss = fake.new_zeros(())
        for j, span in enumerate(self.cond_.spans):
            rows = block == j
            if rows.any():
                probs = fake[rows, span.start : span.stop].clamp_min(1e-8)
                loss = loss + F.nll_loss(torch.log(probs), category[rows], reduction="sum")
        return loss / fake.shape[0]

    def _train_dp(self, engine: DPSGDEngine, disc, opt_d, opt_g, loader, *, gen, progress,
                  fake_count: int | None = None) -> None:
        m = fake_count or max(1, int(round(engine.plan.sample_rate * len(loader.dataset))))  # fixed fake count
        # fake rows read no real row: their number (public, fixed) may exceed the small DP batches of small tables
        m = max(m, self.min_fake_batch_size)
        if engine.distributed:  # each rank draws its share of the fake rows; gradients are averaged
            _, world = dist.rank_and_world()
            m = max(1, int(math.ceil(m / world)))
            dist.broadcast_module(self.generator_)
        d_params = [p for p in disc.parameters()]
        while engine.can_step():
            with engine.batches(loader, opt_d, max_physical_batch_size=self.max_physical_batch_size) as batches:
                for batch in batches:
                    if not engine.can_step():
                        break
                    row_unit = None
                    if getattr(self, "_per_unit", False):
                        (x_real, c_real), row_unit = unit_rows(batch)
                    else:
                        x_real, c_real = batch[0], batch[1]
                    if isinstance(opt_d, GroupClipDPOptimizer):
                        opt_d.set_batch_groups(batch[2])
                    disc.train()
                    opt_d.zero_grad(set_to_none=True)
                    # (1) per-example clipped + noised gradient of the loss on real rows
                    inputs = torch.cat([x_real, c_real], dim=1).requires_grad_(True)  # full backward hooks need it
                    logits_real = disc(inputs)
                    if row_unit is not None:  # patient level (hooks mode): per-row gradients -> one sum per patient
                        loss_real = F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
                        loss_real.backward()
                        sum_grad_samples_by_unit(disc, row_unit, n_units=len(batch[0]))
                        loss_real = loss_real.detach()
                    else:
                        per_example = F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real),
                                                                         reduction="none")
                        engine.backward(per_example)  # ghost mode: through opacus' criterion (clipped)
                        loss_real = per_example.detach().mean() if len(per_example) else per_example.detach().sum()
                    # (2) gradient on fake rows: data-independent, added after noising
                    with torch.no_grad():
                        fake, cond, _, _ = self._fake_batch(m, gen)
                    with without_per_example(disc) as plain:
                        logits_fake = plain(torch.cat([fake, cond], dim=1))
                        loss_fake = F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
                        fake_grads = torch.autograd.grad(loss_fake, d_params)
                    if self._audit_hook is not None:
                        self._audit_hook.before_dp_step(opt_d, sample_rate=engine.entry.sample_rate)
                    took = engine.step(opt_d, extra_grads=fake_grads)
                    if not took:
                        continue
                    # (3) generator update through the (private) discriminator
                    disc.eval()
                    with without_per_example(disc) as plain:
                        for _ in range(self.generator_steps):
                            g_loss = self._generator_step(plain, opt_g, m, gen)
                    if progress is not None:
                        progress({"step": engine.steps_taken, "steps": engine.plan.steps,
                                  "d_loss": (loss_real + loss_fake).item(), "g_loss": g_loss,
                                  "epsilon": engine.ledger.epsilon()})

    def _train_non_private(self, disc, opt_d, opt_g, dataset, *, steps: int, gen, progress,
                           weights: torch.Tensor | None = None, batch_size: int = 128) -> None:
        n = len(dataset)
        x_all, c_all = dataset.tensors[:2]
        for step in range(steps):
            if weights is None:
                idx = torch.randint(n, (batch_size,), generator=gen)
            else:
                idx = torch.multinomial(weights, batch_size, replacement=True, generator=gen)
            disc.train()
            fake, cond, _, _ = self._fake_batch(batch_size, gen)
            lr = disc(torch.cat([x_all[idx], c_all[idx]], dim=1))
            lf = disc(torch.cat([fake.detach(), cond], dim=1))
            d_loss = F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr)) + \
                F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            if self._audit_hook is not None:
                self._audit_hook.before_plain_step(batch_size=batch_size, n=n)
            opt_d.step()
            disc.eval()
            for _ in range(self.generator_steps):
                g_loss = self._generator_step(disc, opt_g, batch_size, gen)
            if progress is not None:
                progress({"step": step + 1, "steps": steps, "d_loss": d_loss.item(), "g_loss": g_loss,
                          "epsilon": math.inf})

    # ---- sampling -----------------------------------------------------------------------
    @torch.no_grad()
    def _sample_raw(self, n: int, *, gen: torch.Generator, rng: np.random.Generator,
                    fixed: dict[int, int] | None = None) -> pd.DataFrame:
        z = torch.randn(n, self.noise_dim, generator=gen)
        cond, _, _ = self.cond_.draw(n, probs=self.cond_probs_, gen=gen)
        if fixed:
            cond.zero_()
            # spread rows over the conditioned blocks, each with its requested category
            blocks = list(fixed.items())
            which = torch.randint(len(blocks), (n,), generator=gen)
            for b, (j, cat) in enumerate(blocks):
                cond[which == b, self.cond_.offsets[j] + cat] = 1.0
        raw = self.generator_(z, cond)
        out = activate(raw, self.transformer_.spans, tau=self.tau, gen=gen)
        return self.transformer_.decode(out.numpy())

    def sample(self, n: int, *, conditions: Mapping[str, Any] | None = None, rng: np.random.Generator) -> SyntheticData:
        self._check_fitted()
        if n <= 0:
            raise DpsynthError(f"number of rows must be > 0, got {n}")
        gen = torch_generator(rng)
        self.generator_.eval()
        balance = getattr(self, "balance_rates_", None)
        if not conditions and balance is None:
            frames = [self._sample_raw(min(n - i, 100_000), gen=gen, rng=rng) for i in range(0, n, 100_000)]
            return SyntheticData(frame=pd.concat(frames, ignore_index=True), schema=self.schema_, generator=self.name)
        fixed, checks = self._resolve_conditions(conditions or {})
        kept: list[pd.DataFrame] = []
        have = 0
        for _ in range(self.max_tries):
            batch = self._sample_raw(max(1024, 2 * (n - have)), gen=gen, rng=rng, fixed=fixed)
            mask = np.ones(len(batch), dtype=bool)
            for name, value in checks.items():
                mask &= batch[name].map(_key).to_numpy() == _key(value)
            if balance is not None:
                mask &= self._balance_accept(batch, rng, checks)
            kept.append(batch[mask])
            have += int(mask.sum())
            if have >= n:
                frame = pd.concat(kept, ignore_index=True).iloc[:n].reset_index(drop=True)
                info = {"method": "rejection"} if conditions else {"method": "reweighted (balanced training)"}
                return SyntheticData(frame=frame, schema=self.schema_, generator=self.name,
                                     info={"conditions": dict(conditions or {}), **info})
        raise DpsynthError(
            f"dp-gan could only produce {have} of {n} rows with {dict(conditions or {})} in {self.max_tries} tries;"
            " the condition is too rare for this model"
        )

    def _balance_accept(self, batch: pd.DataFrame, rng: np.random.Generator, checks: Mapping[str, Any]) -> np.ndarray:
        """Undo balanced training: a model trained on batches where group g is sampled at rate
        q_g learns p(x) q_g(x) (up to a constant); keeping a row with probability q_ref / q_g
        restores p(x), with q_ref the smallest rate among the groups the conditions allow (so
        rows of a requested group are not thrown away needlessly). The rates are post-processing
        of DP counts."""
        columns = group_columns_for(self.schema_, self.group_columns)
        codes, _ = group_codes(batch, self.schema_, columns)
        rates = self.balance_rates_
        allowed = np.ones(len(rates), dtype=bool)
        for code, combo in enumerate(group_values(self.schema_, columns)):
            values = dict(zip(columns, combo))
            allowed[code] = all(_key(values[c]) == _key(v) for c, v in checks.items() if c in values)
        return rng.random(len(batch)) < rates[allowed].min() / rates[codes]

    def _resolve_conditions(self, conditions: Mapping[str, Any]) -> tuple[dict[int, int], dict[str, Any]]:
        fixed, checks = {}, {}
        span_index = {s.column: j for j, s in enumerate(self.cond_.spans)}
        for name, value in conditions.items():
            if name not in self.schema_:
                raise DpsynthError(f"cannot condition on unknown column '{name}'")
            col = self.schema_[name]
            if col.is_numeric:
                raise DpsynthError(f"cannot condition on numeric column '{name}' (only categorical/binary columns)")
            lookup = {_key(c): i for i, c in enumerate(col.categories)}
            if _key(value) not in lookup:
                raise DpsynthError(f"condition {name}={value!r} is not a declared category {list(col.categories)}")
            fixed[span_index[name]] = lookup[_key(value)]
            checks[name] = col.categories[lookup[_key(value)]]
        return fixed, checks

    # ---- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        self._check_fitted()
        state = {f"generator.{k}": v.detach().clone() for k, v in self.generator_.state_dict().items()}
        for j, p in enumerate(self.cond_probs_):
            state[f"cond_probs.{j}"] = torch.tensor(p, dtype=torch.float64)
        if getattr(self, "balance_rates_", None) is not None:
            state["balance_rates"] = torch.tensor(self.balance_rates_, dtype=torch.float64)
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor], *, schema: Schema) -> "DPGAN":
        self._build(schema)
        g_state = {k[len("generator."):]: v for k, v in state.items() if k.startswith("generator.")}
        self.generator_.load_state_dict(g_state)
        self.generator_.eval()
        self.cond_probs_ = [state[f"cond_probs.{j}"].numpy() for j in range(len(self.cond_.spans))]
        self.balance_rates_ = state["balance_rates"].numpy() if "balance_rates" in state else None
        return self
