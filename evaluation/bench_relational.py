"""Related tables on the MIMIC-III demo: dpsynth (one patient-level budget) vs SDV's HMA (non-private).

    python evaluation/bench_relational.py                       # aim, mst, independent x eps {1,4,10} x seeds 0..2 + HMA
    python evaluation/bench_relational.py --generators mst --epsilons 4 --seeds 0 --no-hma
    python evaluation/bench_relational.py --data ../shared/data/ehr/mimic3_demo --out evaluation/results/ehr_mimic3_demo

Data: MIMIC-III Clinical Database Demo v1.4 (100 patients), read with the shipped relational
schema ``configs/relational_mimic3_demo.yaml`` (patients -> admissions -> ICU stays, ICD-9
diagnosis and procedure chapters; dates as offsets from the first admission; at most 3
admissions per patient, 2 ICU stays, 12 diagnoses and 6 procedures per admission).
Split by patient with ``SplitSpec(seed=0)``: 60 training patients; every metric compares the
synthetic tables with the training patients' tables (bounded, derived). With 100 patients this
is a functional and integrity check, not a utility claim.

dpsynth: one generator per table under ONE patient-level budget (shares 0.2 / 0.3 / 0.15 /
0.2 / 0.15; a table with up to m rows per patient is charged with sensitivity m), sampled
with as many patients as the training split (60), seeds 0..2. Nothing is tuned: generator
defaults, the schema's bounds and shares were set before the first run.

SDV HMA (sdv 2.0, non-private, epsilon = infinity; it learns bounds and categories from the
data): the community HMASynthesizer refuses schemas deeper than 2 levels, so it is fitted on
the two depth-2 parts of the same tables: A = patients -> admissions and B = admissions ->
{icustays, diagnoses_icd, procedures_icd} (admissions with their own columns as B's root).
Metrics of a relationship come from the part that holds it, for dpsynth and HMA alike where
marked; HMA samples as many root rows as the training data holds (num_rows).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpsynth.data.relational import RelationalSchema  # noqa: E402
from dpsynth.data.splits import SplitSpec  # noqa: E402
from dpsynth.metrics.relational import evaluate_relational_tables  # noqa: E402
from dpsynth.privacy.budget import Budget  # noqa: E402
from dpsynth.relational.load import ORDER, UNIT, load_relational, split_relational  # noqa: E402
from dpsynth.relational.model import fit_relational  # noqa: E402
from dpsynth.relational.workflow import _quiet_accountant, _table_epsilon  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "configs" / "relational_mimic3_demo.yaml"
PART_A = ("patients", "admissions")
PART_B = ("admissions", "icustays", "diagnoses_icd", "procedures_icd")


def real_view(tables: dict[str, pd.DataFrame], schema: RelationalSchema) -> dict[str, pd.DataFrame]:
    """The real training tables in the shape dpsynth writes (keys, position, declared columns, offset)."""
    out = {}
    for t in schema.tables:
        frame = tables[t.name]
        cols = [c for c in (t.primary_key, t.foreign_key) if c is not None] + t.declared
        view = frame[cols].copy()
        if t.position is not None:
            view.insert(2 if t.primary_key else 1, t.position, frame[ORDER].astype(int))
        if t.sequence is not None and t.sequence.offset is not None:
            view[t.sequence.offset] = frame.groupby(t.foreign_key, sort=False)[t.sequence.gap].cumsum()
        for c in t.columns:
            view[c.name] = view[c.name].astype(float) if c.is_numeric else \
                view[c.name].astype(object).map(lambda v: None if pd.isna(v) else str(v))
        out[t.name] = view
    return out


def sub_schema(schema: RelationalSchema, names: tuple[str, ...]) -> RelationalSchema:
    """The tables ``names`` as a schema of their own; the first becomes the root."""
    raw = schema.to_dict()
    tables = []
    for t in raw["tables"]:
        if t["name"] not in names:
            continue
        t = dict(t)
        if t["name"] == names[0]:
            for key in ("parent", "foreign_key", "max_per_parent", "condition_on", "sequence", "position"):
                t.pop(key, None)
        t.pop("budget_share", None)
        tables.append(t)
    return RelationalSchema.from_dict({**raw, "tables": tables})


def with_model_rows(real_tables: dict[str, pd.DataFrame], names) -> dict[str, pd.DataFrame]:
    return {n: real_tables[n] for n in names}


def summarise(results: dict) -> dict:
    cpp = results["children_per_parent"]["tables"]
    seq = results["sequences"]["tables"].get("admissions", {})
    cols = results["columns"]
    chapters = results["code_chapters"]["columns"]
    return {
        "integrity": results["referential_integrity"]["value"],
        "key_overlap": results["key_overlap_with_real"],
        **{f"cpp_{k}": v["tvd"] for k, v in cpp.items()},
        **{f"mean_children_{k}": v["mean_synthetic"] for k, v in cpp.items()},
        "seq_length_tvd": seq.get("length_tvd"),
        "transition_distance": (seq.get("transitions", {}).get("admission_type") or {}).get("distance"),
        "gap_ks": seq.get("gap_ks"),
        **{f"chapter_{k.split('.')[0]}": v["tvd"] for k, v in chapters.items()},
        "mean_column_tvd": float(np.mean([v["tvd"] for v in cols.values() if "tvd" in v])),
        "mean_column_ks": float(np.mean([v["ks"] for v in cols.values() if "ks" in v])),
        "rows": {k: v["synthetic"] for k, v in results["rows"].items()},
    }


def run_dpsynth(splits, schema, generator: str, epsilon: float, seed: int, *, reference=None,
                reference_schema=None, params: dict | None = None) -> tuple[dict, dict]:
    start = time.perf_counter()
    with _quiet_accountant():
        model = fit_relational(splits.train, generator=generator, params=params or {}, budget=Budget(epsilon=epsilon),
                               rng=np.random.default_rng(seed))
        table_eps = {t: _table_epsilon(model.ledger, t) for t in schema.names}
        ledger_eps = model.ledger.epsilon()
    fit_s = time.perf_counter() - start
    out = model.output_tables(model.sample(splits.train.n_units, rng=np.random.default_rng(seed + 1000)))
    results = evaluate_relational_tables(real=splits.train.tables if reference is None else reference, synthetic=out,
                                         schema=schema if reference_schema is None else reference_schema)
    record = {"method": f"dpsynth:{generator}", "epsilon": epsilon, "seed": seed, "ledger_epsilon": ledger_eps,
              "table_epsilon": table_eps, "fit_s": round(fit_s, 2),
              "budget_plan": [p.to_dict() for p in model.plans], **summarise(results)}
    return record, results


def run_hma(splits, schema, seed: int) -> tuple[dict, dict]:
    from sdv.metadata import Metadata
    from sdv.multi_table import HMASynthesizer

    real = real_view(splits.train.tables, schema)
    record = {"method": "sdv:hma", "epsilon": math.inf, "seed": seed, "ledger_epsilon": math.inf, "fit_s": 0.0}
    parts = {}
    for label, names in (("A", PART_A), ("B", PART_B)):
        part_schema = sub_schema(schema, names)
        data = {n: real[n] for n in names}
        metadata = Metadata.detect_from_dataframes(data)
        for t in part_schema.tables:  # column kinds from the schema; keys as ids
            for c in t.columns:
                metadata.update_column(table_name=t.name, column_name=c.name,
                                       sdtype="numerical" if c.is_numeric else "categorical")
            if t.position is not None:
                metadata.update_column(table_name=t.name, column_name=t.position, sdtype="numerical")
            if t.sequence is not None and t.sequence.offset is not None:
                metadata.update_column(table_name=t.name, column_name=t.sequence.offset, sdtype="numerical")
        np.random.seed(seed)  # SDV draws from numpy's and torch's global generators (peer code only)
        import torch

        torch.manual_seed(seed)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            synth = HMASynthesizer(metadata)
            synth.fit(data)
            syn = synth.sample(num_rows=len(data[names[0]]), main_table_name=names[0])
        record["fit_s"] += round(time.perf_counter() - start, 2)
        real_part = with_model_rows(splits.train.tables, names)
        parts[label] = evaluate_relational_tables(real=real_part, synthetic=syn, schema=part_schema)
    a, b = parts["A"], parts["B"]
    merged = {
        "rows": {**a["rows"], **{k: v for k, v in b["rows"].items() if k != "admissions"}},
        "referential_integrity": {"value": min(a["referential_integrity"]["value"], b["referential_integrity"]["value"])},
        "key_overlap_with_real": a["key_overlap_with_real"] + b["key_overlap_with_real"],
        "children_per_parent": {"tables": {**a["children_per_parent"]["tables"], **b["children_per_parent"]["tables"]}},
        "sequences": a["sequences"],
        "code_chapters": b["code_chapters"],
        "columns": {**a["columns"], **{k: v for k, v in b["columns"].items() if not k.startswith("admissions.")}},
    }
    record.update(summarise(merged))
    return record, merged


def mean_sd(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def markdown(records: list[dict], detail: dict, args) -> str:
    lines = ["# Related tables: MIMIC-III demo (dpsynth under one patient-level budget vs SDV HMA)", "",
             "MIMIC-III Clinical Database Demo v1.4, 100 patients, split by patient (SplitSpec seed 0): 60 training"
             " patients; synthetic = 60 patients. Schema `configs/relational_mimic3_demo.yaml` (public: keys, bounds k"
             " = 3 admissions per patient, 2 ICU stays / 12 diagnoses / 6 procedures per admission, ICD-9 chapters,"
             " dates as offsets from the first admission). **A functional and integrity check, not a utility claim.**"
             " Distances compare the synthetic tables with the 60 training patients' (bounded) tables. Mean ± sd over"
             f" seeds {', '.join(map(str, args.seeds))}. Nothing tuned (generator defaults).", "",
             f"Command: `python evaluation/bench_relational.py {' '.join(sys.argv[1:])}`".rstrip(), "",
             "| method | epsilon | ledger epsilon (max) | integrity | keys equal to a real key | children/parent TVD:"
             " admissions / icustays / diagnoses / procedures | sequence length TVD | transition distance"
             " (admission_type) | diagnosis chapters TVD | procedure chapters TVD | mean column TVD | mean column KS |"
             " fit s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict = {}
    for r in records:
        groups.setdefault((r["method"], r["epsilon"]), []).append(r)
    for (method, eps), rs in groups.items():
        eps_text = "inf (non-private)" if math.isinf(eps) else f"{eps:g}"
        led = max(r["ledger_epsilon"] for r in rs)
        led_text = "inf" if math.isinf(led) else f"{led:.4f}"
        cpp = " / ".join(mean_sd([r.get(f"cpp_{t}") for r in rs]) for t in
                         ("admissions", "icustays", "diagnoses_icd", "procedures_icd"))
        lines.append(
            f"| {method} | {eps_text} | {led_text} | {mean_sd([r['integrity'] for r in rs])} |"
            f" {sum(r['key_overlap'] for r in rs)} | {cpp} | {mean_sd([r['seq_length_tvd'] for r in rs])} |"
            f" {mean_sd([r['transition_distance'] for r in rs])} | {mean_sd([r.get('chapter_diagnoses_icd') for r in rs])} |"
            f" {mean_sd([r.get('chapter_procedures_icd') for r in rs])} | {mean_sd([r['mean_column_tvd'] for r in rs])} |"
            f" {mean_sd([r['mean_column_ks'] for r in rs])} | {statistics.mean(r['fit_s'] for r in rs):.1f} |")
    lines += ["", "Integrity: the minimum over tables of the share of foreign keys that resolve to a parent row and"
              " of unique primary keys. TVD: total variation distance (0 = identical). Transition distance: real-"
              "frequency-weighted TVD between the rows of the real and synthetic first-order transition matrices of"
              " admission_type (START for a patient's first admission). HMA: fitted on A = patients -> admissions and"
              " B = admissions -> {icustays, diagnoses_icd, procedures_icd} (the SDV community HMA refuses deeper"
              " schemas); its admissions statistics come from A, its ICU / diagnosis / procedure statistics from B."
              " HMA samples with a fixed internal numpy seed (73251 in sdv/multi_table/base.py), so its runs for"
              " seeds 0, 1, 2 are identical (sd 0).",
              ""]
    if "budget" in detail:
        d = detail["budget"]
        lines += [f"## Every table within one budget ({d['method']}, epsilon {d['epsilon']:g}, seed 0)", "",
                  f"Ledger epsilon of all tables together: {d['ledger_epsilon']:.4f} (target {d['epsilon']:g},"
                  " delta 1e-05, RDP).", "",
                  "| table | budget share | rows per patient m | patient-level rho planned | epsilon of the table's"
                  " entries alone |", "|---|---|---|---|---|"]
        for p in d["budget_plan"]:
            lines.append(f"| {p['table']} | {p['budget_share']:g} | {p['rows_per_patient']} | {p['patient_rho']:.4f} |"
                         f" {d['table_epsilon'][p['table']]:.4f} |")
        lines.append("")
    for label, res in detail.get("distributions", {}).items():
        lines += [f"## Children per parent and code chapters: {label}", "",
                  "| relationship | k | real: share of parents with 0..k children | synthetic | mean real | mean"
                  " synthetic |", "|---|---|---|---|---|---|"]
        for name, c in res["children_per_parent"]["tables"].items():
            lines.append(f"| {c['parent']} -> {name} | {c['k']} | {' '.join(f'{x:.2f}' for x in c['real'])} |"
                         f" {' '.join(f'{x:.2f}' for x in c['synthetic'])} | {c['mean_real']:.2f} |"
                         f" {c['mean_synthetic']:.2f} |")
        for col, c in res["code_chapters"]["columns"].items():
            top = sorted(c["real"].items(), key=lambda kv: -kv[1])[:5]
            lines.append("")
            lines.append(f"{col} (TVD {c['tvd']:.3f}), the five most frequent real chapters, real vs synthetic share: "
                         + "; ".join(f"{k}: {v:.2f} vs {c['synthetic'].get(k, 0.0):.2f}" for k, v in top))
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ehr" / "mimic3_demo"))
    parser.add_argument("--generators", nargs="+", default=["aim", "mst", "independent"])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 4.0, 10.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--no-hma", action="store_true")
    parser.add_argument("--params", default="{}", help="generator hyper-parameters for every table, as JSON")
    parser.add_argument("--schema", default=str(SCHEMA), help="relational schema the generators are trained with")
    parser.add_argument("--reference-schema", default=None,
                        help="schema whose bounded training tables the metrics compare with (default: --schema);"
                             " pass the original schema to compare a tighter bounding rule on the same reference")
    parser.add_argument("--out", default=str(REPO / "evaluation" / "results" / "ehr_mimic3_demo"))
    args = parser.parse_args()
    data = Path(args.data)
    if not data.is_dir():
        raise SystemExit(f"MIMIC-III demo not found at {data} (../shared/data absent?)")
    schema = RelationalSchema.load(args.schema)
    splits = split_relational(load_relational(data, schema, rng=np.random.default_rng(0)), SplitSpec(seed=0))
    ref_schema = RelationalSchema.load(args.reference_schema or args.schema)
    reference = split_relational(load_relational(data, ref_schema, rng=np.random.default_rng(0)), SplitSpec(seed=0))
    if sorted(reference.train.tables[ref_schema.root.name][UNIT]) != sorted(splits.train.tables[schema.root.name][UNIT]):
        raise SystemExit("--reference-schema splits the patients differently")
    records, detail = [], {"distributions": {}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every run, so a long benchmark keeps what it has measured
        out.with_suffix(".json").write_text(json.dumps(records, indent=2, default=str))
        out.with_suffix(".md").write_text(markdown(records, detail, args))

    for generator in args.generators:
        for eps in args.epsilons:
            for seed in args.seeds:
                record, results = run_dpsynth(splits, schema, generator, eps, seed, reference=reference.train.tables,
                                              reference_schema=ref_schema, params=json.loads(args.params))
                records.append(record)
                print(json.dumps({k: v for k, v in record.items() if k not in ("budget_plan", "table_epsilon")}),
                      flush=True)
                if seed == args.seeds[0] and eps == 4.0:
                    if generator == args.generators[0]:
                        detail["budget"] = record
                    detail["distributions"][f"dpsynth:{generator}, epsilon 4, seed {seed}"] = results
                save()
    if not args.no_hma:
        for seed in args.seeds:
            record, results = run_hma(splits, schema, seed)
            records.append(record)
            print(json.dumps(record, default=str), flush=True)
            if seed == args.seeds[0]:
                detail["distributions"][f"sdv:hma (non-private), seed {seed}"] = results
            save()
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
