"""Benchmark: plain DP-SGD vs fairness-aware DP-SGD (dp-gan) for patient subgroups.

At one epsilon (default 1) on ACTG 175 (race x gender) and Diabetes-130 (race, gender, age
band; read from ../shared/data/ehr/diabetes130.zip, skipped with a message when absent), for
each training variant it prints:

- the representation ratio (synthetic share / real share) of every subgroup holding >= 5% of
  the real training patients;
- overall TSTR AUROC, and the utility gap TRTR - TSTR overall and for the worst subgroup
  (the largest per-group gap over groups with enough test rows), plus the suite's best-worst
  group TSTR AUROC spread.

Variants: ``plain`` (flat clipping, uniform Poisson sampling), ``fair`` (group-aware clipping
+ subgroup-balanced sampling over the dataset's group columns), ``adaptive`` (quantile-based
adaptive clipping), ``fair-balanced-release`` (``fair`` released with equal counts per
group-column cell). Every variant spends exactly the same epsilon; the ledger says how.

    python evaluation/bench_fairness.py                                   # both datasets, 1 seed
    python evaluation/bench_fairness.py --datasets actg175 --seeds 0 1 2 --epochs 100
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dpsynth.balance import balanced_frame, equal_cells
from dpsynth.data.embedded import get_embedded
from dpsynth.data.schema import Schema
from dpsynth.data.splits import SplitSpec, split_table
from dpsynth.data.table import TableData
from dpsynth.errors import DpsynthError
from dpsynth.generators.registry import get_generator_class
from dpsynth.metrics.suite import evaluate_table
from dpsynth.privacy.budget import Budget

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DIABETES = HERE.parent.parent / "shared" / "data" / "ehr" / "diabetes130.zip"

VARIANTS = {
    "dp-gan": {
        "plain": {},
        "fair": {"clipping": "group", "balanced_sampling": True},
        "adaptive": {"clipping": "adaptive"},
    },
    # aim's fairness option: the group x target marginal measured first (group_share of the
    # budget) and the release drawn in the model's group proportions
    "aim": {"plain": {}, "fair": {"group_share": 0.25}},
}


def load_actg() -> tuple[pd.DataFrame, Schema, dict]:
    ds = get_embedded("actg175")
    schema = ds.schema()
    return schema.prepare(ds.load()), schema, {"group_columns": ["race", "gender"], "evaluate": ["race", "gender"],
                                               "intersections": True}


def load_diabetes(max_rows: int) -> tuple[pd.DataFrame, Schema, dict] | None:
    if not DIABETES.is_file():
        print(f"skip diabetes130: {DIABETES} is absent")
        return None
    schema = Schema.load(HERE / "schemas" / "diabetes130.yaml")
    with zipfile.ZipFile(DIABETES) as z:
        raw = pd.read_csv(z.open("dataset_diabetes/diabetic_data.csv"), low_memory=False)
    # privacy unit = patient: keep each patient's first encounter (a per-patient transformation)
    raw = raw.sort_values("encounter_id").drop_duplicates("patient_nbr", keep="first")
    raw["readmitted30"] = (raw["readmitted"] == "<30").astype(int)
    frame = schema.prepare(raw[schema.names], source=str(DIABETES))
    if max_rows and len(frame) > max_rows:  # a uniform subsample, for run time only
        frame = frame.sample(n=max_rows, random_state=0).reset_index(drop=True)
    return frame, schema, {"group_columns": ["race", "gender"], "evaluate": ["race", "gender", "age"],
                           "intersections": False,
                           # the balanced release: equal counts per recorded race ('?' = not recorded)
                           "balance_columns": ["race"], "balance_exclude": {"race": ["?"]}}


def evaluate(splits, synthetic, schema, spec, seed) -> dict:
    cfg = {"areas": ["utility", "subgroups"], "survival": {"enabled": False},
           "utility": {"folds": 3}, "subgroups": {"columns": spec["evaluate"], "intersections": spec["intersections"],
                                                  "min_size": 30}}
    res = evaluate_table(train=splits.train, holdout=splits.holdout, test=splits.test, synthetic=synthetic,
                         schema=schema, rng=np.random.default_rng(seed), config=cfg)
    cls = res["utility"]["classification"]
    tstr, trtr = cls["tstr"]["selected"]["auroc"], cls["trtr"]["selected"]["auroc"]
    groups = res["subgroups"]["groups"]
    big = [g for g in groups if g["share_real"] >= 0.05]
    gaps = [(g["trtr_auroc"] - g["tstr_auroc"], g["group"]) for g in groups
            if g.get("tstr_auroc") is not None and g.get("trtr_auroc") is not None]
    worst_gap, worst_group = max(gaps) if gaps else (None, None)
    big_names = {g["group"] for g in big}
    big_gaps = [(gap, name) for gap, name in gaps if name in big_names]
    worst_big, worst_big_group = max(big_gaps) if big_gaps else (None, None)
    return {"tstr_auroc": tstr, "trtr_auroc": trtr, "overall_gap": trtr - tstr,
            "worst_group_gap": worst_gap, "worst_group": worst_group,
            "worst_group_gap_5pct": worst_big, "worst_group_5pct": worst_big_group,
            "tstr_best_worst_spread": res["subgroups"]["utility_gap"]["tstr"]["gap"],
            "representation": {g["group"]: g["representation_ratio"] for g in big}}


def run_dataset(name, frame, schema, spec, args) -> list[dict]:
    splits = split_table(frame, SplitSpec(seed=0))
    print(f"\n== {name}: train {len(splits.train)}, test {len(splits.test)}, epsilon {args.epsilon}, "
          f"group columns {spec['group_columns']}", flush=True)
    rows = []
    variants = [v for v in args.variants if v not in ("fair-balanced-release", "real-bootstrap")]
    if "real-bootstrap" in args.variants:  # noise floor: what 'perfect' synthetic data would score
        for seed in args.seeds:
            boot = splits.train.sample(n=len(splits.train), replace=True, random_state=seed).reset_index(drop=True)
            row = {"dataset": name, "generator": "real data (bootstrap of the training split; not private)",
                   "variant": "real-bootstrap", "seed": seed, "epsilon_spent": float("inf"), "fit_s": 0.0,
                   **evaluate(splits, boot, schema, spec, seed)}
            rows.append(row)
            print(f"{'real-bootstrap':22s} seed {seed}  TSTR {row['tstr_auroc']:.3f} (TRTR {row['trtr_auroc']:.3f})  "
                  f"overall gap {row['overall_gap']:.3f}  worst-group gap {_f(row['worst_group_gap'])} "
                  f"[{row['worst_group']}]", flush=True)
    for variant in variants:
        if variant not in VARIANTS[args.generator]:
            print(f"skip variant {variant}: not defined for {args.generator}")
            continue
        for seed in args.seeds:
            if args.generator == "dp-gan":
                params = {"epochs": args.epochs, "batch_size": args.batch_size}
            else:
                params = {}
            params.update(VARIANTS[args.generator][variant])
            if variant == "fair" and args.generator == "aim":
                params["group_share"] = args.group_share
            if variant == "fair":  # aim measures the joint marginal of every evaluated sensitive column
                params["group_columns"] = spec["evaluate"] if args.generator == "aim" else spec["group_columns"]
            start = time.perf_counter()
            gen = get_generator_class(args.generator)(**params).fit(TableData(splits.train, schema), budget=Budget(epsilon=args.epsilon),
                                      rng=np.random.default_rng(seed))
            fit_s = time.perf_counter() - start
            syn = gen.sample(len(splits.train), rng=np.random.default_rng(seed + 1000)).frame
            releases = [(variant, syn)]
            if variant == "fair" and "fair-balanced-release" in args.variants:
                exclude = spec.get("balance_exclude", {})
                cells = [(c, s) for c, s in equal_cells(schema, spec.get("balance_columns", spec["group_columns"]))
                         if not any(c[k] in exclude.get(k, ()) for k in c)]
                cells = [(c, 1.0 / len(cells)) for c, _ in cells]
                try:
                    releases.append(("fair-balanced-release", balanced_frame(
                        gen, len(splits.train), cells, rng=np.random.default_rng(seed + 2000))))
                except DpsynthError as exc:
                    print(f"fair-balanced-release  seed {seed}  not released: {exc}")
            for label, data in releases:
                row = {"dataset": name, "generator": args.generator, "variant": label, "seed": seed, "epsilon_spent": gen.ledger_.epsilon(),
                       "fit_s": round(fit_s, 1), **evaluate(splits, data, schema, spec, seed)}
                rows.append(row)
                print(f"{label:22s} seed {seed}  spent eps {row['epsilon_spent']:.3f}  TSTR {row['tstr_auroc']:.3f} "
                      f"(TRTR {row['trtr_auroc']:.3f})  overall gap {row['overall_gap']:.3f}  worst-group gap "
                      f"{_f(row['worst_group_gap'])} [{row['worst_group']}]  fit {fit_s:.0f}s", flush=True)
    print_summary(name, rows)
    return rows


def _f(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def print_summary(name: str, rows: list[dict]) -> None:
    labels = list(dict.fromkeys(r["variant"] for r in rows))
    groups = list(dict.fromkeys(g for r in rows for g in r["representation"]))
    print(f"\n{name}: mean over seeds (target: worst >= 5%-group gap <= overall gap + 0.02, and every >= 5% group's"
          " representation ratio in [0.9, 1.1])")
    print("| variant | seeds | TSTR AUROC | overall gap (TRTR-TSTR) | worst-group gap (>= 5% groups) | excess over overall"
          " | worst-group gap (all groups) | best-worst TSTR spread | seeds meeting the gap target | seeds with every"
          " ratio in range |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label in labels:
        sel = [r for r in rows if r["variant"] == label]

        def mean(k, sel=sel):
            vals = [r[k] for r in sel if r.get(k) is not None]
            return _f(np.mean(vals) if vals else None)

        excess = [r["worst_group_gap_5pct"] - r["overall_gap"] for r in sel if r.get("worst_group_gap_5pct") is not None]
        ok_gap = sum(e <= 0.02 for e in excess)
        ok_ratio = sum(all(0.9 <= v <= 1.1 for v in r["representation"].values()) for r in sel)
        print(f"| {label} | {len(sel)} | {mean('tstr_auroc')} | {mean('overall_gap')} | {mean('worst_group_gap_5pct')} | "
              f"{_f(np.mean(excess) if excess else None)} | {mean('worst_group_gap')} | {mean('tstr_best_worst_spread')} | "
              f"{ok_gap if excess else '-'}/{len(sel)} | {ok_ratio}/{len(sel)} |")
    print(f"\n{name}: representation ratio (synthetic / real share) of subgroups holding >= 5% of patients")
    print("| subgroup | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for g in groups:
        cells = []
        for label in labels:
            vals = [r["representation"].get(g) for r in rows if r["variant"] == label]
            vals = [v for v in vals if v is not None]
            cells.append(_f(np.mean(vals)) if vals else "-")
        print(f"| {g} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["actg175", "diabetes130"])
    parser.add_argument("--generator", default="dp-gan", choices=list(VARIANTS))
    parser.add_argument("--variants", nargs="+", default=["plain", "fair", "fair-balanced-release"],
                        choices=["plain", "fair", "adaptive", "fair-balanced-release", "real-bootstrap"])
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--group-share", type=float, default=0.25, help="aim 'fair': budget share of the group marginal")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=float, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--diabetes-rows", type=int, default=20_000, help="uniform subsample of patients (0 = all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "bench_fairness.json"))
    parser.add_argument("--summarize", metavar="JSON", help="only print the summary tables of a saved result file")
    args = parser.parse_args()
    if args.summarize:
        rows = json.loads(Path(args.summarize).read_text())["rows"]
        for name in dict.fromkeys(r["dataset"] for r in rows):
            print_summary(name, [r for r in rows if r["dataset"] == name])
        return
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Full backward hook is firing")  # opacus on the real-row pass
    rows = []
    for name in args.datasets:
        loaded = load_actg() if name == "actg175" else load_diabetes(args.diabetes_rows) if name == "diabetes130" else None
        if loaded is None:
            if name not in ("actg175", "diabetes130"):
                print(f"skip {name}: unknown dataset (actg175, diabetes130)")
            continue
        rows += run_dataset(name, *loaded, args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2, default=str))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
