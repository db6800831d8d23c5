"""What the DP-SGD table generators (dp-gan, dp-diffusion) share besides the training loop
(:mod:`dpsynth.privacy.dpsgd_loop`): the step schedule, planned from public facts only."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dpsynth.data.table import TableData
from dpsynth.generators.base import Generator, ProgressFn, seeded_torch
from dpsynth.generators.dpsgd import DPSGDParams
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.schedule import Schedule, plan_schedule


@dataclass(eq=False, kw_only=True)
class ScheduledDPSGD(DPSGDParams, Generator):
    """A table generator trained with DP-SGD for a schedule of ``steps`` optimizer steps: the
    smallest batch in [min_batch_size, max_batch_size] whose noise multiplier reaches
    ``noise_floor``, within a compute budget of ``max_examples`` examples (steps x batch; the
    batch is cut and the steps kept, ``budget_cut="batch"``; None: no budget). ``legacy_batch_size`` is the batch of the legacy epochs plan.

    The defaults (750 steps, 60,000 examples; dp-diffusion: 500 steps, 60,000 examples of 4
    noisy copies) were chosen leave-one-dataset-out on the validation splits of the issue-16
    suite (``evaluation/bench_suite_dpsgd.py``; the selection table is in evaluation/README.md):
    a fit costs at most ~1-2 CPU minutes on one thread whatever the table's size."""

    legacy_batch_size = 128

    steps: int = 750
    min_batch_size: int = 32
    max_batch_size: int = 4096
    noise_floor: float = 3.0
    max_examples: int | None = 60_000
    min_steps: int = 50
    budget_cut: str = "batch"  # "steps" cut the steps instead: worse at larger epsilon (evaluation/README.md)

    def fit(self, data: TableData, *, budget: Budget, rng: np.random.Generator, ledger: Ledger | None = None,
            progress: ProgressFn | None = None):
        with seeded_torch(rng):  # weight init and dropout draw from torch's RNG: fork it, seed it, restore it
            ledger = self._make_ledger(budget, len(data.frame), ledger)
            return self._fit(data, budget=budget, rng=rng, ledger=ledger, progress=progress)

    def plan_schedule(self, n: int, *, epsilon: float | None, delta: float) -> Schedule:
        """Logical batch size and steps from public facts only (the row count n of the privacy unit,
        epsilon, delta) and the compute settings, by the rule of :mod:`dpsynth.privacy.schedule`:
        ``steps`` steps, the smallest batch in [min_batch_size, max_batch_size] whose noise
        multiplier reaches ``noise_floor`` (default 3): small tables get small batches, large tables
        bigger ones, never more passes; when steps x batch exceeds ``max_examples`` the batch is cut
        to the largest power of two that fits (``budget_cut="steps"``: the steps are cut instead,
        never below ``min_steps``). A fixed ``batch_size`` with ``steps`` is
        used as given (no budget). Setting ``epochs`` restores the legacy plan
        ``ceil(epochs * n / batch_size)`` (batch ``legacy_batch_size``)."""
        return plan_schedule(n=n, epsilon=epsilon, delta=delta, steps=self.steps, batch_size=self.batch_size,
                             epochs=self.epochs, legacy_batch_size=self.legacy_batch_size,
                             min_batch_size=self.min_batch_size, max_batch_size=self.max_batch_size,
                             noise_floor=self.noise_floor, max_examples=self.max_examples,
                             min_steps=self.min_steps, budget_cut=self.budget_cut)

    def plan_steps(self, n: int) -> int:
        """``steps``, or with ``epochs`` set epochs x expected batches per epoch (n only, public).
        The steps of a fixed-batch or epochs plan; an automatic batch under ``max_examples`` may cut
        them further (that needs epsilon: :meth:`plan_schedule`)."""
        if self.epochs is not None:
            return max(1, int(math.ceil(self.epochs * n / (self.batch_size or self.legacy_batch_size))))
        return int(self.steps)
