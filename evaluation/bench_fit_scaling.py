"""Benchmark: fit time vs rows for the DP-SGD tabular generators with steps planned from the budget.

Diabetes-130 encounters (101,766 rows, the benchmark schema in evaluation/schemas/diabetes130.yaml),
subsampled to 10k, cut to 100k, and replicated to 1M rows (timing only: the schema has no id
column, so replicas need no fresh ids). Each generator is fitted with its defaults at epsilon 1
on one thread; times are CPU seconds of the process (one torch thread: the cost on an idle core;
wall time on the shared benchmark machine is inflated by other jobs); printed: rows, planned batch and steps, noise multiplier, time to the first step
(encoding, DP counts, planning, calibration), time per step, total fit time. The legacy epoch plan
(epochs 100) would take ceil(100 n / batch) steps: 78,125 steps for dp-gan at 100k rows.

    python evaluation/bench_fit_scaling.py                               # dp-gan, dp-diffusion; 10k 100k 1M
    python evaluation/bench_fit_scaling.py --generators dp-gan --rows 10000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dpsynth.data.table import TableData
from dpsynth.generators import REGISTRY
from dpsynth.privacy.budget import Budget

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def rows_of(full: TableData, n: int) -> TableData:
    frame = full.frame
    if n <= len(frame):
        part = frame.sample(n=n, random_state=0) if n < 100_000 else frame.iloc[:n]
    else:
        reps = -(-n // len(frame))
        part = pd.concat([frame] * reps, ignore_index=True).iloc[:n]
    return TableData(part.reset_index(drop=True), full.schema)


def main() -> None:
    from bench_grad_modes import load_diabetes_rows

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generators", nargs="+", default=["dp-gan", "dp-diffusion"])
    parser.add_argument("--rows", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--measure-steps", type=int, default=0,
                        help="time only this many steps of the planned batch (0 = the full planned run); the total "
                             "is then reported as setup + planned steps x measured step time, labelled projected")
    parser.add_argument("--out", default=str(RESULTS / "bench_fit_scaling.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    full = load_diabetes_rows()
    rows = []
    for name in args.generators:
        for n in args.rows:
            data = rows_of(full, n)
            stamps: list[float] = []
            budget = Budget(epsilon=args.epsilon)
            start = time.process_time()  # CPU time, one thread: the cost on an idle core
            planned = REGISTRY[name]().plan_schedule(n, epsilon=args.epsilon, delta=budget.resolve_delta(n))
            params = {"batch_size": planned.batch_size, "steps": args.measure_steps} if args.measure_steps else {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gen = REGISTRY[name](**params).fit(data, budget=budget, rng=np.random.default_rng(0),
                                                   progress=lambda info: stamps.append(time.process_time()))
            total = time.process_time() - start
            plan = gen.dp_plan_
            per_step = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
            if args.measure_steps:  # projected: measured setup + planned steps x measured step time
                total = (stamps[0] - start) + planned.steps * per_step
            row = {"generator": name, "rows": n, "batch_size": planned.batch_size, "steps": planned.steps,
                   "measured_steps": len(stamps), "projected": bool(args.measure_steps),
                   "noise_multiplier": planned.planning_noise_multiplier, "grad_sample_mode": plan["grad_sample_mode"],
                   "setup_s": stamps[0] - start, "step_ms": 1e3 * per_step, "fit_s": total,
                   "legacy_steps": int(np.ceil(100 * n / (128 if name == "dp-gan" else 256))),
                   "epsilon_spent": gen.ledger_.epsilon(), "load_avg": os.getloadavg()}
            rows.append(row)
            print(f"{name:12s} rows {n:>9,d}  batch {row['batch_size']:5d}  steps {row['steps']}  "
                  f"sigma {row['noise_multiplier']:.2f}  setup {row['setup_s']:.1f}s  step {row['step_ms']:.1f} ms  "
                  f"fit {total:.1f}s{' (projected)' if args.measure_steps else ''}  (legacy plan: {row['legacy_steps']:,d} steps)  load {row['load_avg'][0]:.1f}",
                  flush=True)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({"epsilon": args.epsilon, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
