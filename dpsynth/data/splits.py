"""Deterministic train / holdout / test splits by seed.

The holdout is never trained on: membership-inference attacks compare train members with
holdout non-members. The test split is used only to score downstream models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dpsynth.errors import DataError


@dataclass(frozen=True)
class SplitSpec:
    seed: int = 0
    holdout: float = 0.2
    test: float = 0.2

    def to_dict(self) -> dict:
        return {"seed": self.seed, "holdout": self.holdout, "test": self.test}


@dataclass(frozen=True)
class Splits:
    train: pd.DataFrame
    holdout: pd.DataFrame
    test: pd.DataFrame
    spec: SplitSpec

    def to_dict(self) -> dict:
        """Row positions of each split in the prepared table: recorded in the run, not the data."""
        return {
            **self.spec.to_dict(),
            "n_train": len(self.train),
            "n_holdout": len(self.holdout),
            "n_test": len(self.test),
        }


def split_table(frame: pd.DataFrame, spec: SplitSpec) -> Splits:
    """Shuffle row positions with ``numpy.random.default_rng(spec.seed)`` and cut three ways."""
    if not (0 <= spec.holdout < 1 and 0 <= spec.test < 1 and spec.holdout + spec.test < 1):
        raise DataError(f"split fractions holdout={spec.holdout}, test={spec.test} must be in [0, 1) and sum below 1")
    n = len(frame)
    order = np.random.default_rng(spec.seed).permutation(n)
    n_test = int(round(spec.test * n))
    n_hold = int(round(spec.holdout * n))
    test_idx, hold_idx, train_idx = order[:n_test], order[n_test : n_test + n_hold], order[n_test + n_hold :]
    if len(train_idx) < 2:
        raise DataError(f"only {len(train_idx)} training row(s) after splitting {n} rows")
    take = lambda idx: frame.iloc[np.sort(idx)].reset_index(drop=True)  # noqa: E731
    return Splits(train=take(train_idx), holdout=take(hold_idx), test=take(test_idx), spec=spec)
