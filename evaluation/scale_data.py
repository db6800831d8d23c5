"""Diabetes-130 replicated to N rows with fresh synthetic patient ids, written as Parquet by DuckDB.

The base table is the benchmark's usual one (bench_fairness.py): the first encounter of each
patient (71,518 rows), the schema's 17 columns, ``readmitted30 = readmitted == '<30'``, and
the value ``None`` of A1Cresult read as missing (as pandas reads it). Row i of the replicated
table is base row ``i mod 71,518`` with ``patient_id = i + 1``: every replica is a new patient.
DuckDB streams the cross join into the Parquet writer; nothing is held in memory.

    python evaluation/scale_data.py --rows 1000000 10000000 --out /tmp/scale
"""

from __future__ import annotations

import argparse
import os
import time
import zipfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent

# ../shared/data beside the repo (as tests/conftest.py), or DPSYNTH_SHARED_DATA
SHARED = Path(os.environ.get("DPSYNTH_SHARED_DATA", HERE.parent.parent / "shared" / "data"))
DIABETES = SHARED / "ehr" / "diabetes130.zip"
SCHEMA = HERE / "schemas" / "diabetes130.yaml"


def bench_schema(out_dir: Path) -> Path:
    """The diabetes130 schema with the synthetic id column listed under ``drop``."""
    raw = yaml.safe_load(SCHEMA.read_text())
    raw["drop"] = ["patient_id"]
    path = out_dir / "diabetes130_scale.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def base_csv(out_dir: Path) -> Path:
    path = out_dir / "diabetic_data.csv"
    if not path.exists():
        with zipfile.ZipFile(DIABETES) as z, open(path, "wb") as f:
            f.write(z.read("dataset_diabetes/diabetic_data.csv"))
    return path


SPLIT_FRACTIONS = (0.7, 0.15, 0.15)  # train / validation / test patients, with split_seed


def split_paths(out_dir: Path, split_seed: int) -> dict[str, Path]:
    """The real held-out rows of a split replicate: validation and test patients (real
    ``patient_nbr`` as ``patient_id``), and the training patients' ``patient_nbr`` list."""
    return {part: out_dir / f"diabetes130_split{split_seed}_{part}.parquet" for part in ("val", "test", "train_ids")}


def write_replicated(rows: int, out_dir: Path, *, threads: int = 2, memory_limit: str = "2GB",
                     split_seed: int | None = None) -> Path:
    """``split_seed`` None: every base patient is replicated. Otherwise the base patients are
    split 70 / 15 / 15 (seeded permutation) and only the TRAINING patients are replicated; the
    validation and test patients' real rows are written beside it (``split_paths``), so no
    evaluation patient is in the training file."""
    import duckdb

    names = [c["name"] for c in yaml.safe_load(SCHEMA.read_text())["columns"]]
    tag = "" if split_seed is None else f"split{split_seed}_train_"
    out = out_dir / f"diabetes130_{tag}{rows}.parquet"
    if out.exists():
        return out
    csv = base_csv(out_dir)
    con = duckdb.connect()
    con.execute(f"SET threads={threads}; SET memory_limit='{memory_limit}'; SET preserve_insertion_order=false")
    con.execute(f"SET temp_directory='{out_dir / 'duckdb_spill'}'")  # never the working directory
    con.execute(f"""
        CREATE TABLE base AS
        SELECT * EXCLUDE (rn) FROM (
            SELECT *, row_number() OVER (PARTITION BY patient_nbr ORDER BY encounter_id) AS rn
            FROM read_csv('{csv}', all_varchar=true, header=true)
        ) WHERE rn = 1 ORDER BY CAST(encounter_id AS BIGINT)""")
    n_base = con.execute("SELECT count(*) FROM base").fetchone()[0]
    cols = []
    for name in names:
        if name == "readmitted30":
            cols.append("CAST(readmitted = '<30' AS INTEGER) AS readmitted30")
        elif name == "A1Cresult":
            cols.append("NULLIF(A1Cresult, 'None') AS A1Cresult")
        elif name in ("admission_type_id", "time_in_hospital", "num_lab_procedures", "num_procedures",
                      "num_medications", "number_outpatient", "number_emergency", "number_inpatient",
                      "number_diagnoses"):
            cols.append(f"CAST({name} AS INTEGER) AS {name}")
        else:
            cols.append(name)
    if split_seed is not None:
        import numpy as np
        import pandas as pd

        ids = [r[0] for r in con.execute("SELECT patient_nbr FROM base").fetchall()]  # encounter order
        order = np.random.default_rng(split_seed).permutation(len(ids))
        n_val, n_test = (int(round(f * len(ids))) for f in SPLIT_FRACTIONS[1:])
        part = np.full(len(ids), "train", dtype=object)
        part[order[:n_test]] = "test"
        part[order[n_test:n_test + n_val]] = "val"
        parts = pd.DataFrame({"patient_nbr": ids, "part": part})  # noqa: F841  (read by DuckDB below)
        con.execute("CREATE TABLE split_parts AS SELECT * FROM parts")
        paths = split_paths(out_dir, split_seed)
        for name in ("val", "test"):
            con.execute(f"""COPY (SELECT CAST(b.patient_nbr AS BIGINT) AS patient_id, {', '.join(cols)}
                FROM base b JOIN split_parts p USING (patient_nbr) WHERE p.part = '{name}'
                ORDER BY CAST(b.encounter_id AS BIGINT)) TO '{paths[name]}' (FORMAT parquet)""")
        con.execute(f"""COPY (SELECT CAST(patient_nbr AS BIGINT) AS patient_nbr FROM split_parts WHERE part = 'train')
            TO '{paths['train_ids']}' (FORMAT parquet)""")
        con.execute("DELETE FROM base WHERE patient_nbr IN (SELECT patient_nbr FROM split_parts WHERE part <> 'train')")
        n_base = con.execute("SELECT count(*) FROM base").fetchone()[0]
    con.execute(f"CREATE TABLE base2 AS SELECT row_number() OVER (ORDER BY CAST(encounter_id AS BIGINT)) - 1 AS idx,"
                f" {', '.join(cols)} FROM base")
    reps = -(-rows // n_base)
    tmp = out.with_suffix(".parquet.tmp")
    con.execute(f"""
        COPY (
            SELECT r.range * {n_base} + b.idx + 1 AS patient_id, b.* EXCLUDE (idx)
            FROM range({reps}) r CROSS JOIN base2 b
            WHERE r.range * {n_base} + b.idx < {rows}
        ) TO '{tmp}' (FORMAT parquet, ROW_GROUP_SIZE 1000000)""")
    con.close()
    tmp.rename(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--split-seed", type=int, default=None,
                        help="replicate only the training patients of a 70/15/15 patient split (real val/test beside)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print("schema:", bench_schema(args.out))
    for rows in args.rows:
        start = time.perf_counter()
        path = write_replicated(rows, args.out, threads=args.threads, split_seed=args.split_seed)
        print(f"{rows} rows -> {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.1f}s",
              flush=True)


if __name__ == "__main__":
    main()
