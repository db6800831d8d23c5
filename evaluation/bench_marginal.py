"""AIM and MST on ACTG 175: fit time, sampling speed and TSTR AUROC over epsilons and seeds.

    python evaluation/bench_marginal.py                              # aim, mst x eps {0.5,1,4,8} x seeds 0..2
    python evaluation/bench_marginal.py --generators aim --epsilons 1 --seeds 0 --rows 100000
    python evaluation/bench_marginal.py --out evaluation/results/bench_marginal.json

Splits: ``split_table(frame, SplitSpec(seed=0))``. Each generator is fitted on the train split;
fit and sample times are wall-clock (and process CPU seconds, since shared machines are noisy).
TSTR: scikit-learn HistGradientBoosting (fixed hyper-parameters, none tuned on the test split)
trained on as many synthetic rows as the real train split holds, target ``cens``, scored on the
real test split; TRTR trains the same model on the real train split. The independent-marginals
generator at the same epsilon is the floor every generator must clear.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpsynth.data.embedded import get_embedded  # noqa: E402
from dpsynth.data.splits import SplitSpec, split_table  # noqa: E402
from dpsynth.data.table import TableData  # noqa: E402
from dpsynth.generators import REGISTRY  # noqa: E402
from dpsynth.privacy.budget import Budget  # noqa: E402

TARGET = "cens"


def auroc(train, test) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    model = HistGradientBoostingClassifier(random_state=0)
    model.fit(train.drop(columns=TARGET).astype(float), train[TARGET].astype(int))
    return float(roc_auc_score(test[TARGET].astype(int), model.predict_proba(test.drop(columns=TARGET).astype(float))[:, 1]))


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run_one(name: str, epsilon: float, seed: int, schema, splits, rows: int) -> dict:
    gen = REGISTRY[name]()
    data = TableData(splits.train, schema)
    _, fit_wall, fit_cpu = timed(lambda: gen.fit(data, budget=Budget(epsilon=epsilon), rng=np.random.default_rng(seed)))
    syn, sample_wall, sample_cpu = timed(lambda: gen.sample(rows, rng=np.random.default_rng(seed + 1000)).frame)
    return {
        "generator": name, "epsilon": epsilon, "seed": seed, "ledger_epsilon": gen.ledger_.epsilon(),
        "fit_s": fit_wall, "fit_cpu_s": fit_cpu, "sample_s": sample_wall, "sample_cpu_s": sample_cpu, "rows": rows,
        "tstr_auroc": auroc(syn.iloc[: len(splits.train)], splits.test),
    }


def summarise(results: list[dict], trtr: float) -> str:
    lines = [f"TRTR AUROC (HistGradientBoosting, real train -> real test): {trtr:.3f}", "",
             "| generator | eps | fit s (wall) | fit s (CPU) | sample 1M s (wall) | sample 1M s (CPU) | TSTR AUROC"
             " | TSTR/TRTR |",
             "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["generator"], r["epsilon"]) for r in results}, key=lambda k: (k[0], k[1]))

    def stat(values, fmt):
        return f"{statistics.mean(values):{fmt}}" + (f" ± {statistics.stdev(values):{fmt}}" if len(values) > 1 else "")

    for name, eps in keys:
        rs = [r for r in results if r["generator"] == name and r["epsilon"] == eps]
        lines.append(
            f"| {name} | {eps:g} | {stat([r['fit_s'] for r in rs], '.1f')} | {stat([r['fit_cpu_s'] for r in rs], '.1f')}"
            f" | {stat([r['sample_s'] * 1e6 / r['rows'] for r in rs], '.2f')}"
            f" | {stat([r['sample_cpu_s'] * 1e6 / r['rows'] for r in rs], '.2f')}"
            f" | {stat([r['tstr_auroc'] for r in rs], '.3f')}"
            f" | {statistics.mean(r['tstr_auroc'] for r in rs) / trtr:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generators", nargs="+", default=["aim", "mst", "independent"])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[0.5, 1.0, 4.0, 8.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows sampled per fit (timed)")
    parser.add_argument("--out", type=Path, default=None, help="write all results as JSON here")
    args = parser.parse_args(argv)

    ds = get_embedded("actg175")
    schema = ds.schema()
    splits = split_table(schema.prepare(ds.load()), SplitSpec(seed=0))
    trtr = auroc(splits.train, splits.test)
    results = []
    for name in args.generators:
        for epsilon in args.epsilons:
            for seed in args.seeds:
                r = run_one(name, epsilon, seed, schema, splits, args.rows)
                results.append(r)
                print(f"{name} eps={epsilon:g} seed={seed}: fit {r['fit_s']:.1f}s (cpu {r['fit_cpu_s']:.1f}s), "
                      f"sample {r['sample_s']:.2f}s (cpu {r['sample_cpu_s']:.2f}s), TSTR {r['tstr_auroc']:.3f}, "
                      f"ledger eps {r['ledger_epsilon']:.4f}",
                      flush=True)
    print()
    print(summarise(results, trtr))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"trtr_auroc": trtr, "results": results}, indent=2))


if __name__ == "__main__":
    main()
