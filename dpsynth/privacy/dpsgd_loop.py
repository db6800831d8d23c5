"""The one DP-SGD training loop of dpsynth: a generator supplies a network, its optimizer and a loss.

:class:`DPSGDRun` owns everything private about training, once for every DP-SGD generator
(dp-gan, dp-diffusion, dp-gan-image, dp-diffusion-image and their federated rounds):

- the plan: the noise multiplier calibrated by the ledger's accountant for the schedule of
  :mod:`dpsynth.privacy.schedule` (:func:`~dpsynth.privacy.engine.plan_dp_sgd`);
- the data loader: opacus' Poisson DPDataLoader over rows, or over privacy units (patients)
  packed by :mod:`dpsynth.privacy.unit_sgd`, whose per-row gradients are summed per unit
  before clipping; the per-group Poisson loader of :mod:`dpsynth.privacy.fair_sgd`;
- opacus' ``make_private`` with the grad-sample mode (hooks, functorch, ew, ghost clipping, or
  ``no_op`` when the loss stores per-example gradients itself with torch.func), DPDDP when a
  process group runs (:mod:`dpsynth.privacy.distributed`);
- the step loop: physical batches through BatchMemoryManager, the clipped and noised step, the
  ledger charged for each real step, and the stop before the target epsilon is crossed.

What a generator supplies is a :class:`DPSGDTask`: the per-example loss of a batch of real
rows, the gradients that read no real row (a GAN's fake rows; added after the noise, which is
post-processing), and what happens after each released step (EMA of the weights, a GAN's
generator update: post-processing). A new DP-SGD generator is a network plus a loss.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from dpsynth.privacy import distributed as dist
from dpsynth.privacy.clipping import GroupClipDPOptimizer
from dpsynth.privacy.engine import DPSGDEngine, plan_dp_sgd
from dpsynth.privacy.grad_modes import check_grad_sample_mode
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.schedule import Schedule
from dpsynth.privacy.unit_sgd import sum_grad_samples_by_unit, unit_rows

ProgressFn = Callable[[dict], None]


@dataclass
class DPSGDTask:
    """What one DP-SGD generator adds to the loop.

    - ``loss(module, rows)``: the per-example losses ``[B]`` of a physical batch of real rows
      (``rows``: the dataset's tensors for those rows), computed with ``module``, the private
      network. In ``no_op`` mode the loss stores the per-example gradients itself
      (:mod:`dpsynth.privacy.functional_grads`) and returns the losses detached.
    - ``extra_grads(module)``: gradients of a loss that reads no real row (a GAN's fake rows),
      one per parameter, added to the privatised gradient after the noise.
    - ``after_step(module, step, losses)``: post-processing after each released step (EMA, a
      GAN's generator update); returns the metrics for the progress callback.
    - ``public_modules``: networks that never read a real row but are updated on every rank
      (a GAN's generator): they start from rank 0's weights and end with averaged buffers.
    """

    loss: Callable[[nn.Module, list[torch.Tensor]], torch.Tensor]
    extra_grads: Callable[[nn.Module], Sequence[torch.Tensor | None]] | None = None
    after_step: Callable[[nn.Module, int, torch.Tensor], dict[str, Any]] | None = None
    public_modules: tuple[nn.Module, ...] = ()


def public_update(module: nn.Module, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
    """One optimizer step of a network that reads no real row (a GAN's generator, trained through
    the private discriminator: post-processing); with several ranks the gradients are averaged,
    so the replicas stay identical. Returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    grads = dist.average_gradients(torch.autograd.grad(loss, list(module.parameters())))
    for p, g in zip(module.parameters(), grads):
        p.grad = g
    optimizer.step()
    return loss.item()


def effective_grad_sample_mode(requested: str, *, needs_grad_samples: bool) -> str:
    """Per-unit sums, adaptive / group clipping and the audit's canaries read per-example
    gradients (``p.grad_sample``): they run in hooks mode, whatever mode was asked for."""
    return "hooks" if needs_grad_samples else requested


class DPSGDRun:
    """One private module under DP-SGD: the engine, the private module, optimizer and loader.

    Build it with :meth:`planned` (plans the noise for a :class:`Schedule` and opens a new
    ledger entry) or directly with an engine (a federated round continues its site's entry)."""

    def __init__(self, *, engine: DPSGDEngine, module: nn.Module, optimizer: torch.optim.Optimizer, dataset: Dataset,
                 torch_rng: torch.Generator, grad_sample_mode: str = "hooks",
                 noise_generator: torch.Generator | None = None, per_unit: bool = False) -> None:
        if grad_sample_mode != "no_op":
            check_grad_sample_mode(grad_sample_mode)
        self.engine = engine
        self.grad_sample_mode = grad_sample_mode
        self.per_unit = per_unit
        self.module, self.optimizer, self.loader = engine.make_private(
            module=module, optimizer=optimizer, dataset=dataset, torch_rng=torch_rng,
            grad_sample_mode=grad_sample_mode, noise_generator=noise_generator)
        self.dataset = dataset
        self.balanced_batch_size: int | None = None  # set by fair_sgd's per-group Poisson loader

    @classmethod
    def planned(cls, *, ledger: Ledger, schedule: Schedule, max_grad_norm: float, purpose: str, secure_mode: bool,
                module: nn.Module, optimizer: torch.optim.Optimizer, dataset: Dataset, torch_rng: torch.Generator,
                grad_sample_mode: str = "hooks", noise_generator: torch.Generator | None = None,
                per_unit: bool = False) -> "DPSGDRun":
        """Calibrate the noise for ``schedule`` over ``len(dataset)`` sampling units (rows, or
        patients with ``per_unit``), after what the ledger already holds, and make it private."""
        plan = plan_dp_sgd(ledger=ledger, n=len(dataset), batch_size=schedule.batch_size, steps=schedule.steps,
                           max_grad_norm=max_grad_norm)
        engine = DPSGDEngine(ledger=ledger, plan=plan, purpose=purpose, secure_mode=secure_mode)
        return cls(engine=engine, module=module, optimizer=optimizer, dataset=dataset, torch_rng=torch_rng,
                   grad_sample_mode=grad_sample_mode, noise_generator=noise_generator, per_unit=per_unit)

    @property
    def plan(self):
        return self.engine.plan

    @property
    def expected_batch_size(self) -> int:
        """The expected logical batch size, a public number (rate x units, or the balanced
        loader's expectation from DP group counts): e.g. a GAN's fixed number of fake rows."""
        if self.balanced_batch_size is not None:
            return self.balanced_batch_size
        return max(1, int(round(self.plan.sample_rate * len(self.loader.dataset))))

    def per_rank(self, count: int) -> int:
        """This rank's share of ``count`` data-independent items (all of it in one process)."""
        if not self.engine.distributed:
            return count
        return max(1, int(math.ceil(count / dist.rank_and_world()[1])))

    def summary(self, **extra: Any) -> dict:
        """The plan as saved with the run: noise, rate, steps, clip norm, ``extra``, grad-sample mode."""
        return {**self.plan.to_dict(), **extra, "grad_sample_mode": self.engine.grad_sample_mode}

    # ---- the loop -----------------------------------------------------------------------
    def train(self, task: DPSGDTask, *, max_physical_batch_size: int, progress: ProgressFn | None = None,
              audit_hook=None) -> None:
        """Take the planned steps (or stop before the target would be crossed)."""
        engine = self.engine
        for module in task.public_modules:
            dist.broadcast_module(module)
        with warnings.catch_warnings():
            # opacus' per-sample hooks on the first layer fire on batches whose inputs (real rows,
            # detached fakes) need no gradient; torch warns although the per-sample gradients of the
            # weights are complete. Only that message is silenced, only here.
            warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
            while engine.can_step():
                with engine.batches(self.loader, self.optimizer, max_physical_batch_size=max_physical_batch_size) as batches:
                    for batch in batches:
                        if not engine.can_step():
                            break
                        metrics = self._step(task, batch, audit_hook)
                        if metrics is not None and progress is not None:
                            progress({"step": engine.steps_taken, "steps": engine.plan.steps, **metrics,
                                      "epsilon": engine.ledger.epsilon()})
        for module in task.public_modules:
            dist.average_buffers(module)

    def _step(self, task: DPSGDTask, batch: Sequence[torch.Tensor], audit_hook) -> dict | None:
        """One physical batch; the metrics when it ended a released (logical) step, else None."""
        engine, module, optimizer = self.engine, self.module, self.optimizer
        rows, row_unit = unit_rows(batch) if self.per_unit else (list(batch), None)
        if isinstance(optimizer, GroupClipDPOptimizer):  # fair_sgd: the group codes are the last tensor
            optimizer.set_batch_groups(batch[-1])
        module.train()
        optimizer.zero_grad(set_to_none=True)
        # (1) the per-example clipped gradient of the loss on real rows
        engine.begin_batch()
        losses = task.loss(module, rows)
        if self.grad_sample_mode != "no_op":
            engine.backward(losses)  # ghost mode: through opacus' criterion (clipped)
            if row_unit is not None:  # patient level (hooks): per-row gradients -> one sum per patient
                sum_grad_samples_by_unit(module, row_unit, n_units=len(batch[0]))
            losses = losses.detach()
        # (2) gradients that read no real row, added after the noise
        # (computed only when this batch ends a real step: a virtual step would discard them)
        extra = (lambda: task.extra_grads(module)) if task.extra_grads is not None else None
        if audit_hook is not None:
            audit_hook.before_dp_step(optimizer, sample_rate=engine.entry.sample_rate)
        if not engine.step(optimizer, extra_grads=extra):
            return None
        # (3) post-processing of the released step
        return task.after_step(module, engine.steps_taken, losses) if task.after_step is not None else {}
