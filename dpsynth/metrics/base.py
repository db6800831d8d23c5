"""The Metric protocol: one small class per metric, each declaring its goal and range.

``evaluate(train, holdout, synthetic, schema, *, test=None, rng=None) -> MetricResult``.
Every metric receives train and holdout (membership attacks need both) and sees DataFrames
and arrays only; no metric imports a generator's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from dpsynth.data.schema import Schema

GOALS = ("maximize", "minimize", "target")


@dataclass(frozen=True)
class MetricResult:
    name: str
    value: float
    goal: str
    range: tuple[float, float]
    breakdown: dict[str, Any] = field(default_factory=dict)
    target: float | None = None  # the ideal value when goal == "target" (e.g. 0.5 for detection AUROC)

    def to_dict(self) -> dict:
        out = {"name": self.name, "value": _plain(self.value), "goal": self.goal, "range": _plain(list(self.range)),
               "breakdown": _plain(self.breakdown)}
        if self.target is not None:
            out["target"] = self.target
        return out


def _plain(obj):
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and (np.isnan(obj) or np.isinf(obj)):
        return None if np.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


@runtime_checkable
class Metric(Protocol):
    name: ClassVar[str]
    goal: ClassVar[str]
    range: ClassVar[tuple[float, float]]

    def evaluate(
        self,
        train: pd.DataFrame,
        holdout: pd.DataFrame,
        synthetic: pd.DataFrame,
        schema: Schema,
        *,
        test: pd.DataFrame | None = None,
        rng: np.random.Generator | None = None,
    ) -> MetricResult: ...
