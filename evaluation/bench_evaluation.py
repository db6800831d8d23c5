"""Headline evaluation table for several synthetic tables on the same real splits.

    python evaluation/bench_evaluation.py                       # baselines only (copy, independent)
    python evaluation/bench_evaluation.py --synthetic ctgan=out/ctgan.csv --claimed-epsilon ctgan=1.0
    python evaluation/bench_evaluation.py --fast --out evaluation/results/bench   # + JSON and reports
    python evaluation/bench_evaluation.py --generators aim dp-gan --epsilons 1 8 inf --no-baselines --fast

From Python, :func:`bench` takes ``{name: DataFrame or fit_sample callable}``; a callable
``fit_sample(train_frame, rng) -> synthetic_frame`` is fitted on the real train split and is
also handed to the shadow-model attack.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpsynth.data.embedded import get_embedded  # noqa: E402
from dpsynth.data.splits import SplitSpec, split_table  # noqa: E402
from dpsynth.metrics.suite import evaluate_table, load_evaluation_config  # noqa: E402

FAST_CONFIG = {
    "utility": {"grids": {"logistic_regression": {"C": [1.0]},
                          "gradient_boosting": {"learning_rate": [0.1], "max_leaf_nodes": [15]}}},
    "survival": {"penalizers": [0.1]},
    "privacy": {"n_shadow": 2},
}

COLUMNS = [
    ("TSTR AUROC", lambda r: r["utility"]["classification"]["tstr"]["selected"]["auroc"]),
    ("TRTR AUROC", lambda r: r["utility"]["classification"]["trtr"]["selected"]["auroc"]),
    ("TSTR C-idx", lambda r: r["utility"]["survival"]["cox"]["tstr"]["c_index"]),
    ("KM sup", lambda r: r["utility"]["survival"]["kaplan_meier"]["sup"]),
    ("col dist", lambda r: r["fidelity"]["column_shapes"]["value"]),
    ("assoc diff", lambda r: r["fidelity"]["association"]["value"]),
    ("detect AUC", lambda r: r["fidelity"]["detection"]["auroc"]),
    ("coverage", lambda r: r["fidelity"]["prdc"]["coverage"]),
    ("authentic", lambda r: r["fidelity"]["alpha_beta_authenticity"]["authenticity"]),
    ("MIA AUROC", lambda r: r["privacy"]["summary"]["max_auroc"]),
    ("TPR@1%", lambda r: r["privacy"]["summary"]["max_tpr_at_fpr_0.01"]),
    ("eps LB", lambda r: r["privacy"]["summary"]["epsilon_lower_bound"]),
    ("eps claim", lambda r: r["privacy"]["summary"]["claimed_epsilon"]),
    ("flagged", lambda r: len(r["subgroups"]["flagged"])),
    ("worst grp", lambda r: r["subgroups"]["utility_gap"]["tstr"]["worst"]),
    ("U/F/P/S", lambda r: "/".join(r["verdicts"][a]["verdict"][0].upper() for a in
                                   ("utility", "fidelity", "privacy", "subgroups") if a in r["verdicts"])),
]


def load_splits(dataset: str, *, seed: int = 0):
    ds = get_embedded(dataset)
    schema = ds.schema()
    return schema, split_table(schema.prepare(ds.load()), SplitSpec(seed=seed))


def independent_marginals(train: pd.DataFrame, rng: np.random.Generator, n: int | None = None) -> pd.DataFrame:
    """Each column resampled on its own from the training rows: right marginals, no joint structure."""
    n = n or len(train)
    return pd.DataFrame({c: train[c].to_numpy()[rng.integers(0, len(train), n)] for c in train.columns})


def copy_training(train: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The worst possible release: the training rows themselves."""
    return train.reset_index(drop=True).copy()


def baseline_synthetics(train: pd.DataFrame, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    return {"copy": copy_training(train, rng), "independent": independent_marginals(train, rng)}


def generator_fit_sample(name: str, eps: str) -> Callable:
    """A dpsynth generator with its default hyper-parameters at epsilon ``eps`` ('inf' = non-private)."""
    from dpsynth.data.table import TableData
    from dpsynth.generators import REGISTRY
    from dpsynth.privacy.budget import Budget

    def fit_sample(train: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        import torch

        torch.set_num_threads(1)
        budget = Budget.non_private_reference() if eps == "inf" else Budget(epsilon=float(eps))
        schema, _ = load_splits("actg175")
        gen = REGISTRY[name]().fit(TableData(train.reset_index(drop=True), schema), budget=budget, rng=rng)
        return gen.sample(len(train), rng=rng).frame

    return fit_sample


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def headline_table(rows: dict[str, dict]) -> str:
    header = ["synthetic"] + [c for c, _ in COLUMNS]
    body = []
    for name, res in rows.items():
        cells = [name]
        for _, get in COLUMNS:
            try:
                cells.append(_cell(get(res)))
            except (KeyError, TypeError):
                cells.append("-")
        body.append(cells)
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in body])


def bench(synthetics: dict[str, pd.DataFrame | Callable], *, dataset: str = "actg175", seed: int = 0,
          config: dict | None = None, claimed: dict[str, float] | None = None, out: Path | None = None,
          verbose: bool = True) -> dict[str, dict]:
    schema, splits = load_splits(dataset, seed=seed)
    results = {}
    for name, synth in synthetics.items():
        rng = np.random.default_rng([seed, len(results)])
        fit_sample = synth if callable(synth) else None
        frame = synth(splits.train, rng) if callable(synth) else synth
        start = time.perf_counter()
        res = evaluate_table(train=splits.train, holdout=splits.holdout, test=splits.test, synthetic=frame,
                             schema=schema, rng=rng, config=config, fit_sample=fit_sample,
                             claimed_epsilon=(claimed or {}).get(name))
        results[name] = res
        if verbose:
            print(f"[{name}] evaluated in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        if out is not None:
            from dpsynth.reports.report import write_report

            write_report(Path(out) / name, res)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Headline evaluation table for synthetic CSVs (and baselines).")
    ap.add_argument("--dataset", default="actg175")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic", action="append", default=[], metavar="NAME=CSV")
    ap.add_argument("--claimed-epsilon", action="append", default=[], metavar="NAME=EPS")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--fast", action="store_true", help="one hyper-parameter per model, 2 shadow runs")
    ap.add_argument("--config", type=Path, help="evaluation YAML (e.g. configs/evaluation_thresholds.yaml)")
    ap.add_argument("--out", type=Path, help="write results JSON and a report per synthetic table here")
    ap.add_argument("--generators", nargs="*", default=[], help="dpsynth generators to train and evaluate")
    ap.add_argument("--epsilons", nargs="*", default=["1", "8", "inf"], help="'inf' = the non-private reference")
    args = ap.parse_args(argv)

    synthetics: dict[str, pd.DataFrame | Callable] = {}
    if not args.no_baselines:
        synthetics["copy"] = copy_training
        synthetics["independent"] = independent_marginals
    for item in args.synthetic:
        name, _, path = item.partition("=")
        if not path:
            ap.error(f"--synthetic expects NAME=CSV, got {item!r}")
        synthetics[name] = pd.read_csv(path)
    claimed = {}
    for name in args.generators:
        for eps in args.epsilons:
            key = f"{name}@eps={eps}"
            synthetics[key] = generator_fit_sample(name, eps)
            if eps != "inf":
                claimed[key] = float(eps)
    for item in args.claimed_epsilon:
        name, _, eps = item.partition("=")
        claimed[name] = float(eps)
    config = load_evaluation_config(args.config) if args.config else None
    if args.fast:
        config = {**(config or {}), **FAST_CONFIG}
    results = bench(synthetics, dataset=args.dataset, seed=args.seed, config=config, claimed=claimed, out=args.out)
    print(headline_table(results))
    if args.out:
        (args.out / "headline.json").write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
