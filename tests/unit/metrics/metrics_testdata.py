"""Reference 'synthetic' tables whose properties are known.

- real: the real test split, disjoint from train (a second real sample);
- copy: the training rows themselves (maximal memorisation);
- independent: every column resampled on its own from train (no joint structure, no copies);
- no_race1: the training rows without race == 1 (a dropped subgroup).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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
