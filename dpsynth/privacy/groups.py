"""Subgroups for fairness-aware DP training: group ids, DP group counts, and what is derived
from them by post-processing (per-group clip bounds, per-group Poisson rates).

A group is one cell of the cross product of categorical ``columns`` (e.g. race x gender; a
nullable column adds a 'missing' category). The group id is part of each training example.
The only data-dependent statistic is one Gaussian histogram of the cells (sensitivity 1),
charged to the ledger by :func:`dpsynth.privacy.mechanisms.noisy_counts`.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pandas as pd
import torch
from opacus.utils.uniform_sampler import UniformWithReplacementSampler

from dpsynth.data.schema import Schema, _key
from dpsynth.errors import ConfigError
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.mechanisms import noisy_counts


def group_columns_for(schema: Schema, columns) -> tuple[str, ...]:
    """The grouping columns: ``columns`` if given, else the schema's categorical sensitive columns."""
    names = tuple(columns) if columns else tuple(c for c in schema.sensitive if not schema[c].is_numeric)
    if not names:
        raise ConfigError(f"group-aware training needs group_columns (schema '{schema.name}' has no categorical "
                          "sensitive column)")
    for name in names:
        if name not in schema:
            raise ConfigError(f"group column '{name}' is not a column of schema '{schema.name}'")
        if schema[name].is_numeric:
            raise ConfigError(f"group column '{name}' is numeric; group-aware training needs categorical columns")
    return names


def group_values(schema: Schema, columns: tuple[str, ...]) -> list[tuple]:
    """The column values of every group id, in id order."""
    return list(product(*[_categories(schema, c) for c in columns]))


def group_labels(schema: Schema, columns: tuple[str, ...]) -> list[str]:
    """One label per group id, e.g. 'race=1 & gender=0'."""
    return [" & ".join(f"{c}={v}" for c, v in zip(columns, combo)) for combo in group_values(schema, columns)]


def _categories(schema: Schema, name: str) -> list:
    col = schema[name]
    return list(col.categories) + (["missing"] if col.nullable else [])


def group_codes(frame: pd.DataFrame, schema: Schema, columns: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """Group id of every row (mixed radix over the columns' public categories) and the number of groups."""
    codes = np.zeros(len(frame), dtype=np.int64)
    size = 1
    for name in columns:
        col = schema[name]
        lookup = {_key(c): i for i, c in enumerate(col.categories)}
        width = len(col.categories) + (1 if col.nullable else 0)
        values = frame[name]
        part = np.array([width - 1 if (v is None or (isinstance(v, float) and np.isnan(v))) else lookup[_key(v)]
                         for v in values], dtype=np.int64)
        codes = codes * width + part
        size *= width
    return codes, size


def dp_group_counts(codes: np.ndarray, size: int, *, ledger: Ledger, noise_multiplier: float,
                    rng: np.random.Generator, secure: bool = False) -> np.ndarray:
    """Gaussian-noised group sizes (one histogram, sensitivity 1), clipped at 0."""
    return noisy_counts([codes], [size], ledger=ledger, noise_multiplier=noise_multiplier, rng=rng,
                        purpose="group sizes for fairness-aware training", secure=secure)[0]


def _effective_sizes(counts: np.ndarray, min_share: float) -> np.ndarray:
    """DP group sizes, with sizes below ``min_share`` of the total raised to that share (an
    (almost) empty cell must not dictate the bounds or rates of every other group)."""
    n = np.maximum(np.asarray(counts, dtype=float), 0.0)
    return np.maximum(n, max(1.0, min_share * n.sum()))


def group_clip_bounds(counts: np.ndarray, *, base: float, power: float = 0.5, max_ratio: float = 4.0,
                      min_share: float = 0.02) -> np.ndarray:
    """C_g = base * min(max_ratio, (n_max / n_g)^power): the largest group keeps ``base``,
    smaller groups get a larger bound (less clipping bias against them)."""
    n = _effective_sizes(counts, min_share)
    return base * np.minimum(max_ratio, (n.max() / n) ** power)


def group_sample_rates(counts: np.ndarray, *, max_rate: float, power: float = 0.5,
                       min_share: float = 0.02) -> np.ndarray:
    """Poisson rate per group, q_g = max_rate * (n_min / n_g)^power: smaller groups are sampled
    more often, and no rate exceeds ``max_rate`` (the rate the ledger charges). Group sizes
    below ``min_share`` of the total count as that share, so an (almost) empty cell does not
    starve every other group."""
    n = _effective_sizes(counts, min_share)
    return max_rate * (n.min() / n) ** power


def balanced_category_probs(counts: np.ndarray, rates: np.ndarray, schema: Schema, columns: tuple[str, ...],
                            column: str) -> np.ndarray:
    """Category shares of ``column`` among Poisson-sampled rows under per-group ``rates`` (from
    the DP group counts): what the conditional vector of fake rows should match."""
    sizes = [len(_categories(schema, c)) for c in columns]
    weight = (np.maximum(counts, 0.0) * rates).reshape(sizes)
    axis = columns.index(column)
    share = weight.sum(axis=tuple(i for i in range(len(columns)) if i != axis))
    return share / share.sum() if share.sum() > 0 else np.full(len(share), 1.0 / len(share))


class GroupPoissonSampler(UniformWithReplacementSampler):
    """Poisson sampling with a rate per example (its group's rate). ``sample_rate`` is the
    largest rate: the rate that is accounted (conservative; amplification by subsampling is
    monotone in the rate)."""

    def __init__(self, *, groups: torch.Tensor, rates: np.ndarray, generator=None, steps: int | None = None) -> None:
        rates = torch.as_tensor(np.asarray(rates, dtype=float))
        super().__init__(num_samples=len(groups), sample_rate=float(rates.max()), generator=generator, steps=steps)
        self.row_rates = rates[groups.to(torch.long)]

    def __iter__(self):
        for _ in range(self.steps):
            mask = torch.rand(self.num_samples, generator=self.generator) < self.row_rates
            yield mask.nonzero(as_tuple=False).reshape(-1).tolist()
