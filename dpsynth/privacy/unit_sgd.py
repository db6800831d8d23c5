"""DP-SGD with a patient as the privacy unit: Poisson-sample patients, clip each patient's gradient.

After contribution bounding (:mod:`dpsynth.privacy.contribution`) each unit has at most k rows.
:func:`unit_dataset` packs the rows of each unit into one dataset item (tensors padded to k
rows plus a row mask), so opacus' DPDataLoader samples *units* by Poisson with rate q and the
accountant's neighbouring relation is "add or remove one patient".

In a step the sampled units' valid rows go through the model as an ordinary batch of rows;
opacus' hooks give per-row gradients of the row losses, and :func:`sum_grad_samples_by_unit`
replaces them by their sum over each unit's rows *before* the DPOptimizer clips. So the
clipped example is the gradient of the sum of one patient's row losses: one patient moves
the noised sum by at most the clip norm, whatever its number of rows, and the ledger's
subsampled-Gaussian entry (sample rate q over units) is the patient-level guarantee.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import TensorDataset

from dpsynth.errors import PrivacyError


def unit_dataset(tensors: Sequence[torch.Tensor], units: np.ndarray, *, max_rows: int) -> TensorDataset:
    """One item per unit: each tensor as ``[U, max_rows, ...]`` (zero-padded) and a bool mask ``[U, max_rows]``."""
    codes = np.asarray(units, dtype=np.int64)
    n_units = int(codes.max()) + 1 if len(codes) else 0
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1] if len(codes) else np.zeros(0, dtype=np.int64)
    slot = np.arange(len(codes)) - np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
    if len(slot) and int(slot.max()) >= max_rows:
        raise PrivacyError(f"a privacy unit has more than max_rows_per_unit={max_rows} rows: bound contributions first")
    rows_t = torch.from_numpy(order)
    unit_t, slot_t = torch.from_numpy(sorted_codes), torch.from_numpy(slot)
    packed = []
    for t in tensors:
        out = t.new_zeros((n_units, max_rows, *t.shape[1:]))
        out[unit_t, slot_t] = t[rows_t]
        packed.append(out)
    mask = torch.zeros((n_units, max_rows), dtype=torch.bool)
    mask[unit_t, slot_t] = True
    return TensorDataset(*packed, mask)


def unit_rows(batch: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """A batch of packed units (``unit_dataset`` items, mask last) -> its valid rows and each row's
    position in the batch."""
    *packed, mask = batch
    row_unit = torch.nonzero(mask, as_tuple=False)[:, 0]
    return [t[mask] for t in packed], row_unit


def sum_grad_samples_by_unit(module: torch.nn.Module, row_unit: torch.Tensor, *, n_units: int) -> None:
    """Replace each parameter's per-row ``grad_sample [R, ...]`` by the per-unit sums ``[n_units, ...]``.

    Call after ``loss.backward()`` on the rows of :func:`unit_rows` and before the optimizer
    step: opacus then clips one gradient per unit."""
    for p in module.parameters():
        gs = getattr(p, "grad_sample", None)
        if gs is None:
            continue
        if isinstance(gs, list):
            raise PrivacyError("per-unit clipping needs one backward pass per physical batch")
        if gs.shape[0] != row_unit.shape[0]:
            raise PrivacyError(f"grad_sample has {gs.shape[0]} rows, the batch {row_unit.shape[0]}")
        summed = gs.new_zeros((n_units, *gs.shape[1:]))
        summed.index_add_(0, row_unit.to(gs.device), gs)
        p.grad_sample = summed
