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
import time
import zipfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
import os

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


def write_replicated(rows: int, out_dir: Path, *, threads: int = 2, memory_limit: str = "2GB") -> Path:
    import duckdb

    names = [c["name"] for c in yaml.safe_load(SCHEMA.read_text())["columns"]]
    out = out_dir / f"diabetes130_{rows}.parquet"
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
    con.execute(f"CREATE TABLE base2 AS SELECT row_number() OVER () - 1 AS idx, {', '.join(cols)} FROM base")
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
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print("schema:", bench_schema(args.out))
    for rows in args.rows:
        start = time.perf_counter()
        path = write_replicated(rows, args.out, threads=args.threads)
        print(f"{rows} rows -> {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.1f}s",
              flush=True)


if __name__ == "__main__":
    main()
