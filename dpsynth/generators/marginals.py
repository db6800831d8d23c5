"""``independent``: a DP independent-marginals sampler, the trivial baseline every generator must beat.

One Gaussian release of every column's histogram (numeric columns binned on their PUBLIC
bounds) spends the whole budget; sampling draws each column independently. It keeps the
marginals and destroys every relation between columns, so downstream models trained on its
output should score near chance. It is also the fastest sampler in dpsynth.
Conditioning is exact (columns are independent: the conditioned column is set, others drawn).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from dpsynth.data.schema import Column, Schema, _key
from dpsynth.data.table import SyntheticData, TableData
from dpsynth.data.transform import restore_types
from dpsynth.errors import DpsynthError
from dpsynth.generators.base import Generator, ProgressFn
from dpsynth.generators.registry import register
from dpsynth.privacy.accountants import calibrate_noise
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.mechanisms import noisy_counts


def column_codes(frame: pd.DataFrame, col: Column, *, bins: int) -> tuple[np.ndarray, int]:
    """Integer codes of one column on its public domain: categories, or equal-width bins on
    [low, high]; a nullable column's missing values take the last code."""
    values = frame[col.name]
    missing = values.isna().to_numpy()
    if col.is_numeric:
        x = values.to_numpy(dtype=float)
        codes = np.floor((x - col.low) / (col.high - col.low) * bins)
        codes = np.clip(np.nan_to_num(codes, nan=0), 0, bins - 1).astype(np.int64)
        size = bins
    else:
        lookup = {_key(c): i for i, c in enumerate(col.categories)}
        codes = np.array([0 if m else lookup[_key(v)] for v, m in zip(values, missing)], dtype=np.int64)
        size = len(col.categories)
    if col.nullable:
        codes[missing] = size
        size += 1
    return codes, size


def decode_codes(codes: np.ndarray, col: Column, *, bins: int, rng: np.random.Generator) -> np.ndarray:
    """Codes back to values: a uniform draw inside the bin for numerics, the category otherwise."""
    missing = codes == (bins if col.is_numeric else len(col.categories)) if col.nullable else np.zeros(len(codes), bool)
    if col.is_numeric:
        width = (col.high - col.low) / bins
        values = col.low + (np.minimum(codes, bins - 1) + rng.random(len(codes))) * width
        if col.kind == "integer":
            values = np.clip(np.rint(values), np.ceil(col.low), np.floor(col.high))
        values = values.astype(float)
        values[missing] = np.nan
        return values
    cats = np.array(list(col.categories) + [None], dtype=object)
    return cats[np.where(missing, len(col.categories), codes)]


@register("independent")
class IndependentMarginals(Generator):
    exact_conditioning = True

    def __init__(self, *, bins: int = 32) -> None:
        self.bins = bins

    def get_params(self) -> dict[str, Any]:
        return {"bins": self.bins}

    def fit(self, data: TableData, *, budget: Budget, rng: np.random.Generator, ledger: Ledger | None = None,
            progress: ProgressFn | None = None) -> "IndependentMarginals":
        schema, frame = data.schema, data.frame
        ledger = self._make_ledger(budget, len(frame), ledger)
        coded = [column_codes(frame, col, bins=self.bins) for col in schema.columns]
        if budget.non_private:
            ledger.record_non_private(purpose="exact marginals (non-private reference)")
            counts = [np.bincount(c, minlength=s).astype(float) for c, s in coded]
        else:
            sigma = calibrate_noise(
                base=ledger.gaussian_history(), base_rho=ledger.rho(), sample_rate=1.0, steps=1,
                target_epsilon=ledger.target_epsilon, delta=ledger.accountant_delta(), accountant=ledger.accountant,
            )
            counts = noisy_counts(
                [c for c, _ in coded], [s for _, s in coded], ledger=ledger, noise_multiplier=sigma, rng=rng,
                purpose="all one-way marginals", secure=budget.secure_mode,
            )
        self.probs_ = [_normalise(c) for c in counts]
        self.schema_, self.ledger_ = schema, ledger
        return self

    def sample(self, n: int, *, conditions: Mapping[str, Any] | None = None, rng: np.random.Generator) -> SyntheticData:
        self._check_fitted()
        if n <= 0:
            raise DpsynthError(f"number of rows must be > 0, got {n}")
        conditions = dict(conditions or {})
        data = {}
        for col, probs in zip(self.schema_.columns, self.probs_):
            if col.name in conditions:
                data[col.name] = _fixed_value(col, conditions.pop(col.name), n)
                continue
            codes = rng.choice(len(probs), size=n, p=probs)
            data[col.name] = decode_codes(codes, col, bins=self.bins, rng=rng)
        if conditions:
            raise DpsynthError(f"cannot condition on unknown column(s) {sorted(conditions)}")
        frame = restore_types(pd.DataFrame(data), self.schema_)
        return SyntheticData(frame=frame, schema=self.schema_, generator=self.name)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"probs.{i}": torch.tensor(p, dtype=torch.float64) for i, p in enumerate(self.probs_)}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], *, schema: Schema) -> "IndependentMarginals":
        self.probs_ = [state[f"probs.{i}"].numpy().astype(float) for i in range(len(schema.columns))]
        self.schema_ = schema
        return self


def _normalise(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return np.full(len(counts), 1.0 / len(counts)) if total <= 0 else counts / total


def _fixed_value(col: Column, value, n: int) -> np.ndarray:
    if col.is_numeric:
        v = float(value)
        if not col.low <= v <= col.high:
            raise DpsynthError(f"condition {col.name}={value} is outside the declared domain [{col.low}, {col.high}]")
        return np.full(n, v)
    lookup = {_key(c): c for c in col.categories}
    if _key(value) not in lookup:
        raise DpsynthError(f"condition {col.name}={value!r} is not a declared category {list(col.categories)}")
    return np.array([lookup[_key(value)]] * n, dtype=object)
