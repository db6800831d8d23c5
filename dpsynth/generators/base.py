"""The Generator contract every dpsynth generator follows.

- ``__init__`` stores keyword-only hyper-parameters and nothing else.
- ``fit(data, *, budget, rng, ledger=None, progress=None)`` trains under DP; every access to
  ``data`` is charged to ``ledger`` (a new one is made from ``budget`` when not given). Learned
  state ends in ``_``.
- ``sample(n, *, conditions=None, rng)`` returns :class:`SyntheticData`.
- ``state_dict()`` returns tensors only (saved as safetensors); ``get_params()`` returns the
  hyper-parameters (saved as JSON); ``load_state_dict(state, *, schema)`` restores a fitted
  generator. A fitted generator holds no training row; its artifact holds none either.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Callable, ClassVar, Iterator, Mapping

import numpy as np
import torch

from dpsynth.data.schema import Schema
from dpsynth.data.table import SyntheticData, TableData
from dpsynth.errors import DpsynthError, PrivacyError
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger

ProgressFn = Callable[[dict], None]


class Generator(ABC):
    name: ClassVar[str] = "generator"
    modality: ClassVar[str] = "table"
    #: whether sample(conditions=...) is exact (True) or by bounded rejection sampling (False)
    exact_conditioning: ClassVar[bool] = False

    ledger_: Ledger | None = None
    schema_: Schema | None = None

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters as plain JSON values (what __init__ stored)."""
        return dict(vars(self)) if not hasattr(self, "_param_names") else {k: getattr(self, k) for k in self._param_names}

    @abstractmethod
    def fit(
        self,
        data: TableData,
        *,
        budget: Budget,
        rng: np.random.Generator,
        ledger: Ledger | None = None,
        progress: ProgressFn | None = None,
    ) -> "Generator": ...

    @abstractmethod
    def sample(
        self, n: int, *, conditions: Mapping[str, Any] | None = None, rng: np.random.Generator
    ) -> SyntheticData: ...

    @abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]: ...

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, torch.Tensor], *, schema: Schema) -> "Generator": ...

    # ---- helpers shared by generators ---------------------------------------------------
    def _check_fitted(self) -> None:
        if self.schema_ is None:
            raise DpsynthError(f"generator '{self.name}' is not fitted")

    @staticmethod
    def _make_ledger(budget: Budget, n: int, ledger: Ledger | None) -> Ledger:
        delta = budget.resolve_delta(n)
        if ledger is None:
            return Ledger(
                delta=delta,
                accountant=budget.accountant,
                target_epsilon=None if budget.non_private else budget.epsilon,
            )
        if ledger.delta != delta and budget.delta is not None:
            raise PrivacyError(f"ledger delta {ledger.delta:g} differs from budget delta {delta:g}")
        return ledger


@contextmanager
def seeded_torch(rng: np.random.Generator) -> Iterator[None]:
    """Scoped determinism for code that draws from torch's default RNG (module weight init,
    dropout): the global RNG state is forked, seeded from ``rng``, and restored on exit, so
    nothing outside the block is affected."""
    with torch.random.fork_rng(devices=[]):
        torch.random.manual_seed(int(rng.integers(0, 2**63 - 1)))
        yield


def torch_generator(rng: np.random.Generator) -> torch.Generator:
    """A torch.Generator seeded from a numpy Generator (randomness flows from one seed)."""
    gen = torch.Generator()
    gen.manual_seed(int(rng.integers(0, 2**63 - 1)))
    return gen
