"""Fairness-aware DP-SGD on a :class:`~dpsynth.privacy.dpsgd_loop.DPSGDRun`: adaptive or
per-group clipping and per-group (balanced) Poisson sampling, each recorded in the run's
DP-SGD ledger entry.

- ``clipping="adaptive"``: the clip norm follows a privately estimated quantile of the
  per-example gradient norms (Andrew et al. 2021); the noisy unclipped count is part of each
  step's Gaussian release and the ledger's noise multiplier is the composed one.
- ``clipping="group"``: each example is clipped to its group's bound (larger for smaller
  groups, from DP group counts), noise calibrated to the largest bound (DPSGD-F spirit).
- ``balanced_sampling``: smaller groups get larger Poisson rates (from DP group counts); the
  ledger charges the largest rate (conservative).

The group codes of the rows are the dataset's LAST tensor (the loop hands each batch's codes
to the group-clipping optimizer). Group counts are DP releases made by the caller
(:func:`dpsynth.privacy.groups.dp_group_counts`), so everything here is post-processing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from dpsynth.data.schema import Schema
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.clipping import AdaptiveClipDPOptimizer, GroupClipDPOptimizer, swap_optimizer
from dpsynth.privacy.groups import (
    GroupPoissonSampler,
    dp_group_counts,
    group_clip_bounds,
    group_codes,
    group_columns_for,
    group_labels,
    group_sample_rates,
)
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.mechanisms import preprocessing_noise_multiplier


@dataclass(eq=False, kw_only=True)
class FairSGD:
    """The fairness options of a DP-SGD run (all off: ``clipping="flat"``, no balancing);
    ``group_columns``: the sensitive columns that define the groups (default: the schema's).
    A generator that offers them mixes this dataclass in (its fields are hyper-parameters)."""

    clipping: str = "flat"
    group_columns: tuple[str, ...] = ()
    balanced_sampling: bool = False
    clip_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    count_noise_std: float | None = None
    group_clip_power: float = 0.5
    group_clip_max_ratio: float = 4.0
    balance_power: float = 0.5

    def __post_init__(self) -> None:
        if self.clipping not in ("flat", "adaptive", "group"):
            raise ValueError(f"clipping must be 'flat', 'adaptive' or 'group', got {self.clipping!r}")
        self.group_columns = tuple(self.group_columns or ())
        self.balanced_sampling = bool(self.balanced_sampling)

    @property
    def fairness_active(self) -> bool:
        return self.clipping != "flat" or self.balanced_sampling


def dp_groups(frame: pd.DataFrame, schema: Schema, group_columns, *, budget: Budget, ledger: Ledger,
              rng: np.random.Generator) -> dict:
    """Group id of each row and the group sizes: exact for the non-private reference, else one
    Gaussian histogram charged to the ledger (the second of two preprocessing releases)."""
    columns = group_columns_for(schema, group_columns)
    codes, size = group_codes(frame, schema, columns)
    if budget.non_private:
        counts = np.bincount(codes, minlength=size).astype(float)
    else:
        sigma = preprocessing_noise_multiplier(budget, delta=ledger.delta, releases=2)
        counts = dp_group_counts(codes, size, ledger=ledger, noise_multiplier=sigma, rng=rng,
                                 secure=budget.secure_mode)
    return {"codes": codes, "counts": counts, "columns": columns, "labels": group_labels(schema, columns)}


def apply_fair_sgd(run, fair: FairSGD, *, groups: dict | None, max_grad_norm: float) -> np.ndarray | None:
    """Swap in the adaptive / group clipping optimizer and the per-group Poisson loader on
    ``run`` and record what they do in its DP-SGD ledger entry. ``groups``: ``counts`` (DP)
    and ``labels`` per group. Returns the per-group sample rates when sampling is balanced."""
    params = run.engine.entry.params
    sigma = run.engine.entry.noise_multiplier
    opt = run.optimizer
    if fair.clipping == "adaptive":
        opt = swap_optimizer(opt, AdaptiveClipDPOptimizer, target_quantile=fair.clip_quantile,
                             learning_rate=fair.clip_learning_rate, count_std=fair.count_noise_std)
        params.update({"clipping": "adaptive", "noise_multiplier_composed": sigma,
                       "grad_noise_multiplier": opt.grad_sigma, "count_noise_std": opt.count_std,
                       "count_sensitivity": 0.5, "initial_clip_norm": max_grad_norm,
                       "target_unclipped_quantile": fair.clip_quantile,
                       "clip_learning_rate": fair.clip_learning_rate,
                       "accounting": "gradient sum and centred unclipped count released together: one Gaussian "
                                     "mechanism with sigma = (grad_sigma^-2 + (2 count_std)^-2)^-1/2"})
    elif fair.clipping == "group":
        bounds = group_clip_bounds(groups["counts"], base=max_grad_norm, power=fair.group_clip_power,
                                   max_ratio=fair.group_clip_max_ratio)
        opt = swap_optimizer(opt, GroupClipDPOptimizer, group_bounds=bounds.tolist())
        params.update({"clipping": "group", "max_grad_norm": float(bounds.max()),
                       "group_clip_bounds": dict(zip(groups["labels"], bounds.round(6).tolist())),
                       "noise_std": sigma * float(bounds.max()),
                       "accounting": "per-group clip bounds from DP group counts; noise calibrated to the "
                                     "largest bound (the sensitivity)"})
    run.optimizer = opt
    if not fair.balanced_sampling:
        return None
    loader, dataset = run.loader, run.dataset
    q = loader.sample_rate
    rates = group_sample_rates(groups["counts"], max_rate=q, power=fair.balance_power)
    sampler = GroupPoissonSampler(groups=dataset.tensors[-1], rates=rates, generator=loader.batch_sampler.generator,
                                  steps=len(loader))
    run.loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=loader.collate_fn,
                                             generator=loader.generator)
    expected = float(np.sum(rates * groups["counts"]))  # from DP counts: post-processing
    run.balanced_batch_size = max(1, int(round(expected)))
    opt.expected_batch_size = run.balanced_batch_size
    params.update({"balanced_sampling": True, "sample_rate_accounted": q,
                   "group_sample_rates": dict(zip(groups["labels"], rates.round(8).tolist())),
                   "sampling_note": "Poisson rates differ per group; accounted with the largest rate "
                                    "(conservative)"})
    return rates
