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
    # TSTR excludes the duration column 'days' (it is the outcome's time). Measured at the defaults:
    # dp-gan 0.58 (seed 0) / 0.59 (seed 1) vs TRTR 0.80; independent marginals near chance.
    print(f"dp-gan TSTR AUROC {score:.3f}, independent {baseline:.3f}")
    assert score > 0.55, score
    assert score > baseline + 0.04, (score, baseline)
