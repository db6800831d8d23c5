"""Peer runner for dpsynth's own generators (runs in the project virtualenv).

Methods: dpsynth generator names (dp-gan, dp-diffusion, aim, mst, independent), and
``aim-paper``: aim with the paper's uniform workload (every 2-way marginal, weight 1; 16 bins),
i.e. without the target-aware defaults that were chosen on ACTG 175 (configs/aim_paper.yaml).
"""
from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_io import Timer, parse_args, read_inputs, write_outputs  # noqa: E402

VARIANTS = {"aim-paper": ("aim", {"bins": 16, "target_weight": 1.0, "target_degree": None})}
QUICK = {"epochs": 2, "pgm_iters": 20, "final_pgm_iters": 50, "max_iterations": 3, "sampling_steps": 5}


def main() -> None:
    args = parse_args()
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from datasets import from_peer_frame, schema_for, to_peer_frame

    from dpsynth.data.table import TableData
    from dpsynth.generators import REGISTRY
    from dpsynth.privacy.budget import Budget

    peer, spec = read_inputs(args)
    schema = schema_for(spec["schema"])
    train, _ = from_peer_frame(peer, schema)
    name, params = VARIANTS.get(args.method, (args.method, {}))
    cls = REGISTRY[name]
    params = dict(params)
    if args.quick:
        sig = inspect.signature(cls.__init__).parameters
        params.update({k: v for k, v in QUICK.items() if k in sig})
    with Timer() as fit:
        gen = cls(**params).fit(TableData(train, schema), budget=Budget(epsilon=args.epsilon),
                                rng=np.random.default_rng(args.seed))
    with Timer() as smp:
        syn = gen.sample(args.n, rng=np.random.default_rng(args.seed + 1000)).frame
    notes = json.dumps({"ledger_epsilon": float(gen.ledger_.epsilon()), "params": params})
    write_outputs(args, to_peer_frame(syn, schema), fit.s, smp.s, notes)


if __name__ == "__main__":
    main()
