"""``dp-diffusion``: a TabDDPM-style diffusion model of the encoded table, trained with DP-SGD.

Model
-----
- Rows are encoded by :class:`TableTransformer` on the schema's public bounds: numeric columns
  to [-1, 1]; categorical columns (and the missing-indicator of nullable numerics) as one-hot
  blocks mapped to {-1, +1} ("analog bits"). The whole vector follows one Gaussian diffusion
  (cosine schedule; diffusers' ``DDPMScheduler.add_noise`` for training, ``DDIMScheduler.step``
  for sampling). Categoricals are treated by Gaussian diffusion on their one-hot block, the
  simpler alternative to TabDDPM's multinomial diffusion: the network predicts each block's
  category posterior (softmax, cross-entropy loss; its exact noisy-block likelihood is added to
  the logits) and the row is decoded by argmax. Numeric coordinates use EDM preconditioning.
  See :mod:`.process`.
- The denoiser is a residual MLP (:mod:`.denoiser`, Linear/LayerNorm/SiLU)
  with a sinusoidal timestep embedding and a condition vector (one-hot blocks of categorical
  columns, zero when unknown).

Privacy argument
----------------
- The denoiser is the only thing that reads real rows, and only through opacus DP-SGD
  (:class:`DPSGDEngine`): Poisson-sampled batches, per-example clipping, Gaussian noise
  calibrated to the target over the planned steps, every step charged to the ledger.
- Noise multiplicity: each example is noised ``noise_multiplicity`` times inside its own
  per-example loss (the mean over its copies), so it still contributes one clipped gradient;
  the sensitivity and the accounting are unchanged.
- The condition vector of a copy reveals that row's own category of one random column: part
  of the row's own example. Timesteps, noise and which column is revealed are data-independent.
- Nothing else is read from the data: no bounds, no category frequencies (unconditional
  sampling needs none), no early stopping or model selection on real data. The exponential
  moving average of the weights is post-processing of the DP iterates.

Conditioning is exact (``exact_conditioning = True``): ``sample(conditions=...)`` sets the
condition vector for categorical conditions and inpaints every conditioned column (replacement
method: its coordinates are overwritten by the forward-noised requested value at each step and
by the exact value at the end). Numeric conditions are honoured by inpainting alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from dpsynth.data.schema import Schema, _key
from dpsynth.data.table import SyntheticData, TableData
from dpsynth.data.transform import TableTransformer
from dpsynth.errors import DpsynthError
from dpsynth.generators.base import ProgressFn, torch_generator
from dpsynth.generators.dpsgd import DiffusionParams
from dpsynth.generators.registry import register
from dpsynth.generators.tabular.dpsgd_schedule import ScheduledDPSGD
from dpsynth.generators.tabular.diffusion.conditioning import ConditionSpace
from dpsynth.generators.tabular.diffusion.denoiser import MLPDenoiser
from dpsynth.generators.tabular.diffusion.process import Layout, make_schedules, per_example_loss, sample_rows
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.dpsgd_loop import DPSGDRun, DPSGDTask, effective_grad_sample_mode
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.unit_sgd import unit_dataset

@register("dp-diffusion")
@dataclass(eq=False, kw_only=True)
class DPDiffusion(ScheduledDPSGD, DiffusionParams):
    """Gaussian diffusion on the encoded table; MLP denoiser trained with opacus DP-SGD."""

    exact_conditioning = True
    legacy_batch_size = 256
    #: white-box audits may attach a canary hook (dpsynth.privacy.canaries); never saved
    supports_canary_gradients = True
    _audit_hook = None

    # schedule defaults chosen leave-one-dataset-out on the issue-16 suite (see ScheduledDPSGD):
    # 500 steps of 4 noisy copies per example within 60,000 examples (240,000 example copies)
    # edged 250 steps of 8 copies within 30,000 examples (the same compute): 0.876 vs 0.870
    steps: int = 500
    noise_multiplicity: int = 4
    width: int = 128
    depth: int = 2
    time_dim: int = 64
    sampling_steps: int = 25
    sampling_eta: float = 0.0
    sigma_data: float = 0.15
    cond_rate: float = 0.1
    sample_chunk: int = 50_000

    # ---- building blocks ----------------------------------------------------------------
    def _build(self, schema: Schema) -> None:
        self.transformer_ = TableTransformer(schema)
        self.cond_ = ConditionSpace(self.transformer_)
        self.schedules_ = make_schedules(num_train_timesteps=self.num_train_timesteps, beta_schedule=self.beta_schedule,
                                         sampling_steps=self.sampling_steps)
        self.layout_ = Layout(self.transformer_.spans, sigma_data=self.sigma_data)
        self.denoiser_ = self._new_denoiser()
        self.schema_ = schema

    def _new_denoiser(self) -> MLPDenoiser:
        cond_dim = self.cond_.dim if self.cond_rate > 0 else 0
        return MLPDenoiser(data_dim=self.transformer_.dim, cond_dim=cond_dim, width=self.width, depth=self.depth,
                           time_dim=self.time_dim)

    def _encode(self, frame: pd.DataFrame) -> torch.Tensor:
        """Numeric spans in [-1, 1] (public bounds); one-hot blocks mapped from {0, 1} to {-1, +1}."""
        x = self.transformer_.encode(frame)
        for s in self.transformer_.spans:
            if s.kind == "softmax":
                x[:, s.start : s.stop] = 2.0 * x[:, s.start : s.stop] - 1.0
        return torch.from_numpy(x)

    # ---- training -----------------------------------------------------------------------
    def _fit(self, data: TableData, *, budget: Budget, rng: np.random.Generator, ledger: Ledger | None,
             progress: ProgressFn | None) -> "DPDiffusion":
        schema, frame = data.schema, data.frame
        self._build(schema)
        gen = torch_generator(rng)
        dataset = TensorDataset(self._encode(frame))
        self._per_unit = data.units is not None and data.max_rows_per_unit > 1 and not budget.non_private
        if self._per_unit:  # patient-level DP-SGD: Poisson-sample patients, clip each patient's gradient
            if self._audit_hook is not None:
                raise DpsynthError("dp-diffusion: the audit needs one row per patient (max_rows_per_unit = 1)")
            dataset = unit_dataset(dataset.tensors, data.units, max_rows=data.max_rows_per_unit)
        model = self._new_denoiser()
        if self._audit_hook is not None:  # white-box audit: the inert canary layer (never saved)
            model = self._audit_hook.wrap(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        ema = [p.detach().clone() for p in model.parameters()]
        n = len(dataset)  # with a privacy-unit column: patients (the sampling unit), not rows
        schedule = self.plan_schedule(n, epsilon=None if budget.non_private else budget.epsilon, delta=ledger.delta)
        self.schedule_ = schedule.to_dict()
        steps = schedule.steps
        if budget.non_private:
            ledger.record_non_private(purpose="non-private reference: plain (non-DP) training of the denoiser")
            self._train_non_private(model, optimizer, ema, dataset, steps=steps, gen=gen, progress=progress,
                                    batch_size=schedule.batch_size)
            self.dp_plan_ = None
        else:
            # canaries and patient-level sums read per-example grad_sample: hooks mode
            mode = effective_grad_sample_mode(self.grad_sample_mode,
                                              needs_grad_samples=self._audit_hook is not None or self._per_unit)
            run = DPSGDRun.planned(ledger=ledger, schedule=schedule, max_grad_norm=self.max_grad_norm,
                                   purpose="denoiser DP-SGD", secure_mode=budget.secure_mode, module=model,
                                   optimizer=optimizer, dataset=dataset, torch_rng=gen, grad_sample_mode=mode,
                                   per_unit=self._per_unit)
            self._train_dp(run, ema, gen=gen, progress=progress)
            self.dp_plan_ = run.summary(schedule=self.schedule_)
        # a fresh module (no opacus hooks) holding the averaged weights: post-processing
        with torch.no_grad():
            for p, e in zip(self.denoiser_.parameters(), ema):
                p.copy_(e)
        self.denoiser_.eval()
        self.ledger_ = ledger
        return self

    def _loss(self, model, x0: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        per_example = self._per_example_loss(model, x0, gen)
        return per_example.sum() / max(1, x0.shape[0])  # mean over the batch (opacus loss_reduction="mean")

    def _per_example_loss(self, model, x0: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        k = self.noise_multiplicity
        cond = None
        if self.cond_rate > 0:
            cond = self.cond_.reveal((x0 + 1.0) / 2.0, copies=k, rate=self.cond_rate, gen=gen)
        return per_example_loss(model, x0, cond, self.schedules_, self.layout_, copies=k, gen=gen)

    def _update_ema(self, model, ema: list[torch.Tensor], step: int) -> None:
        """Exponential moving average of the weights, with the usual warm-up of the decay."""
        decay = min(self.ema_decay, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            for e, p in zip(ema, model.parameters()):
                e.lerp_(p.detach(), 1.0 - decay)

    def _train_dp(self, run: DPSGDRun, ema: list[torch.Tensor], *, gen: torch.Generator,
                  progress: ProgressFn | None) -> None:
        """The denoiser's DP-SGD steps on the shared loop (also one federated round): the loss is
        the per-example denoising loss over its noise copies; the EMA is post-processing."""

        def loss(model, rows):
            return self._per_example_loss(model, rows[0], gen)

        def after_step(model, step, losses):
            self._update_ema(model, ema, step)
            return {"loss": (losses.sum() / max(1, losses.shape[0])).item()}

        run.train(DPSGDTask(loss=loss, after_step=after_step), max_physical_batch_size=self.max_physical_batch_size,
                  progress=progress, audit_hook=self._audit_hook)

    def _train_non_private(self, model, optimizer, ema, dataset, *, steps: int, gen, progress,
                           batch_size: int = 256) -> None:
        (x_all,) = dataset.tensors
        model.train()
        for step in range(steps):
            idx = torch.randint(len(x_all), (min(batch_size, len(x_all)),), generator=gen)
            optimizer.zero_grad(set_to_none=True)
            loss = self._loss(model, x_all[idx], gen)
            loss.backward()
            if self._audit_hook is not None:
                self._audit_hook.before_plain_step(batch_size=len(idx), n=len(x_all))
            optimizer.step()
            self._update_ema(model, ema, step + 1)
            if progress is not None:
                progress({"step": step + 1, "steps": steps, "loss": loss.item(), "epsilon": math.inf})

    # ---- sampling -----------------------------------------------------------------------
    def sample(self, n: int, *, conditions: Mapping[str, Any] | None = None, rng: np.random.Generator) -> SyntheticData:
        self._check_fitted()
        if n <= 0:
            raise DpsynthError(f"number of rows must be > 0, got {n}")
        gen = torch_generator(rng)
        dim = self.transformer_.dim
        cond, known, mask = self._resolve_conditions(conditions or {})
        null = torch.zeros(1, self.cond_.dim) if self.cond_rate > 0 else None
        frames = []
        for start in range(0, n, self.sample_chunk):
            x = sample_rows(self.denoiser_, self.schedules_, self.layout_, n=min(self.sample_chunk, n - start), dim=dim,
                            gen=gen, eta=self.sampling_eta, cond=null if cond is None else cond, null_cond=null,
                            guidance_scale=self.guidance_scale, known=known, known_mask=mask)
            frames.append(self.transformer_.decode(x.numpy()))
        frame = pd.concat(frames, ignore_index=True)
        info = {"conditions": dict(conditions), "method": "condition vector + inpainting"} if conditions else {}
        return SyntheticData(frame=frame, schema=self.schema_, generator=self.name, info=info)

    def _resolve_conditions(self, conditions: Mapping[str, Any]):
        """(condition vector [1, c] or None, known values [d] or None, known mask [d] or None)."""
        if not conditions:
            return None, None, None
        known = torch.zeros(self.transformer_.dim)
        mask = torch.zeros(self.transformer_.dim, dtype=torch.bool)
        categories: dict[int, int] = {}
        for name, value in conditions.items():
            if name not in self.schema_:
                raise DpsynthError(f"cannot condition on unknown column '{name}'")
            col = self.schema_[name]
            span = next(s for s in self.transformer_.spans if s.column == name and s.role == "value")
            if col.is_numeric:
                v = _as_float(value)
                if math.isnan(v) or not col.low <= v <= col.high:
                    raise DpsynthError(
                        f"condition {name}={value!r} is outside the declared domain [{col.low}, {col.high}]")
                known[span.start] = 2.0 * (v - col.low) / (col.high - col.low) - 1.0
                mask[span.start] = True
                if col.nullable:  # a value was requested, so the column is present
                    miss = next(s for s in self.transformer_.spans if s.column == name and s.role == "missing")
                    known[miss.start : miss.stop] = torch.tensor([1.0, -1.0])
                    mask[miss.start : miss.stop] = True
                continue
            lookup = {_key(c): i for i, c in enumerate(col.categories)}
            if _key(value) not in lookup:
                raise DpsynthError(f"condition {name}={value!r} is not a declared category {list(col.categories)}")
            code = lookup[_key(value)]
            known[span.start : span.stop] = -1.0
            known[span.start + code] = 1.0
            mask[span.start : span.stop] = True
            categories[self.cond_.index_of(name)] = code
        cond = self.cond_.fixed(1, categories) if self.cond_rate > 0 else None
        return cond, known, mask

    # ---- state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        self._check_fitted()
        return {f"denoiser.{k}": v.detach().clone().contiguous() for k, v in self.denoiser_.state_dict().items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], *, schema: Schema) -> "DPDiffusion":
        with torch.random.fork_rng(devices=[]):  # the throw-away weight init leaves torch's RNG as it was
            self._build(schema)
        self.denoiser_.load_state_dict({k[len("denoiser."):]: v for k, v in state.items() if k.startswith("denoiser.")})
        self.denoiser_.eval()
        return self


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
