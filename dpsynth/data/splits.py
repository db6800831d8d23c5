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
    train_units: np.ndarray | None = None  # privacy-unit code per train row (None: one row per person)
    holdout_units: np.ndarray | None = None  # the same for the holdout and test rows (per-patient attacks)
    test_units: np.ndarray | None = None

    def to_dict(self) -> dict:
        """Row positions of each split in the prepared table: recorded in the run, not the data."""
        return {
            **self.spec.to_dict(),
            "n_train": len(self.train),
            "n_holdout": len(self.holdout),
            "n_test": len(self.test),
        }


def split_table(frame: pd.DataFrame, spec: SplitSpec, *, units: np.ndarray | None = None) -> Splits:
    """Shuffle row positions with ``numpy.random.default_rng(spec.seed)`` and cut three ways.

    ``units`` (a privacy-unit code per row): the units are shuffled and cut instead, so all of
    a patient's rows fall in one split (fractions are then of units)."""
    if not (0 <= spec.holdout < 1 and 0 <= spec.test < 1 and spec.holdout + spec.test < 1):
        raise DataError(f"split fractions holdout={spec.holdout}, test={spec.test} must be in [0, 1) and sum below 1")
    if units is not None:
        train_idx, hold_idx, test_idx = split_by_unit(units, seed=spec.seed, holdout=spec.holdout, test=spec.test)
        if len(train_idx) < 2:
            raise DataError(f"only {len(train_idx)} training row(s) after splitting {len(frame)} rows by unit")
        take_rows = lambda idx: frame.iloc[idx].reset_index(drop=True)  # noqa: E731
        return Splits(train=take_rows(train_idx), holdout=take_rows(hold_idx), test=take_rows(test_idx), spec=spec,
                      train_units=np.asarray(units)[train_idx], holdout_units=np.asarray(units)[hold_idx],
                      test_units=np.asarray(units)[test_idx])
    n = len(frame)
    order = np.random.default_rng(spec.seed).permutation(n)
    n_test = int(round(spec.test * n))
    n_hold = int(round(spec.holdout * n))
    test_idx, hold_idx, train_idx = order[:n_test], order[n_test : n_test + n_hold], order[n_test + n_hold :]
    if len(train_idx) < 2:
        raise DataError(f"only {len(train_idx)} training row(s) after splitting {n} rows")
    take = lambda idx: frame.iloc[np.sort(idx)].reset_index(drop=True)  # noqa: E731
    return Splits(train=take(train_idx), holdout=take(hold_idx), test=take(test_idx), spec=spec)


def split_by_unit(codes: np.ndarray, *, seed: int, holdout: float, test: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row positions (train, holdout, test) with every unit's rows in one split: the units are
    shuffled with ``default_rng(seed)`` and cut by the fractions (of units)."""
    codes = np.asarray(codes, dtype=np.int64)
    n_units = int(codes.max()) + 1 if len(codes) else 0
    order = np.random.default_rng(seed).permutation(n_units)
    n_test, n_hold = int(round(test * n_units)), int(round(holdout * n_units))
    part = np.empty(n_units, dtype=np.int64)
    part[order[:n_test]], part[order[n_test:n_test + n_hold]], part[order[n_test + n_hold:]] = 2, 1, 0
    row_part = part[codes]
    return tuple(np.flatnonzero(row_part == p) for p in (0, 1, 2))  # type: ignore[return-value]
