"""Data-parallel DP-SGD (opacus DPDDP) on 2 gloo processes: same epsilon as one process,
identical replicas, Poisson sampling of the global batch, noise added on one rank only."""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from dpsynth.privacy.distributed import DistributedPoissonSampler, is_distributed, rank_and_world
from dpsynth.privacy.schedule import plan_schedule

PARAMS = {"steps": 6, "generator_hidden": [16], "discriminator_hidden": [16], "noise_dim": 8}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, mode: str) -> None:
    from dpsynth.data.embedded import get_embedded
    from dpsynth.data.table import TableData
    from dpsynth.generators import REGISTRY
    from dpsynth.privacy.budget import Budget

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        ds = get_embedded("actg175")
        schema = ds.schema()
        frame = schema.prepare(ds.load()).iloc[:600]
        gen = REGISTRY["dp-gan"](**PARAMS, grad_sample_mode=mode).fit(
            TableData(frame, schema), budget=Budget(epsilon=2.0), rng=np.random.default_rng(0))
        state = gen.state_dict()
        digest = {k: float(v.double().sum()) for k, v in state.items()}
        entry = [e for e in gen.ledger_.entries if e.mechanism == "dp-sgd"][0]
        Path(out, f"rank{rank}.json").write_text(json.dumps({
            "epsilon": gen.ledger_.epsilon(), "steps": entry.steps, "sample_rate": entry.sample_rate,
            "noise_multiplier": entry.noise_multiplier, "digest": digest, "plan": gen.dp_plan_,
            "weights": {k: v.double().flatten()[:50].tolist() for k, v in state.items() if k.endswith("weight")}}))
    finally:
        torch.distributed.destroy_process_group()


def _single(mode: str) -> dict:
    from dpsynth.data.embedded import get_embedded
    from dpsynth.data.table import TableData
    from dpsynth.generators import REGISTRY
    from dpsynth.privacy.budget import Budget

    ds = get_embedded("actg175")
    schema = ds.schema()
    frame = schema.prepare(ds.load()).iloc[:600]
    gen = REGISTRY["dp-gan"](**PARAMS, grad_sample_mode=mode).fit(
        TableData(frame, schema), budget=Budget(epsilon=2.0), rng=np.random.default_rng(0))
    entry = [e for e in gen.ledger_.entries if e.mechanism == "dp-sgd"][0]
    return {"epsilon": gen.ledger_.epsilon(), "steps": entry.steps, "sample_rate": entry.sample_rate,
            "noise_multiplier": entry.noise_multiplier, "delta": gen.ledger_.delta}


@pytest.mark.parametrize("mode", ["bk"])
def test_two_gloo_processes_same_epsilon_and_identical_replicas(tmp_path, mode):
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path), mode), nprocs=2, join=True, start_method="fork")
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["digest"] == r1["digest"]  # identical replicas, bit for bit
    assert r0["weights"] == r1["weights"]
    one = _single(mode)
    assert r0["steps"] == r1["steps"] == one["steps"] == PARAMS["steps"]
    assert r0["sample_rate"] == one["sample_rate"] and r0["noise_multiplier"] == one["noise_multiplier"]
    assert r0["epsilon"] == pytest.approx(one["epsilon"], rel=1e-12)
    assert r0["epsilon"] == r1["epsilon"] <= 2.0
    # the logical batch is the one the budget rule plans for 600 rows (global over both ranks)
    planned = plan_schedule(n=600, epsilon=2.0, delta=one["delta"], steps=PARAMS["steps"], batch_size=None)
    assert r0["plan"]["schedule"]["batch_size"] == planned.batch_size
    assert r0["sample_rate"] == pytest.approx(1 / math.ceil(600 / planned.batch_size))
    assert r0["plan"]["grad_sample_mode"] == mode


def test_sampler_shards_partition_rows_and_sample_each_at_rate_q():
    n, q, steps, world = 1000, 0.05, 400, 3
    counts = np.zeros(n)
    shards = []
    for rank in range(world):
        s = DistributedPoissonSampler(num_rows=n, sample_rate=q, steps=steps, generator=torch.Generator().manual_seed(rank),
                                      shard_seed=11, rank=rank, world_size=world)
        shards.append(set(s.indices.tolist()))
        batches = list(s)
        assert len(batches) == steps == len(s)  # empty batches are yielded too: every rank takes every step
        for b in batches:
            counts[b] += 1
    assert set().union(*shards) == set(range(n)) and sum(len(x) for x in shards) == n
    rate = counts / steps
    assert abs(rate.mean() - q) < 0.003  # each row in the global batch with probability q
    assert not is_distributed() and rank_and_world() == (0, 1)
