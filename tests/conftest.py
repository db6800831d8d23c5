"""Shared fixtures: the embedded ACTG 175 table and its deterministic splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dpsynth.data.embedded import get_embedded
from dpsynth.data.splits import SplitSpec, split_table

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or a pytest skip when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data {path} is not available (../shared/data absent)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # small models on a 2-core CI machine run fastest single-threaded
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def actg():
    ds = get_embedded("actg175")
    schema = ds.schema()
    raw = ds.load()
    frame = schema.prepare(raw)
    return schema, raw, frame


@pytest.fixture(scope="session")
def actg_splits(actg):
    schema, _, frame = actg
    return schema, split_table(frame, SplitSpec(seed=0))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
