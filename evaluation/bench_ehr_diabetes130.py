"""Benchmark: patient-level DP on Diabetes-130, all 101,766 encounters (privacy unit patient_nbr).

Reads ../shared/data/ehr/diabetes130.zip (skips with a message when absent) and the schema
evaluation/schemas/diabetes130_encounters.yaml (ICD-9 diag_1..3 through the public hierarchy,
30 DP-selected 3-digit categories each, the rest folded into their chapter). Splits by
PATIENT (seed 0; 60/20/20 of the patients), bounds the training split to k encounters per
patient (rows beyond k dropped by a seeded rule), and trains ``aim`` at each epsilon and seed.
For each run it reports, on the real test split:

- utility vs TRTR for ``readmitted`` (3 classes: macro AUROC, balanced accuracy, per-class
  recall) and ``time_in_hospital`` (numeric: R^2, MAE); TRTR trains on every real encounter
  of the training split (non-private reference);
- fidelity (column shapes, association difference, detection AUROC);
- representation ratios for race, gender and age;
- the patient-level epsilon (the ledger's) and what a row-level run would claim: a row-level
  run at the same noise claims the same number, but for a patient with m encounters its
  guarantee is group privacy over m rows (zCDP rho x m^2, Gaussian sigma / m); the table
  prints that epsilon for m = the largest number of encounters of one patient in the training
  split (an internal figure, computed from real data, not released).

``--phase tune``: picks k in --tune-k on the VALIDATION split (the holdout; never the test
split) at --tune-epsilon, seed 0, by TSTR macro AUROC of readmitted. ``--phase main`` runs the
grid with --k. Run single-threaded:

    OMP_NUM_THREADS=1 python evaluation/bench_ehr_diabetes130.py --phase tune
    OMP_NUM_THREADS=1 python evaluation/bench_ehr_diabetes130.py --phase main --k 1 --epsilons 1 4 8 --seeds 0 1 2 \
        --config configs/aim_diabetes130_encounters.yaml [--models gb]

``--config``: aim's params from a run config (the one above was chosen on the holdout split by
``evaluation/tune_ehr_diabetes130.py``); ``--models gb``: one gradient-boosting setting per target
without CV (run time), instead of the family chosen by 3-fold CV on the training side.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dpsynth.api import select_code_domains, training_data
from dpsynth.data.schema import Schema
from dpsynth.data.splits import SplitSpec, split_table
from dpsynth.generators.registry import get_generator_class
from dpsynth.data import icd9
from dpsynth.metrics.encoding import FeatureEncoder
from dpsynth.metrics.fidelity import AssociationDifference, ColumnShapes, DetectionAUROC
from dpsynth.metrics.subgroups import subgroup_report
from dpsynth.metrics.targets import any_utility_table, fit_models, score_models
from dpsynth.metrics.utility import feature_columns
from dpsynth.privacy.accountants import compose
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.code_selection import recode
from dpsynth.privacy.contribution import unit_index
from dpsynth.privacy.ledger import Ledger

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# ../shared/data beside the repository; DPSYNTH_SHARED_DATA overrides (e.g. from a git worktree)
DIABETES = Path(os.environ.get("DPSYNTH_SHARED_DATA", HERE.parent.parent / "shared" / "data")) / "ehr" / "diabetes130.zip"
SCHEMA = HERE / "schemas" / "diabetes130_encounters.yaml"
SENSITIVE = ["race", "gender", "age"]
# one setting per family (run time on shared CPUs); the family is still chosen by CV on the training side
GRIDS = {"readmitted": {"logistic_regression": {"C": [1.0]},
                        "gradient_boosting": {"learning_rate": [0.1], "max_leaf_nodes": [31], "max_iter": [60]}},
         "time_in_hospital": {"ridge": {"alpha": [1.0]},
                              "gradient_boosting": {"learning_rate": [0.1], "max_leaf_nodes": [31], "max_iter": [60]}}}


def fit_one(frame, schema, target, encoder, *, seed):
    """One gradient-boosting model, no CV (``--models gb``: run time on shared CPUs)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from dpsynth.metrics.targets import FittedModel, _rows_and_y, target_kind

    col = schema[target]
    kind = target_kind(col)
    rows, y = _rows_and_y(frame, col, kind, role="fit")
    cls = HistGradientBoostingRegressor if kind == "numeric" else HistGradientBoostingClassifier
    model = cls(max_iter=60, learning_rate=0.1, max_leaf_nodes=31, early_stopping=False, random_state=seed)
    model.fit(encoder.transform(rows), y)
    return FittedModel(kind, "gradient_boosting", {}, model, float("nan"), encoder,
                       n_classes=len(col.categories) if col.categories else 0)


def load() -> tuple[pd.DataFrame, Schema, np.ndarray, np.ndarray] | None:
    if not DIABETES.is_file():
        print(f"skip diabetes130: {DIABETES} is absent")
        return None
    schema = Schema.load(SCHEMA)
    with zipfile.ZipFile(DIABETES) as z:
        raw = pd.read_csv(z.open("dataset_diabetes/diabetic_data.csv"), low_memory=False,
                          na_values={c: ["?"] for c in ("diag_1", "diag_2", "diag_3")})
    frame = schema.prepare(raw, source=str(DIABETES))
    units = unit_index(raw[schema.unit_column])
    return frame, schema, units, raw[schema.unit_column].to_numpy()


def row_level_claim(ledger: Ledger, m: int) -> float:
    """Epsilon that the ledger's mechanisms give a patient with ``m`` rows when each row was the
    unit (k not enforced): Gaussian sensitivity x m (noise multiplier / m), zCDP rho x m^2."""
    history = [(nm / m, q, steps) for nm, q, steps in ledger.gaussian_history()]
    return compose(history, zcdp_rho=ledger.rho() * m * m, delta=ledger.accountant_delta(), accountant="rdp")


def fit_aim(frame_splits, schema, *, k, epsilon, seed, params, progress=None):
    splits = frame_splits
    data = training_data(splits, schema, seed=seed, max_rows_per_unit=k)
    budget = Budget(epsilon=epsilon)
    rng = np.random.default_rng(seed)
    data, narrowed, ledger = select_code_domains(data, budget=budget, ledger=None, rng=rng)
    start = time.perf_counter()
    gen = get_generator_class("aim")(**params).fit(data, budget=budget, rng=rng, ledger=ledger, progress=progress)
    fit_s = time.perf_counter() - start
    return gen, narrowed, fit_s


def chapter_schema(schema: Schema) -> Schema:
    """The schema with every code column reduced to its ICD-9 chapters (public hierarchy)."""
    cols = tuple(dataclasses.replace(c, categories=icd9.chapter_buckets(), top_codes=None) if c.codes else c
                 for c in schema.columns)
    return dataclasses.replace(schema, columns=cols, _index={})


def representation(train: pd.DataFrame, synthetic: pd.DataFrame) -> dict:
    out = {}
    for col in SENSITIVE:
        real = train[col].astype(str).value_counts(normalize=True)
        syn = synthetic[col].astype(str).value_counts(normalize=True)
        for cat, share in real.items():
            if share >= 0.02:
                out[f"{col}={cat}"] = float(syn.get(cat, 0.0) / share)
    return out


def run_phase(args) -> None:
    loaded = load()
    if loaded is None:
        return
    frame, schema, units, ids = loaded
    splits = split_table(frame, SplitSpec(seed=0, holdout=0.2, test=0.2), units=units)
    train_ids = ids[np.isin(units, np.unique(splits.train_units))]
    max_m = int(pd.Series(train_ids).value_counts().max())
    print(f"encounters {len(frame)}, patients {units.max() + 1}; split by patient: train {len(splits.train)}"
          f" holdout {len(splits.holdout)} test {len(splits.test)} rows; max encounters of one train patient {max_m}",
          flush=True)
    params = {"max_iterations": args.max_iterations} if args.max_iterations else {}
    row_extra = {"config": args.config, "models": args.models}
    if args.config:  # aim hyper-parameters from a run config (chosen on the holdout split, see the results file)
        import yaml

        params = {**(yaml.safe_load(Path(args.config).read_text()).get("params") or {}), **params}
    out_path = Path(args.out)
    rows = json.loads(out_path.read_text())["rows"] if out_path.is_file() and args.resume else []
    done = {(r["phase"], r["k"], r["epsilon"], r["seed"]) for r in rows}
    if args.phase == "tune":
        cells = [(k, args.tune_epsilon, 0) for k in args.tune_k]
    else:
        cells = [(args.k, e, s) for s in args.seeds for e in args.epsilons]
    trtr_cache: dict = {}
    # downstream models and fidelity see the diagnoses at ICD-9 chapter level (a public mapping), so
    # the real reference (TRTR) is one fit for every cell whatever codes a run's DP selection kept
    eval_schema = chapter_schema(schema)
    encoders = {t: FeatureEncoder(eval_schema, columns=feature_columns(eval_schema, t)).fit(recode(splits.train,
                                                                                                 eval_schema))
                for t in ("readmitted", "time_in_hospital")}
    for k, eps, seed in cells:
        if (args.phase, k, eps, seed) in done:
            continue
        gen, narrowed, fit_s = fit_aim(splits, schema, k=k, epsilon=eps, seed=seed, params=params)
        n_syn = len(splits.train)
        synthetic = gen.sample(n_syn, rng=np.random.default_rng([seed, 1])).frame
        row = {"phase": args.phase, "k": k, "epsilon": eps, "seed": seed, "fit_s": round(fit_s, 1),
               "epsilon_patient_level": gen.ledger_.epsilon(), "delta": gen.ledger_.delta,
               "max_encounters_per_patient": max_m, **row_extra, "params": params,
               "epsilon_row_level_run_for_that_patient": row_level_claim(gen.ledger_, max_m),
               "kept_codes": {c: [x for x in narrowed[c].categories if "-" not in x][:40]
                              for c in ("diag_1", "diag_2", "diag_3")}}
        if args.phase == "tune":  # score on the validation (holdout) split only
            train, holdout = recode(splits.train, narrowed), recode(splits.holdout, narrowed)
            res, _ = any_utility_table(train=train, synthetic=synthetic, test=holdout, schema=narrowed,
                                       target="readmitted", seed=seed, grids=GRIDS["readmitted"])
            row["validation_macro_auroc"] = {s: res[s]["selected"]["macro_auroc"] for s in ("tstr", "trtr")}
            print(json.dumps({k_: row[k_] for k_ in ("k", "epsilon", "fit_s", "validation_macro_auroc")}), flush=True)
        else:
            train_e, test_e, syn_e = (recode(f, eval_schema) for f in (splits.train, splits.test, synthetic))
            for target in ("readmitted", "time_in_hospital"):
                if target not in trtr_cache:  # the real reference is the same for every cell: fit it once
                    trtr_cache[target] = ({"selected": fit_one(train_e, eval_schema, target, encoders[target], seed=0)}
                                          if args.models == "gb" else
                                          fit_models(train_e, eval_schema, target, encoders[target], seed=0, folds=3,
                                                     grids=GRIDS[target], role="train"))
                tstr = ({"selected": fit_one(syn_e, eval_schema, target, encoders[target], seed=seed)}
                        if args.models == "gb" else
                        fit_models(syn_e, eval_schema, target, encoders[target], seed=seed, folds=3,
                                   grids=GRIDS[target], role="synthetic"))
                models = {"tstr": tstr, "trtr": trtr_cache[target]}
                scores = {side: score_models({"selected": m["selected"]}, test_e, eval_schema, target)["selected"]
                          for side, m in models.items()}
                keys = (("family", "macro_auroc", "balanced_accuracy", "accuracy", "recall_per_class")
                        if target == "readmitted" else ("family", "r2", "mae"))
                row[target] = {side: {key: scores[side].get(key) for key in keys} for side in scores}
                sub = subgroup_report(train=train_e, synthetic=syn_e, schema=eval_schema, test=test_e,
                                      models={side: m["selected"] for side, m in models.items()}, target=target,
                                      config={"columns": SENSITIVE, "intersections": False, "min_size": 30})
                row[f"subgroups_{target}"] = {key: sub.get(key) for key in
                                              ("utility_gap", "balanced_accuracy_gap", "mae_gap") if key in sub}
            frng = np.random.default_rng(seed)
            row["fidelity"] = {
                "column_shapes": ColumnShapes().compare(train_e, syn_e, eval_schema, rng=frng).value,
                "association": AssociationDifference().compare(train_e, syn_e, eval_schema, rng=frng).value,
                "detection_auroc": DetectionAUROC(max_rows=3000).compare(train_e, syn_e, eval_schema, rng=frng).value}
            row["representation"] = representation(train_e, syn_e)
            print(json.dumps({k_: row[k_] for k_ in ("k", "epsilon", "seed", "fit_s", "epsilon_patient_level",
                                                      "epsilon_row_level_run_for_that_patient", "readmitted",
                                                      "time_in_hospital", "fidelity")}), flush=True)
        rows.append(row)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1, default=str))


def _mean_sd(values) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    return f"{np.mean(vals):.3f}" + (f" ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else "")


def render(rows: list[dict]) -> str:
    """The markdown table of the main-phase rows (mean ± sd over the seeds that ran)."""
    main_rows = [r for r in rows if r["phase"] == "main"]
    lines = ["| k | epsilon (patient) | seeds | readmitted macro AUROC TSTR | TRTR | ratio | balanced acc. TSTR | TRTR"
             " | time_in_hospital R^2 TSTR | TRTR | MAE TSTR | TRTR | column shapes | association | detection AUROC"
             " | epsilon a row-level run gives the busiest patient |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (k, eps) in sorted({(r["k"], r["epsilon"]) for r in main_rows}):
        cell = [r for r in main_rows if r["k"] == k and r["epsilon"] == eps]
        get = lambda f: [f(r) for r in cell]  # noqa: E731
        ratio = get(lambda r: r["readmitted"]["tstr"]["macro_auroc"] / r["readmitted"]["trtr"]["macro_auroc"])
        lines.append("| " + " | ".join([
            str(k), f"{eps:g}", ",".join(str(r["seed"]) for r in cell),
            _mean_sd(get(lambda r: r["readmitted"]["tstr"]["macro_auroc"])),
            _mean_sd(get(lambda r: r["readmitted"]["trtr"]["macro_auroc"])), _mean_sd(ratio),
            _mean_sd(get(lambda r: r["readmitted"]["tstr"]["balanced_accuracy"])),
            _mean_sd(get(lambda r: r["readmitted"]["trtr"]["balanced_accuracy"])),
            _mean_sd(get(lambda r: r["time_in_hospital"]["tstr"]["r2"])),
            _mean_sd(get(lambda r: r["time_in_hospital"]["trtr"]["r2"])),
            _mean_sd(get(lambda r: r["time_in_hospital"]["tstr"]["mae"])),
            _mean_sd(get(lambda r: r["time_in_hospital"]["trtr"]["mae"])),
            _mean_sd(get(lambda r: r["fidelity"]["column_shapes"])),
            _mean_sd(get(lambda r: r["fidelity"]["association"])),
            _mean_sd(get(lambda r: r["fidelity"]["detection_auroc"])),
            _mean_sd(get(lambda r: r["epsilon_row_level_run_for_that_patient"]))]) + " |")
    return "\n".join(lines) + "\n"


def claim_table(*, delta: float, max_m: int, epsilons=(1.0, 4.0, 8.0)) -> str:
    """What a ROW-level run at each epsilon gives a patient with m encounters. Every aim release
    (Gaussian at sample rate 1, exponential mechanism) is a zCDP spend, so a run at epsilon spends
    rho(epsilon) whatever the data, and a patient moving m rows is covered at rho x m^2 (group
    privacy): computed from the accountant, no run needed. The patient-level run claims epsilon for
    every patient (at most k rows each)."""
    from dpsynth.generators.tabular.marginal.measure import available_rho

    lines = ["| claimed epsilon | rho | patient with 2 encounters | 5 | " + f"{max_m} (the most in the train split) |",
             "|---|---|---|---|---|"]
    for eps in epsilons:
        rho = available_rho(Ledger(delta=delta, target_epsilon=eps), eps)
        group = [compose([], zcdp_rho=rho * m * m, delta=delta, accountant="rdp") for m in (2, 5, max_m)]
        lines.append(f"| {eps:g} | {rho:.4g} | " + " | ".join(f"{g:.1f}" for g in group) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=["tune", "main"], default="main")
    parser.add_argument("--k", type=int, default=1, help="rows per patient (main phase)")
    parser.add_argument("--tune-k", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--tune-epsilon", type=float, default=4.0)
    parser.add_argument("--epsilons", type=float, nargs="+", default=[4.0, 1.0, 8.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-iterations", type=int, default=None,
                        help="aim rounds T (default: the --config's, else aim's own 16 x columns)")
    parser.add_argument("--config", default=None, help="run config YAML whose 'params' are aim's (e.g."
                        " configs/aim_diabetes130_encounters.yaml); --max-iterations overrides its rounds")
    parser.add_argument("--models", choices=["cv", "gb"], default="cv",
                        help="downstream models: family chosen by 3-fold CV on the training side (cv), or one"
                             " gradient-boosting setting without CV (gb: run time on shared CPUs)")
    parser.add_argument("--out", default=str(RESULTS / "ehr_diabetes130.json"))
    parser.add_argument("--resume", action="store_true", help="keep the cells already in --out")
    parser.add_argument("--render", action="store_true", help="print the markdown table of --out and exit")
    args = parser.parse_args()
    if args.render:
        rows = json.loads(Path(args.out).read_text())["rows"]
        print(render(rows), end="")
        if rows:
            print()
            print(claim_table(delta=rows[0]["delta"], max_m=rows[0]["max_encounters_per_patient"]), end="")
        return
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    run_phase(args)


if __name__ == "__main__":
    main()
