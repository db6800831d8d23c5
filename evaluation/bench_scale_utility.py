"""aim's utility at large n: Diabetes-130 TRAINING patients replicated to N rows, TSTR on real held-out patients.

The base table (first encounter per patient, 71,518 patients) is split 70 / 15 / 15 by patient
with ``--split-seed`` (evaluation/scale_data.py ``split_seed``); only the training patients are
replicated (fresh ids) into the N-row Parquet file, the validation and test patients' real rows
are written beside it. Every patient in the evaluation rows is checked to be absent from the
training patients (``check_disjoint``). Runs (each fit in its own process: wall time, peak RSS of
the process tree, load average before/after):

- ``stream``: aim on the N-row file counted by DuckDB, under the public large-table rule
  (``dpsynth.scale.aim_bound.large_table_rule``) unless ``--params`` sets the values;
- ``memory``: aim with its defaults, in memory, on the real training patients (~50k rows);
- TRTR: the classifier trained on the real training patients.

Each synthetic set (``--synthetic-rows``, default: the number of real training patients) is scored
by evaluation/bench_suite.py's ``Scorer`` (logistic regression or gradient boosting, chosen by
3-fold CV on the training side) on the real VALIDATION and TEST patients: AUROC of readmitted30.
Constants are chosen on ``val``; ``test`` is reported.

    OMP_NUM_THREADS=1 python evaluation/bench_scale_utility.py --rows 1000000 --runs stream memory \\
        --data-dir /work/h14b_data --out evaluation/results/scale14b_utility.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def check_disjoint(data_dir: Path, split_seed: int) -> dict:
    import pandas as pd

    from scale_data import split_paths

    paths = split_paths(data_dir, split_seed)
    train = set(pd.read_parquet(paths["train_ids"])["patient_nbr"])
    out = {"train_patients": len(train)}
    for part in ("val", "test"):
        ids = set(pd.read_parquet(paths[part])["patient_id"])
        shared = len(ids & train)
        if shared:
            raise SystemExit(f"{shared} {part} patients are in the training replicate")
        out[f"{part}_patients"] = len(ids)
    return out


def real_frames(data_dir: Path, split_seed: int, replicate: Path, schema):
    """The real training patients (the replicate's first copy), validation and test rows, prepared."""
    import duckdb
    import pandas as pd

    from scale_data import split_paths

    paths = split_paths(data_dir, split_seed)
    n_train = len(pd.read_parquet(paths["train_ids"]))
    train = duckdb.connect().execute(f"SELECT * FROM read_parquet('{replicate}') WHERE patient_id <= {n_train}"
                                     " ORDER BY patient_id").df()
    frames = [schema.prepare(f, source=str(p)) for f, p in
              ((train, replicate), (pd.read_parquet(paths["val"]), paths["val"]),
               (pd.read_parquet(paths["test"]), paths["test"]))]
    return frames


# ---- measured children -------------------------------------------------------------------------
def child(kind: str, replicate: str, schema_path: str, data_dir: str, split_seed: int, epsilon: float,
          params: str, synthetic_rows: int, out: str, threads: int, seed: int = 0) -> None:
    import numpy as np

    import dpsynth.generators  # noqa: F401  (registers the generators)
    from dpsynth.data.schema import Schema
    from dpsynth.data.table import TableData
    from dpsynth.generators.registry import get_generator_class
    from dpsynth.privacy.budget import Budget

    schema = Schema.load(schema_path)
    gen = get_generator_class("aim")(**json.loads(params))
    budget = Budget(epsilon=epsilon, delta=1e-9)
    why = None
    start = time.perf_counter()
    if kind == "stream":
        from dpsynth.scale.aim_bound import apply_large_table_rule
        from dpsynth.scale.source import TableSource, count_rows

        source = TableSource(Path(replicate), schema, engine="duckdb", threads=threads, memory_limit="4GB")
        why = apply_large_table_rule(gen, count_rows(Path(replicate)), len(schema.names))
        start = time.perf_counter()
        gen.fit(source, budget=budget, rng=np.random.default_rng(seed))
    else:
        train, _, _ = real_frames(Path(data_dir), split_seed, Path(replicate), schema)
        start = time.perf_counter()
        gen.fit(TableData(train, schema), budget=budget, rng=np.random.default_rng(seed))
    fit_seconds = time.perf_counter() - start
    syn = gen.sample(synthetic_rows, rng=np.random.default_rng(seed + 1)).frame
    syn.to_parquet(out)
    print(json.dumps({"fit_seconds": round(fit_seconds, 2), "epsilon_exact": gen.ledger_.epsilon(), "rule": why,
                      "aim_params": {"max_iterations": gen.max_iterations, "max_model_size": gen.max_model_size}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", nargs="+", default=["stream", "memory"], choices=["stream", "memory"])
    parser.add_argument("--params", default="{}", help="JSON aim parameters (explicit values override the rule)")
    parser.add_argument("--tag", default="", help="label of this setting in the records")
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="the fit's seed (sampling: seed + 1)")
    parser.add_argument("--synthetic-rows", type=int, default=0, help="0: the number of real training patients")
    parser.add_argument("--threads", type=int, default=1, help="DuckDB threads")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--data-dir", type=Path, help="where the replicate and the real val/test rows go (outside git)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "scale14b_utility.jsonl")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        k, rep, sp, dd, split_seed, eps, params, nsyn, out, threads, seed = args.child
        child(k, rep, sp, dd, int(split_seed), float(eps), params, int(nsyn), out, int(threads), int(seed))
        return

    import pandas as pd

    from bench_scale import run_measured
    from bench_suite import Scorer
    from dpsynth.data.schema import Schema
    from scale_data import bench_schema, write_replicated

    if args.data_dir is None:
        parser.error("--data-dir is required")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    schema_path = bench_schema(args.data_dir)
    schema = Schema.load(schema_path)
    replicate = write_replicated(args.rows, args.data_dir, threads=args.threads, split_seed=args.split_seed)
    disjoint = check_disjoint(args.data_dir, args.split_seed)
    print("patients:", disjoint, flush=True)
    train, val, test = real_frames(args.data_dir, args.split_seed, replicate, schema)

    class Splits:  # the Scorer's view: train (encoder + TRTR), holdout = validation, test
        pass

    splits = Splits()
    splits.train, splits.holdout, splits.test = train, val, test
    scorer = Scorer(splits, schema)
    nsyn = args.synthetic_rows or len(train)
    base = {"rows": args.rows, "split_seed": args.split_seed, "epsilon": args.epsilon, "patients": disjoint,
            "n_real_train": len(train), "n_val": len(val), "n_test": len(test), "synthetic_rows": nsyn,
            "trtr": scorer.trtr}
    print("TRTR", scorer.trtr, flush=True)
    me = [sys.executable, str(Path(__file__).resolve())]
    for kind in args.runs:
        syn_path = args.data_dir / f"syn_{kind}_{args.rows}_{args.tag or 'rule'}_s{args.seed}.parquet"
        load_before = _load()
        res = run_measured(me + ["--child", kind, str(replicate), str(schema_path), str(args.data_dir),
                                 str(args.split_seed), str(args.epsilon), args.params, str(nsyn), str(syn_path),
                                 str(args.threads), str(args.seed)], timeout=args.timeout, rss_cap=12 * 2**30)
        record = {**base, "run": kind, "tag": args.tag, "seed": args.seed, "params": json.loads(args.params),
                  "training_rows": args.rows if kind == "stream" else len(train),
                  "backend": "duckdb" if kind == "stream" else "numpy (in memory)", "threads": args.threads,
                  "load_before": load_before, "load_after": _load(), "uptime": os.popen("uptime").read().strip(), **res}
        if "fit_seconds" in res:
            syn = schema.prepare(pd.read_parquet(syn_path), source=str(syn_path))
            record["tstr"] = scorer.score(syn)
            record["tstr_over_trtr"] = {s: record["tstr"][s] / scorer.trtr[s] for s in ("val", "test")}
        print(json.dumps(record), flush=True)
        with args.out.open("a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
