"""Shared fixtures: the embedded ACTG 175 table and its deterministic splits; the independent
accountant the epsilon tests compare the ledger with."""

from __future__ import annotations

import math
from pathlib import Path

import dp_accounting
import numpy as np
import pytest
import torch

from dpsynth.data.embedded import get_embedded
from dpsynth.data.splits import SplitSpec, split_table
from dpsynth.privacy.accountants import RDP_ORDERS

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or a pytest skip when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data {path} is not available (../shared/data absent)")
    return path


def dp_accounting_epsilon(history, delta, rho=0.0):
    """Google's dp_accounting RDP accountant, an implementation independent of opacus and of the
    ledger, over (sigma, sample rate, steps) triples and an optional rho-zCDP term."""
    acc = dp_accounting.rdp.RdpAccountant(orders=list(RDP_ORDERS))
    for sigma, q, steps in history:
        event = dp_accounting.GaussianDpEvent(sigma)
        if q < 1.0:
            event = dp_accounting.PoissonSampledDpEvent(q, event)
        acc.compose(event, steps)
    if rho:
        # rho-zCDP is RDP rho * alpha: a Gaussian with sigma = 1 / sqrt(2 rho) has exactly that curve
        acc.compose(dp_accounting.GaussianDpEvent(1.0 / math.sqrt(2 * rho)), 1)
    return acc.get_epsilon(delta)


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
