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

Fairness-aware training (all off by default; see :mod:`dpsynth.privacy.fair_sgd`):
``clipping="adaptive"`` (private quantile of the per-example norms), ``clipping="group"``
(per-group clip bounds from DP group counts) and ``balanced_sampling=True`` (larger Poisson
rates for smaller groups, the largest rate accounted; fake rows' conditional vectors follow
the balanced shares during training and sampling undoes the balancing, so representation
stays faithful). The group sizes are one extra Gaussian histogram, charged to the ledger.
The non-private reference ignores the clipping options but honours balanced sampling.

Conditioning is not exact: ``sample(conditions=...)`` sets the conditional vector and keeps
only rows that satisfy the condition (rejection sampling, at most ``max_tries`` rounds); it
raises a clear error when the request cannot be met.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from dpsynth.data.schema import Schema
from dpsynth.data.table import SyntheticData, TableData
from dpsynth.data.transform import TableTransformer
from dpsynth.errors import DpsynthError
from dpsynth.generators.base import ProgressFn, torch_generator
from dpsynth.generators.dpsgd import GANParams, gan_task
from dpsynth.generators.registry import register
from dpsynth.generators.tabular.dpsgd_schedule import ScheduledDPSGD
from dpsynth.generators.tabular.gan.conditional import (
    CondSpace,
    balance_accept,
    cond_counts,
    frequencies,
    balanced_cond_probs,
    rejection_sample,
    resolve_conditions,
)
from dpsynth.generators.tabular.gan.networks import Discriminator, GeneratorNet, activate, cond_loss
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.dpsgd_loop import DPSGDRun, effective_grad_sample_mode, public_update
from dpsynth.privacy.fair_sgd import FairSGD, apply_fair_sgd, dp_groups
from dpsynth.privacy.groups import group_sample_rates
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.unit_sgd import unit_dataset

# re-exported: the networks and the conditional vector are part of dp-gan's public face
__all__ = ["DPGAN", "CondSpace", "Discriminator", "GeneratorNet", "activate"]


@register("dp-gan")
@dataclass(eq=False, kw_only=True)
class DPGAN(ScheduledDPSGD, GANParams, FairSGD):
    """Conditional tabular GAN; discriminator trained with opacus DP-SGD."""

    exact_conditioning = False
    #: white-box audits may attach a canary hook (dpsynth.privacy.canaries); never saved
    supports_canary_gradients = True
    _audit_hook = None

    generator_hidden: tuple[int, ...] = (128, 128)
    discriminator_hidden: tuple[int, ...] = (128, 128)
    dropout: float = 0.0
    min_fake_batch_size: int = 0
    tau: float = 0.2
    max_physical_batch_size: int = 1024
    max_tries: int = 50

    def __post_init__(self) -> None:
        super().__post_init__()  # DPSGDParams, then FairSGD
        self.generator_hidden = tuple(self.generator_hidden)
        self.discriminator_hidden = tuple(self.discriminator_hidden)
        self.min_fake_batch_size = int(self.min_fake_batch_size)

    @property
    def _uses_groups(self) -> bool:
        return self.clipping == "group" or self.balanced_sampling

    # ---- building blocks ----------------------------------------------------------------
    def _build(self, schema: Schema) -> None:
        self.transformer_ = TableTransformer(schema)
        self.cond_ = CondSpace(self.transformer_)
        self.generator_ = GeneratorNet(
            noise_dim=self.noise_dim, cond_dim=self.cond_.dim, hidden=self.generator_hidden, out_dim=self.transformer_.dim
        )
        self.schema_ = schema

    # ---- training -----------------------------------------------------------------------
    def _fit(self, data: TableData, *, budget: Budget, rng: np.random.Generator, ledger: Ledger | None,
             progress: ProgressFn | None) -> "DPGAN":
        from dpsynth.privacy import distributed as dist

        dist.refuse_data_parallel(generator="dp-gan", features=[f for f, on in (
            (f"clipping='{self.clipping}'", self.clipping != "flat"), ("balanced_sampling", self.balanced_sampling)) if on])
        schema, frame = data.schema, data.frame
        self._build(schema)
        gen = torch_generator(rng)
        encoded = torch.from_numpy(self.transformer_.encode(frame))

        # DP category frequencies for the conditional vector (one Gaussian release)
        counts = cond_counts(frame, self.cond_, transformer=self.transformer_, budget=budget, ledger=ledger, rng=rng,
                             releases=2 if self._uses_groups else 1, contribution=data.max_rows_per_unit)
        self.cond_probs_ = [frequencies(c) for c in counts]
        self.train_cond_probs_ = self.cond_probs_
        self.balance_rates_ = None
        groups = None
        if self._uses_groups:  # DP group sizes (one Gaussian histogram), or exact for the reference
            groups = dp_groups(frame, schema, self.group_columns, budget=budget, ledger=ledger, rng=rng)
            self.group_columns_ = groups["columns"]

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
                self.train_cond_probs_ = balanced_cond_probs(self.cond_probs_, self.cond_.spans, groups, rates, schema)
                self.balance_rates_ = rates / rates.max()
            self._train_non_private(disc, opt_d, opt_g, dataset, steps=steps, gen=gen, progress=progress,
                                    weights=weights, batch_size=batch_size)
        else:
            audited = self._audit_hook is not None
            mode = effective_grad_sample_mode(self.grad_sample_mode, needs_grad_samples=self.clipping != "flat"
                                              or audited or self._per_unit)
            run = DPSGDRun.planned(ledger=ledger, schedule=schedule, max_grad_norm=self.max_grad_norm,
                                   purpose="discriminator DP-SGD", secure_mode=budget.secure_mode, module=disc,
                                   optimizer=opt_d, dataset=dataset, torch_rng=gen, grad_sample_mode=mode,
                                   per_unit=self._per_unit)
            if self.fairness_active:
                rates = apply_fair_sgd(run, self, groups=groups, max_grad_norm=self.max_grad_norm)
                if rates is not None:  # fake rows follow the balanced shares; sampling undoes them
                    self.train_cond_probs_ = balanced_cond_probs(self.cond_probs_, self.cond_.spans, groups, rates, schema)
                    self.balance_rates_ = rates / rates.max()
            self._train_dp(run, opt_g, gen=gen, progress=progress)
            self.dp_plan_ = run.summary(schedule=self.schedule_)
            if self.fairness_active:
                self.dp_plan_["fairness"] = {k: v for k, v in run.engine.entry.params.items()
                                             if k not in ("planned_steps", "poisson_sampling", "secure_mode")}
        self.generator_.eval()
        self.ledger_ = ledger
        return self


    def _fake_batch(self, m: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        z = torch.randn(m, self.noise_dim, generator=gen)
        probs = getattr(self, "train_cond_probs_", None) or self.cond_probs_
        cond, block, category = self.cond_.draw(m, probs=probs, gen=gen)
        fake = activate(self.generator_(z, cond), self.transformer_.spans, tau=self.tau, gen=gen)
        return fake, cond, block, category

    def _generator_step(self, disc_forward, opt_g: torch.optim.Optimizer, m: int, gen: torch.Generator) -> float:
        fake, cond, block, category = self._fake_batch(m, gen)
        logits = disc_forward(torch.cat([fake, cond], dim=1))
        loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)) + cond_loss(fake, block, category, self.cond_.spans)
        return public_update(self.generator_, loss, opt_g)


    def _train_dp(self, run: DPSGDRun, opt_g: torch.optim.Optimizer, *, gen: torch.Generator,
                  progress: ProgressFn | None) -> None:
        """The discriminator's DP-SGD steps on the shared loop (also one federated round)."""
        # fake rows read no real row: their number (public, fixed) may exceed the small DP batches of small
        # tables; with several ranks each draws its share and the gradients are averaged
        m = run.per_rank(max(run.expected_batch_size, self.min_fake_batch_size))

        def fake_input():
            fake, cond, _, _ = self._fake_batch(m, gen)
            return torch.cat([fake, cond], dim=1)

        task = gan_task(real_input=lambda rows: torch.cat([rows[0], rows[1]], dim=1), fake_input=fake_input,
                        generator_step=lambda disc: self._generator_step(disc, opt_g, m, gen),
                        generator_steps=self.generator_steps, generator=self.generator_,
                        generator_round=self.generator_round)
        run.train(task, max_physical_batch_size=self.max_physical_batch_size, progress=progress,
                  audit_hook=self._audit_hook)

    def _train_non_private(self, disc, opt_d, opt_g, dataset, *, steps: int, gen, progress,
                           weights: torch.Tensor | None = None, batch_size: int = 128) -> None:
        n = len(dataset)
        x_all, c_all = dataset.tensors[:2]
        g_loss = math.nan  # until the first generator round
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
            for _ in range(self.generator_steps if self.generator_round(step + 1) else 0):
                g_loss = self._generator_step(disc, opt_g, batch_size, gen)
            if progress is not None:
                progress({"step": step + 1, "steps": steps, "d_loss": d_loss.item(), "g_loss": g_loss,
                          "epsilon": math.inf})

    # ---- sampling -----------------------------------------------------------------------
    @torch.no_grad()
    def _sample_raw(self, n: int, *, gen: torch.Generator, fixed: dict[int, int] | None = None) -> pd.DataFrame:
        z = torch.randn(n, self.noise_dim, generator=gen)
        cond, _, _ = self.cond_.draw(n, probs=self.cond_probs_, gen=gen)
        if fixed:
            self.cond_.fix(cond, fixed, gen=gen)
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
            frames = [self._sample_raw(min(n - i, 100_000), gen=gen) for i in range(0, n, 100_000)]
            return SyntheticData(frame=pd.concat(frames, ignore_index=True), schema=self.schema_, generator=self.name)
        fixed, checks = resolve_conditions(conditions or {}, schema=self.schema_, cond=self.cond_)
        accept = None if balance is None else (lambda batch: balance_accept(
            batch, rng, checks, schema=self.schema_, group_columns=self.group_columns, rates=balance))
        frame, have = rejection_sample(lambda m: self._sample_raw(m, gen=gen, fixed=fixed), n, checks=checks,
                                       accept=accept, max_tries=self.max_tries)
        if frame is None:
            raise DpsynthError(f"dp-gan could only produce {have} of {n} rows with {dict(conditions or {})} in"
                               f" {self.max_tries} tries; the condition is too rare for this model")
        info = {"method": "rejection"} if conditions else {"method": "reweighted (balanced training)"}
        return SyntheticData(frame=frame, schema=self.schema_, generator=self.name,
                             info={"conditions": dict(conditions or {}), **info})

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
