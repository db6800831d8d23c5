"""On real ACTG 175 data a DP generator must beat the trivial baseline, not just run."""

import numpy as np
import pytest

from dpsynth.data.table import TableData
from dpsynth.generators import REGISTRY
from dpsynth.metrics.utility import TSTRAbsoluteAUROC
from dpsynth.privacy.budget import Budget


def tstr(gen, splits, schema, seed=0):
    syn = gen.sample(len(splits.train), rng=np.random.default_rng(seed + 100)).frame
    return TSTRAbsoluteAUROC(target="cens").evaluate(splits.train, splits.holdout, syn, schema, test=splits.test,
                                                       rng=np.random.default_rng(seed)).value


@pytest.fixture(scope="module")
def baseline(actg_splits):
    schema, splits = actg_splits
    gen = REGISTRY["independent"]().fit(TableData(splits.train, schema), budget=Budget(epsilon=8.0),
                                        rng=np.random.default_rng(0))
    return tstr(gen, splits, schema)


def test_dp_gan_at_epsilon_8_beats_independent_marginals(actg_splits, baseline):
    schema, splits = actg_splits
    gen = REGISTRY["dp-gan"]().fit(TableData(splits.train, schema), budget=Budget(epsilon=8.0),
                                   rng=np.random.default_rng(0))
    assert gen.ledger_.epsilon() <= 8.0
    score = tstr(gen, splits, schema)
    # measured 0.75 (seed 0) at the defaults; independent marginals sit near chance (~0.4-0.55)
    assert score > 0.65, score
    assert score > baseline + 0.1, (score, baseline)
