"""What aim's opt-in compute bound (``dpsynth/scale/aim_bound.py``) costs in utility: aim with the
bound on four suite tables, epsilon 1, seeds 0-1, appended to
``results/scale_aim_bound_suite.jsonl`` (VALIDATION and TEST TSTR per run; compare with aim:default
in ``results/suite_runs.jsonl``). The bound was never tuned; this only measures it.

    OMP_NUM_THREADS=1 python evaluation/check_aim_bound_suite.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpsynth.data.splits import SplitSpec, split_table  # noqa: E402
from dpsynth.scale.aim_bound import COMPUTE_BOUND  # noqa: E402
from evaluation.bench_suite import Scorer, run_one  # noqa: E402
from evaluation.suite_tables import load_table  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "scale_aim_bound_suite.jsonl"
TABLES = ("actg175", "flchain", "ham10000", "diabetes130")


def main() -> None:
    import torch

    torch.set_num_threads(1)
    with OUT.open("a") as out:
        for table in TABLES:
            frame, schema = load_table(table)
            splits = split_table(frame, SplitSpec(seed=0))
            scorer = Scorer(splits, schema)
            for seed in (0, 1):
                r = run_one(table, "aim", "bound", dict(COMPUTE_BOUND), 1.0, seed, splits, schema, scorer)
                out.write(json.dumps(r) + "\n")
                out.flush()
                print(table, seed, "val TSTR/TRTR", round(r["tstr"]["val"] / r["trtr"]["val"], 3), "fit s", r["fit_s"],
                      flush=True)


if __name__ == "__main__":
    main()
