"""Shared ACTG 175 splits and the reference 'synthetic' tables of metrics_testdata.py."""

from __future__ import annotations

import numpy as np
import pytest
from metrics_testdata import copy_rows, independent_marginals

from dpsynth.data.embedded import get_embedded
from dpsynth.data.splits import SplitSpec, split_table


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
