"""Bring-your-own-table benchmark (issue 17): public clinical tables go through the two paths a
new user has, with the CLI only and no hand-fixing of the data:

  schema path:  dpsynth schema draft data.csv -o s.yaml -> scripted edit from the documentation
                (bounds, categories, target, sensitive flags, reviewed: true) -> train -> generate
                -> evaluate --quick (TSTR vs TRTR AUROC on the real test split)
  infer path:   dpsynth train --infer-schema --target T --sensitive ... -> generate -> evaluate --quick

Tables (read from ../shared/data, skipped with a message when absent):
  diabetes130   Diabetes 130-US hospitals, first encounter per patient, uniform subsample of
                --diabetes-rows patients, the 17 columns of evaluation/schemas/diabetes130.yaml
  heart_failure Heart failure clinical records (299 rows, 13 columns), target DEATH_EVENT
  uci_heart     UCI Heart Disease, all four sites (920 rows, 13 features + site), target
                disease = (num > 0); the UCI files have no header and mark missing values with '?':
                they are written to one CSV with a header, blanks for '?', the binary outcome in
                place of its 0-4 grade 'num' (not kept: it would leak the target); nothing else changed

Run:  OMP_NUM_THREADS=1 python evaluation/bench_own_table.py --out /tmp/own_bench
Prints one line per (table, path): rows, epsilon spent, TSTR AUROC, TRTR AUROC, ratio, seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("DPSYNTH_SHARED_DATA", HERE.parent.parent / "shared" / "data")) / "ehr"  # env var: worktrees

UCI_COLUMNS = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak", "slope",
               "ca", "thal", "num"]

# Public facts per table, as a user copies them from the data dictionary / paper (not from the data).
DOCUMENTED = {
    "heart_failure": {
        "target": "DEATH_EVENT", "sensitive": ["age", "sex"],
        "columns": {
            "age": {"kind": "continuous", "low": 40, "high": 95, "clip": True},
            "anaemia": {"kind": "binary"}, "diabetes": {"kind": "binary"}, "high_blood_pressure": {"kind": "binary"},
            "sex": {"kind": "binary"}, "smoking": {"kind": "binary"}, "DEATH_EVENT": {"kind": "binary"},
            "creatinine_phosphokinase": {"kind": "integer", "low": 0, "high": 10000, "clip": True},
            "ejection_fraction": {"kind": "integer", "low": 10, "high": 80, "clip": True},
            "platelets": {"kind": "continuous", "low": 20000, "high": 900000, "clip": True},
            "serum_creatinine": {"kind": "continuous", "low": 0.3, "high": 10, "clip": True},
            "serum_sodium": {"kind": "integer", "low": 110, "high": 150, "clip": True},
            "time": {"kind": "integer", "low": 0, "high": 300, "description": "follow-up period (days)"},
        },
    },
    "uci_heart": {
        "target": "disease", "sensitive": ["age", "sex", "site"],
        "columns": {
            "age": {"kind": "integer", "low": 20, "high": 90, "clip": True},
            "sex": {"kind": "binary"},
            "cp": {"kind": "categorical", "categories": [1, 2, 3, 4], "description": "chest pain type"},
            "trestbps": {"kind": "integer", "low": 0, "high": 220, "nullable": True, "clip": True},
            "chol": {"kind": "integer", "low": 0, "high": 650, "nullable": True, "clip": True, "atoms": [0],
                     "description": "serum cholesterol mg/dl (0 = not measured at some sites)"},
            "fbs": {"kind": "binary", "nullable": True},
            "restecg": {"kind": "categorical", "categories": [0, 1, 2], "nullable": True},
            "thalach": {"kind": "integer", "low": 60, "high": 220, "nullable": True, "clip": True},
            "exang": {"kind": "binary", "nullable": True},
            "oldpeak": {"kind": "continuous", "low": -3, "high": 7, "nullable": True, "clip": True, "atoms": [0]},
            "slope": {"kind": "categorical", "categories": [1, 2, 3], "nullable": True},
            "ca": {"kind": "categorical", "categories": [0, 1, 2, 3], "nullable": True},
            "thal": {"kind": "categorical", "categories": [3, 6, 7], "nullable": True},
            "site": {"kind": "categorical", "categories": ["cleveland", "hungarian", "switzerland", "va"]},
            "disease": {"kind": "binary", "description": "angiographic disease (num > 0)"},
        },
    },
}


def write_tables(out: Path, diabetes_rows: int, seed: int) -> dict[str, Path]:
    paths = {}
    zpath = SHARED / "diabetes130.zip"
    if zpath.exists():
        schema = yaml.safe_load((HERE / "schemas" / "diabetes130.yaml").read_text())
        with zipfile.ZipFile(zpath) as z:
            raw = pd.read_csv(z.open("dataset_diabetes/diabetic_data.csv"), low_memory=False)
        raw = raw.sort_values("encounter_id").drop_duplicates("patient_nbr", keep="first")  # one row per patient
        raw["readmitted30"] = (raw["readmitted"] == "<30").astype(int)
        raw = raw[[c["name"] for c in schema["columns"]]]
        if diabetes_rows and len(raw) > diabetes_rows:
            raw = raw.iloc[np.sort(np.random.default_rng(seed).choice(len(raw), diabetes_rows, replace=False))]
        paths["diabetes130"] = out / "diabetes130.csv"
        raw.to_csv(paths["diabetes130"], index=False)
    else:
        print(f"skip diabetes130: {zpath} is absent")
    hf = SHARED / "heart_failure.csv"
    if hf.exists():
        paths["heart_failure"] = hf
    else:
        print(f"skip heart_failure: {hf} is absent")
    uci = SHARED / "uci_heart_disease"
    if uci.exists():
        parts = []
        for site in ("cleveland", "hungarian", "switzerland", "va"):
            part = pd.read_csv(uci / f"processed.{site}.data", header=None, names=UCI_COLUMNS, na_values="?")
            parts.append(part.assign(site=site))
        frame = pd.concat(parts, ignore_index=True)
        frame["disease"] = (frame["num"] > 0).astype(int)  # the outcome; 'num' (its 0-4 grade) is not kept
        frame = frame.drop(columns="num")
        paths["uci_heart"] = out / "uci_heart.csv"
        frame.to_csv(paths["uci_heart"], index=False)
    else:
        print(f"skip uci_heart: {uci} is absent")
    return paths


def cli(*args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dpsynth.cli", *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"dpsynth {' '.join(map(str, args[:3]))}: {proc.stderr.strip().splitlines()[-1:]}")
    return proc


def edit_draft(draft: Path, name: str) -> None:
    """The scripted review: fill the draft's TODOs with documented facts, set reviewed: true."""
    raw = yaml.safe_load(draft.read_text())
    if name == "diabetes130":
        documented = yaml.safe_load((HERE / "schemas" / "diabetes130.yaml").read_text())
        facts = {"target": documented["target"], "drop": [],
                 "columns": {c["name"]: {k: v for k, v in c.items() if k != "name"} for c in documented["columns"]}}
        for name_ in ("num_procedures", "number_outpatient", "number_emergency", "number_inpatient"):
            facts["columns"][name_]["atoms"] = [0]  # 0 = "none": a documented value most patients have
    else:
        facts = DOCUMENTED[name]
    raw["target"] = facts["target"]
    raw["drop"] = list(facts.get("drop", []))
    raw["reviewed"] = True
    raw["description"] = f"{name}: documented public schema"
    cols = []
    for col in raw["columns"]:
        if col["name"] in raw["drop"]:
            continue
        fact = facts["columns"][col["name"]]
        new = {"name": col["name"], **fact}
        new.setdefault("nullable", False)
        new["sensitive"] = bool(fact.get("sensitive", col["name"] in facts.get("sensitive", [])))
        if new["kind"] == "binary":
            new.setdefault("categories", [0, 1])
        cols.append(new)
    raw["columns"] = cols
    draft.write_text(yaml.safe_dump(raw, sort_keys=False))


def run_path(name: str, data: Path, path: str, out: Path, *, epsilon: float, generator: str, seed: int,
             sensitive: str, target: str, preprocessing_share: float | None = None) -> dict:
    work = out / f"{name}_{path}_eps{epsilon:g}"
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    common = ["--generator", generator, "--epsilon", epsilon, "--seed", seed, "--overwrite", "--out", work / "run"]
    if path == "schema":
        cli("schema", "draft", data, "-o", work / "schema.yaml", "--overwrite")
        edit_draft(work / "schema.yaml", name)
        proc = cli("train", "--data", data, "--schema", work / "schema.yaml", *common, check=False)
    else:
        extra = []
        if preprocessing_share is not None:
            (work / "config.yaml").write_text(yaml.safe_dump(
                {"generator": generator, "privacy": {"preprocessing_share": preprocessing_share}}))
            extra = ["--config", work / "config.yaml"]
        proc = cli("train", "--data", data, "--infer-schema", "--target", target, "--sensitive", sensitive, *common,
                   *extra, check=False)
    if proc.returncode != 0:
        return {"table": name, "path": path, "epsilon": epsilon, "error": proc.stderr.strip().splitlines()[-1]}
    n_train = json.loads((work / "run" / "run.json").read_text())["n_train"]
    eps = json.loads((work / "run" / "ledger.json").read_text())
    cli("generate", "--model", work / "run", "-n", n_train, "-o", work / "synth.csv", "--seed", seed)
    ev = json.loads(cli("evaluate", "--run", work / "run", "--synthetic", work / "synth.csv", "--quick",
                        "--json").stdout)
    b = ev["utility"]["breakdown"]
    return {"table": name, "path": path, "epsilon": epsilon, "n_train": n_train,
            "preprocessing_share": preprocessing_share if path == "infer" else None,
            "epsilon_spent": eps.get("epsilon"), "tstr_auroc": b["tstr"]["selected"]["auroc"],
            "trtr_auroc": b["trtr"]["selected"]["auroc"], "ratio": ev["utility"]["value"],
            "ks_mean": ev["fidelity"]["breakdown"]["mean_ks"], "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/dpsynth_own_table"))
    parser.add_argument("--tables", nargs="+", default=["diabetes130", "heart_failure", "uci_heart"])
    parser.add_argument("--paths", nargs="+", default=["schema", "infer"])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0])
    parser.add_argument("--generator", default="aim")
    parser.add_argument("--diabetes-rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preprocessing-share", type=float, default=None,
                        help="infer path: share of the budget (zCDP rho) for the DP schema (default 0.05)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tables = write_tables(args.out, args.diabetes_rows, args.seed)
    setup = {"diabetes130": ("readmitted30", "race,gender,age"), "heart_failure": ("DEATH_EVENT", "age,sex"),
             "uci_heart": ("disease", "age,sex,site")}
    rows = []
    for name in args.tables:
        if name not in tables:
            continue
        for eps in args.epsilons:
            for path in args.paths:
                target, sensitive = setup[name]
                row = run_path(name, tables[name], path, args.out, epsilon=eps, generator=args.generator,
                               seed=args.seed, sensitive=sensitive, target=target,
                               preprocessing_share=args.preprocessing_share)
                rows.append(row)
                print(json.dumps(row), flush=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
