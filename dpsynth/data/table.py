"""Containers passed between the layers: real training data with its schema, and synthetic output."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dpsynth.data.schema import Schema


@dataclass(frozen=True)
class TableData:
    """A prepared real table (declared columns only, validated against the schema).

    ``units``: with a privacy-unit column, each row's unit code (0..U-1, after contribution
    bounding, see :mod:`dpsynth.privacy.contribution`); None when one row is one person.
    ``max_rows_per_unit``: the public bound k; marginal sensitivity scales by it and DP-SGD
    samples and clips whole units."""

    frame: pd.DataFrame
    schema: Schema
    units: np.ndarray | None = None
    max_rows_per_unit: int = 1

    def __len__(self) -> int:
        return len(self.frame)


@dataclass(frozen=True)
class SyntheticData:
    """Rows sampled from a fitted generator, in the schema's original column types."""

    frame: pd.DataFrame
    schema: Schema
    generator: str
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)
