"""Benchmark: DP-SGD planned from the budget vs planned in epochs, on ACTG 175 (target cens).

For dp-gan and dp-diffusion at each epsilon and seed, fits the legacy plan (``epochs`` 100 with the
old batch sizes and hooks, i.e. the previous defaults) and the new schedule (default: 1000 steps,
batch from n / epsilon / delta, ghost clipping), and prints TSTR AUROC on the **holdout** split
(the validation set used to choose the schedule's defaults) and on the **test** split (reported
only), with fit time, steps and batch size.

    python evaluation/bench_schedule.py --epsilons 1 4 --seeds 0 1
    python evaluation/bench_schedule.py --variants 'floor6={"noise_floor": 6}'   # extra candidates
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dpsynth.data.embedded import get_embedded
from dpsynth.data.splits import SplitSpec, split_table
from dpsynth.data.table import TableData
from dpsynth.generators import REGISTRY
from dpsynth.metrics.utility import TSTRAbsoluteAUROC
from dpsynth.privacy.budget import Budget

RESULTS = Path(__file__).resolve().parent / "results"
LEGACY = {
    "dp-gan": {"epochs": 100.0, "batch_size": 128, "grad_sample_mode": "hooks"},
    "dp-diffusion": {"epochs": 100.0, "batch_size": 256, "grad_sample_mode": "hooks"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generators", nargs="+", default=["dp-gan", "dp-diffusion"])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 4.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--variants", nargs="*", default=[], help="extra NAME=JSON parameter sets")
    parser.add_argument("--no-legacy", action="store_true")
    parser.add_argument("--no-default", action="store_true", help="skip the default budget schedule")
    parser.add_argument("--out", default=str(RESULTS / "bench_schedule_actg175.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    ds = get_embedded("actg175")
    schema = ds.schema()
    splits = split_table(schema.prepare(ds.load()), SplitSpec(seed=0))
    metric = TSTRAbsoluteAUROC(target="cens")
    print(f"ACTG 175: train {len(splits.train)}, holdout {len(splits.holdout)} (validation), test {len(splits.test)}")
    variants = {} if args.no_legacy else {"legacy-epochs": None}
    if not args.no_default:
        variants["budget-schedule"] = {}
    for item in args.variants:
        name, raw = item.split("=", 1)
        variants[name] = json.loads(raw)

    rows = []
    out = Path(args.out)
    for name in args.generators:
        for eps in args.epsilons:
            for seed in args.seeds:
                for variant, params in variants.items():
                    params = dict(LEGACY[name]) if params is None else params
                    start = time.perf_counter()
                    gen = REGISTRY[name](**params).fit(TableData(splits.train, schema), budget=Budget(epsilon=eps),
                                                       rng=np.random.default_rng(seed))
                    fit_s = time.perf_counter() - start
                    syn = gen.sample(len(splits.train), rng=np.random.default_rng(seed + 1000)).frame
                    val = metric.evaluate(splits.train, splits.holdout, syn, schema, test=splits.holdout,
                                          rng=np.random.default_rng(0)).value
                    test = metric.evaluate(splits.train, splits.holdout, syn, schema, test=splits.test,
                                           rng=np.random.default_rng(0)).value
                    plan = gen.dp_plan_
                    row = {"generator": name, "epsilon": eps, "seed": seed, "variant": variant, "params": params,
                           "tstr_auroc_holdout": val, "tstr_auroc_test": test, "fit_s": fit_s,
                           "steps": plan["steps"], "sample_rate": plan["sample_rate"],
                           "noise_multiplier": plan["noise_multiplier"],
                           "batch_size": (plan.get("schedule") or {}).get("batch_size"),
                           "epsilon_spent": gen.ledger_.epsilon()}
                    rows.append(row)
                    print(f"{name:12s} eps={eps:<3g} seed={seed} {variant:16s} TSTR holdout {val:.3f} test {test:.3f}  "
                          f"steps {row['steps']} q {row['sample_rate']:.4f} sigma {row['noise_multiplier']:.2f} "
                          f"fit {fit_s:.1f}s", flush=True)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
