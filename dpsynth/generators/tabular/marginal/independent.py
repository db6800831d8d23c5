"""``independent``: a DP independent-marginals sampler, the trivial baseline every generator must beat.

One Gaussian release of every column's histogram (numeric columns binned on their PUBLIC
bounds by the same :class:`~dpsynth.generators.tabular.marginal.discretize.Discretizer` as aim and mst)
spends the whole budget; sampling draws each column independently. It keeps the
marginals and destroys every relation between columns, so downstream models trained on its
output should score near chance. It is also the fastest sampler in dpsynth.
Conditioning is exact (columns are independent: the conditioned column is set, others drawn).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from dpsynth.data.schema import Schema
from dpsynth.data.table import SyntheticData, TableData
from dpsynth.data.transform import restore_types
from dpsynth.errors import DpsynthError
from dpsynth.generators.base import Generator, ProgressFn
from dpsynth.generators.tabular.marginal.discretize import Discretizer
from dpsynth.generators.registry import register
from dpsynth.privacy.accountants import calibrate_noise
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.mechanisms import noisy_histograms
from dpsynth.scale.counting import exact_counts


@register("independent")
class IndependentMarginals(Generator):
    exact_conditioning = True

    def __init__(self, *, bins: int = 32) -> None:
        self.bins = bins

    def get_params(self) -> dict[str, Any]:
        return {"bins": self.bins}

    def fit(self, data: TableData, *, budget: Budget, rng: np.random.Generator, ledger: Ledger | None = None,
            progress: ProgressFn | None = None) -> "IndependentMarginals":
        schema = data.schema
        disc = Discretizer(schema, bins=self.bins)
        with exact_counts(data, disc) as (codes, counter):  # data: a TableData or a TableSource
            ledger = self._make_ledger(budget, counter.n_rows if counter is not None else len(codes), ledger)
            if counter is not None:  # a counting engine: exact one-way counts, noised below as in memory
                exact = counter.counts([(j,) for j in range(len(disc.sizes))])
            else:
                exact = [np.bincount(codes[:, j], minlength=s).astype(float) for j, s in enumerate(disc.sizes)]
        if budget.non_private:
            ledger.record_non_private(purpose="exact marginals (non-private reference)")
            counts = exact
        else:
            sigma = calibrate_noise(
                base=ledger.gaussian_history(), base_rho=ledger.rho(), sample_rate=1.0, steps=1,
                target_epsilon=ledger.target_epsilon, delta=ledger.accountant_delta(), accountant=ledger.accountant,
            )
            counts = noisy_histograms(
                exact, ledger=ledger, noise_multiplier=sigma, rng=rng, purpose="all one-way marginals",
                secure=budget.secure_mode, contribution=getattr(data, "max_rows_per_unit", 1),
            )
        self.probs_ = [_normalise(c) for c in counts]
        self.schema_, self.ledger_ = schema, ledger
        return self

    def sample(self, n: int, *, conditions: Mapping[str, Any] | None = None, rng: np.random.Generator) -> SyntheticData:
        self._check_fitted()
        if not isinstance(n, (int, np.integer)) or n <= 0:
            raise DpsynthError(f"number of rows must be a positive integer, got {n!r}")
        disc = Discretizer(self.schema_, bins=self.bins)
        fixed_codes, fixed_values = disc.evidence(conditions)
        codes = np.empty((int(n), len(disc.sizes)), dtype=np.int64, order="F")
        for j, probs in enumerate(self.probs_):
            if j in fixed_codes:
                codes[:, j] = fixed_codes[j]
            else:  # inverse-CDF draw: one uniform per row
                cdf = np.cumsum(probs)
                codes[:, j] = np.minimum(np.searchsorted(cdf, rng.random(int(n)) * cdf[-1], side="right"), len(probs) - 1)
        frame = disc.decode(codes, rng)
        for name, value in fixed_values.items():
            frame[name] = value
        frame = restore_types(frame, self.schema_)
        return SyntheticData(frame=frame, schema=self.schema_, generator=self.name,
                             info={"conditions": dict(conditions or {})})

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"probs.{i}": torch.tensor(p, dtype=torch.float64) for i, p in enumerate(self.probs_)}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], *, schema: Schema) -> "IndependentMarginals":
        sizes = Discretizer(schema, bins=self.bins).sizes
        try:
            self.probs_ = [state[f"probs.{i}"].numpy().astype(float) for i in range(len(schema.columns))]
        except KeyError as exc:
            raise DpsynthError(f"generator 'independent': state dict lacks tensor {exc.args[0]!r}") from None
        if [len(p) for p in self.probs_] != list(sizes):
            raise DpsynthError(f"generator 'independent': saved marginal sizes do not match schema '{schema.name}'"
                               f" with bins={self.bins} ({sizes})")
        self.schema_ = schema
        return self


def _normalise(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return np.full(len(counts), 1.0 / len(counts)) if total <= 0 else counts / total
