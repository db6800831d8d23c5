"""Fairness options that replace opacus' optimizer or Poisson loader are refused, in one line and
before any privacy is spent, in a data-parallel run (torchrun sets WORLD_SIZE / RANK)."""

from __future__ import annotations

import numpy as np
import pytest

from dpsynth.data.table import TableData
from dpsynth.errors import ConfigError
from dpsynth.generators.tabular.gan.dp_gan import DPGAN
from dpsynth.privacy import distributed as dist
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger


@pytest.mark.parametrize("params, named", [({"balanced_sampling": True}, "balanced_sampling"),
                                           ({"clipping": "group"}, "clipping='group'")])
def test_dp_gan_fairness_options_refused_under_torchrun(actg, monkeypatch, params, named):
    schema, _, frame = actg
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    ledger = Ledger(delta=1e-5, target_epsilon=1.0)
    gen = DPGAN(epochs=1.0, batch_size=64, group_columns=["race"], **params)
    with pytest.raises(ConfigError) as info:
        gen.fit(TableData(frame.head(300), schema), budget=Budget(epsilon=1.0, delta=1e-5), ledger=ledger,
                rng=np.random.default_rng(0))
    message = str(info.value)
    assert "\n" not in message and named in message and "data-parallel" in message
    assert ledger.entries == []  # refused before any release


def test_guard_is_silent_on_one_process_and_without_the_options(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    dist.refuse_data_parallel(generator="dp-gan", features=["balanced_sampling"])  # one process: allowed
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    dist.refuse_data_parallel(generator="dp-gan", features=[])  # flat clipping, plain Poisson: DPDDP handles it
    with pytest.raises(ConfigError):
        dist.refuse_data_parallel(generator="dp-gan", features=["balanced_sampling"])
