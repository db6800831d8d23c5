"""Diagnose / tune the Diabetes-130 patient-level aim run on the VALIDATION split (the holdout).

Never reads the test split. Each variant = (schema file, k, aim params); the score is the macro
AUROC of ``readmitted`` on the holdout split for a gradient-boosting model trained on the
synthetic rows (TSTR) and on the real training rows (TRTR), plus time_in_hospital R^2, at
--epsilon, seed --seed. Variants are listed in VARIANTS; run e.g.

    OMP_NUM_THREADS=1 python evaluation/tune_ehr_diabetes130.py --variants base atoms --out /tmp/tune.json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from dpsynth.data.schema import Schema
from dpsynth.data.splits import SplitSpec, split_table
from dpsynth.metrics.encoding import FeatureEncoder
from dpsynth.metrics.targets import score_models
from dpsynth.metrics.utility import feature_columns
from dpsynth.privacy.code_selection import recode

import bench_ehr_diabetes130 as bench

HERE = Path(__file__).resolve().parent
N_SYNTHETIC = 30000  # synthetic rows scored (run time on shared CPUs)
# name -> (schema file under evaluation/schemas, k, aim params)
VARIANTS = {
    "base": ("diabetes130_encounters_v0.yaml", 1, {"max_iterations": 60}),
    "counts": ("diabetes130_encounters.yaml", 1, {"max_iterations": 60}),
    "counts_t120": ("diabetes130_encounters.yaml", 1, {"max_iterations": 120}),
    "counts_t240": ("diabetes130_encounters.yaml", 1, {"max_iterations": 240}),
    "counts_k3_t240": ("diabetes130_encounters.yaml", 3, {"max_iterations": 240}),
    "counts_k2": ("diabetes130_encounters.yaml", 2, {"max_iterations": 60}),
    "counts_k3": ("diabetes130_encounters.yaml", 3, {"max_iterations": 60}),
    "counts_tw1": ("diabetes130_encounters.yaml", 1, {"max_iterations": 60, "target_weight": 1.0}),
    "counts_b16": ("diabetes130_encounters.yaml", 1, {"max_iterations": 60, "bins": 16}),
    "counts_deg3": ("diabetes130_encounters.yaml", 1, {"max_iterations": 60, "target_degree": None}),
    "counts_deg3_tdef": ("diabetes130_encounters.yaml", 1, {"target_degree": None}),
    "counts_tdef": ("diabetes130_encounters.yaml", 1, {}),
    "counts_deg3_t120": ("diabetes130_encounters.yaml", 1, {"max_iterations": 120, "target_degree": None}),
    "top5_deg3": ("diabetes130_encounters_top5.yaml", 1, {"max_iterations": 60, "target_degree": None}),
    "counts_deg3_pgm200": ("diabetes130_encounters.yaml", 1, {"max_iterations": 60, "target_degree": None,
                                                               "pgm_iters": 200}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["base", "counts"])
    parser.add_argument("--epsilon", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    loaded = bench.load()
    if loaded is None:
        return
    frame, _, units, _ = loaded
    splits = split_table(frame, SplitSpec(seed=0, holdout=0.2, test=0.2), units=units)
    out_path = Path(args.out)
    rows = json.loads(out_path.read_text()) if out_path.is_file() else []
    trtr = {}
    for name in args.variants:
        schema_file, k, params = VARIANTS[name]
        schema = Schema.load(HERE / "schemas" / schema_file)
        t0 = time.perf_counter()
        picked = []
        gen, narrowed, fit_s = bench.fit_aim(splits, schema, k=k, epsilon=args.epsilon, seed=args.seed, params=params,
                                             progress=lambda p: picked.append(p["selected"]))
        syn = gen.sample(N_SYNTHETIC, rng=np.random.default_rng([args.seed, 1])).frame
        eval_schema = bench.chapter_schema(schema)
        tr, ho, sy = (recode(f, eval_schema) for f in (splits.train, splits.holdout, syn))
        row = {"variant": name, "schema": schema_file, "k": k, "params": params, "epsilon": args.epsilon,
               "seed": args.seed, "fit_s": round(fit_s, 1)}
        for target in ("readmitted", "time_in_hospital"):
            enc = FeatureEncoder(eval_schema, columns=feature_columns(eval_schema, target)).fit(tr)
            if (schema_file, target) not in trtr:
                trtr[(schema_file, target)] = bench.fit_one(tr, eval_schema, target, enc, seed=0)
            m = bench.fit_one(sy, eval_schema, target, enc, seed=args.seed)
            sc = score_models({"tstr": m, "trtr": trtr[(schema_file, target)]}, ho, eval_schema, target)
            key = ("macro_auroc", "balanced_accuracy", "recall_per_class") if target == "readmitted" else ("r2", "mae")
            row[target] = {s: {q: sc[s][q] for q in key} for s in sc}
        row["selected"] = picked
        row["syn_readmitted_share"] = syn["readmitted"].astype(str).value_counts(normalize=True).round(3).to_dict()
        row["real_readmitted_share"] = splits.train["readmitted"].astype(str).value_counts(normalize=True).round(3).to_dict()
        row["total_s"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(row), flush=True)
        rows.append(row)
        out_path.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
