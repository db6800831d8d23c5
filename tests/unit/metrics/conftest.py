"""Shared ACTG 175 splits and reference 'synthetic' tables whose properties are known.

- real: the real test split, disjoint from train (a second real sample);
- copy: the training rows themselves (maximal memorisation);
- independent: every column resampled on its own from train (no joint structure, no copies);
- no_race1: the training rows without race == 1 (a dropped subgroup).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.data.embedded import get_embedded
from dpsynth.data.splits import SplitSpec, split_table

FAST_CONFIG = {
    "utility": {"grids": {"logistic_regression": {"C": [1.0]},
                          "gradient_boosting": {"learning_rate": [0.1], "max_leaf_nodes": [15]}}},
    "survival": {"penalizers": [0.1]},
    "fidelity": {"max_rows": 800},
    "privacy": {"n_shadow": 2, "max_per_side": 300},
}


def independent_marginals(train: pd.DataFrame, rng: np.random.Generator, n: int | None = None) -> pd.DataFrame:
    n = n or len(train)
    return pd.DataFrame({c: train[c].to_numpy()[rng.integers(0, len(train), n)] for c in train.columns})


def copy_rows(train: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return train.reset_index(drop=True).copy()


@pytest.fixture(scope="session")
def actg():
    ds = get_embedded("actg175")
    try:
        frame = ds.load()
    except Exception as exc:  # pragma: no cover - lifelines ships the file
        pytest.skip(f"ACTG 175 not loadable: {exc}")
    schema = ds.schema()
    return schema, split_table(schema.prepare(frame), SplitSpec(seed=0))


@pytest.fixture(scope="session")
def schema(actg):
    return actg[0]


@pytest.fixture(scope="session")
def splits(actg):
    return actg[1]


@pytest.fixture(scope="session")
def synthetics(splits):
    rng = np.random.default_rng(123)
    train = splits.train
    return {
        "real": splits.test,
        "copy": copy_rows(train, rng),
        "independent": independent_marginals(train, rng),
        "no_race1": train[train["race"].astype(int) != 1].reset_index(drop=True),
    }
