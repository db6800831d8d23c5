"""Containers passed between the layers: real training data with its schema, and synthetic output."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from dpsynth.data.schema import Schema


@dataclass(frozen=True)
class TableData:
    """A prepared real table (declared columns only, validated against the schema)."""

    frame: pd.DataFrame
    schema: Schema

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
