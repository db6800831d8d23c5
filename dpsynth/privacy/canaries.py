"""Canaries for the one-run privacy audit (:mod:`dpsynth.privacy.audit`).

White-box: Dirac gradient canaries (Nasr et al. 2023; Steinke et al. 2023). The audited
network (dp-gan's discriminator, dp-diffusion's denoiser) gets an inert layer of m weights that no real example moves (its input is
always zero, so every real per-example gradient on it is exactly 0). Canary i is an extra
training example whose gradient is ``-C e_i`` (norm C, the current clip bound): inside DP-SGD
it is Poisson-sampled at the loader's rate, clipped and noised with the real examples, i.e. it
is a member of the training set in the sense of the DP guarantee. Its score is the final value
of weight i. In the non-private reference it is added to the plain gradient of each batch it
is sampled into. The rest of training is unchanged: the inert layer adds 0 to every output.

Black-box: outlier rows inside the public domain (numeric columns at a random end of their
bounds, categories drawn uniformly), scored by minus the distance to the nearest synthetic row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from dpsynth.data.schema import Schema


class _WithCanaryLayer(nn.Module):
    """The audited network (a discriminator or a denoiser) plus an inert Linear(m, 1) whose input
    is always zero; its output is added to the network's output, broadcast over all but the
    batch dimension."""

    def __init__(self, inner: nn.Module, m: int) -> None:
        super().__init__()
        self.inner = inner
        self.canary = nn.Linear(m, 1, bias=False)
        nn.init.zeros_(self.canary.weight)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        out = self.inner(x, *args, **kwargs)
        inert = self.canary(x.new_zeros(x.shape[0], self.canary.in_features))  # [B, 1], exactly zero
        return out + inert.reshape(x.shape[0], *([1] * (out.dim() - 1)))


class DiracCanaries:
    """The hook a generator with ``supports_canary_gradients`` calls during training."""

    def __init__(self, *, included: np.ndarray, seed: int) -> None:
        self.included = np.asarray(included, dtype=bool)
        self.members = torch.from_numpy(np.flatnonzero(self.included))
        self.gen = torch.Generator().manual_seed(seed)
        self.module: _WithCanaryLayer | None = None
        self.inserted = 0

    def wrap(self, disc: nn.Module) -> nn.Module:
        self.module = _WithCanaryLayer(disc, len(self.included))
        return self.module

    def _weight(self) -> nn.Parameter:
        return self.module.canary.weight

    def _sampled(self, rate: float) -> torch.Tensor:
        mask = torch.rand(len(self.members), generator=self.gen) < rate
        return self.members[mask]

    def before_dp_step(self, optimizer, *, sample_rate: float) -> None:
        """Append the sampled canaries' per-example gradients to the physical batch that ends a
        logical step (each canary is Poisson-sampled once per logical step)."""
        queue = getattr(optimizer, "_step_skip_queue", [])
        if queue and queue[0]:
            return  # a virtual (accumulating) step: the logical batch continues
        rows = self._sampled(sample_rate)
        if len(rows) == 0:
            return
        weight = self._weight()
        bound = float(optimizer.max_grad_norm)
        for p in optimizer.params:
            gs = p.grad_sample
            if isinstance(gs, list):
                gs = torch.cat(gs, dim=0)
            extra = gs.new_zeros((len(rows), *gs.shape[1:]))
            if p is weight:
                extra[torch.arange(len(rows)), 0, rows] = -bound
            p.grad_sample = torch.cat([gs, extra], dim=0)
        self.inserted += len(rows)

    def before_plain_step(self, *, batch_size: int, n: int) -> None:
        """Non-private reference: each canary joins a batch of ``batch_size`` drawn from n rows
        with the same chance as a real row; its gradient is averaged like theirs."""
        rows = self._sampled(min(1.0, batch_size / n))
        if len(rows) == 0:
            return
        weight = self._weight()
        grad = torch.zeros_like(weight)
        grad[0, rows] = -1.0 / batch_size
        weight.grad = grad if weight.grad is None else weight.grad + grad
        self.inserted += len(rows)

    def scores(self) -> np.ndarray:
        return self._weight().detach().reshape(-1).double().numpy().copy()


def outlier_rows(schema: Schema, m: int, *, rng: np.random.Generator) -> pd.DataFrame:
    """m rows inside the public domain, far from typical patients: every numeric column at a
    random end of its bounds, every categorical column uniform over its categories."""
    data = {}
    for col in schema.columns:
        if col.is_numeric:
            data[col.name] = np.where(rng.random(m) < 0.5, float(col.low), float(col.high))
        else:
            cats = np.array(list(col.categories), dtype=object)
            data[col.name] = cats[rng.integers(len(cats), size=m)]
    return schema.prepare(pd.DataFrame(data), source="audit canaries")


def distance_scores(canaries: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema) -> np.ndarray:
    """Minus the L2 distance (schema encoding: numerics on public bounds, one-hot categories)
    from each canary to its nearest synthetic row: high = a synthetic row sits on the canary."""
    from dpsynth.data.transform import TableTransformer

    tf = TableTransformer(schema)
    a = torch.from_numpy(np.nan_to_num(tf.encode(canaries)).astype(np.float64))
    b = torch.from_numpy(np.nan_to_num(tf.encode(synthetic)).astype(np.float64))
    best = torch.full((len(a),), float("inf"), dtype=torch.float64)
    for start in range(0, len(b), 4096):
        best = torch.minimum(best, torch.cdist(a, b[start:start + 4096]).min(dim=1).values)
    return -best.numpy()
