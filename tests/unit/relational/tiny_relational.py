"""Tiny related tables made in the test: patients -> visits (a sequence) -> diagnosis codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from dpsynth.data.icd9 import chapter_buckets

CODES = ["0389", "4019", "V4581", "25000", "E8781", "99591", "486"]
NEXT_TYPE = {"A": "B", "B": "A", "C": "C"}  # a deterministic first-order transition


def tiny_schema(**table_overrides) -> dict:
    tables = [
        {"name": "patients", "file": "patients.csv", "primary_key": "pid",
         "derive": [{"name": "age", "op": "years_before_anchor", "column": "birth"}],
         "columns": [{"name": "sex", "kind": "categorical", "categories": ["F", "M"]},
                     {"name": "age", "kind": "integer", "low": 0, "high": 100}]},
        {"name": "visits", "file": "visits.csv", "primary_key": "vid", "parent": "patients", "foreign_key": "pid",
         "max_per_parent": 3, "order_by": "start", "condition_on": ["sex"],
         "sequence": {"gap": "gap_days", "offset": "offset_days", "previous": ["vtype"]},
         "derive": [{"name": "gap_days", "op": "days_since_previous", "column": "start"},
                    {"name": "los", "op": "days_between", "start": "start", "end": "end"}],
         "columns": [{"name": "vtype", "kind": "categorical", "categories": ["A", "B", "C"]},
                     {"name": "gap_days", "kind": "continuous", "low": 0, "high": 400},
                     {"name": "los", "kind": "continuous", "low": 0, "high": 30}]},
        {"name": "codes", "file": "codes.csv", "parent": "visits", "foreign_key": "vid", "max_per_parent": 4,
         "order_by": "seq", "position": "seq", "condition_on": ["vtype"],
         "derive": [{"name": "chapter", "op": "icd9_chapter", "column": "icd", "kind": "diagnosis"}],
         "columns": [{"name": "chapter", "kind": "categorical", "nullable": True,
                      "categories": list(chapter_buckets())}]},
    ]
    for t in tables:
        t.update(table_overrides.get(t["name"], {}))
    return {"name": "tiny", "anchor": {"table": "visits", "column": "start"}, "tables": tables}


def make_tiny(folder: Path, *, patients: int = 40, seed: int = 0, schema: dict | None = None) -> Path:
    """Write patients.csv, visits.csv, codes.csv and schema.yaml to ``folder``; return the schema path."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    pats, visits, codes = [], [], []
    vid = 5000
    for i in range(patients):
        pid = 1000 + i
        sex = "F" if rng.random() < 0.5 else "M"
        first = pd.Timestamp("2100-01-01") + pd.Timedelta(days=int(rng.integers(0, 2000)))
        pats.append({"pid": pid, "sex": sex, "birth": first - pd.Timedelta(days=int(rng.integers(20, 90) * 365)),
                     "note": "ignored"})
        n_visits = int(rng.choice([1, 2, 3, 4], p=[0.2, 0.4, 0.3, 0.1]))
        vtype = "A" if sex == "F" else rng.choice(["A", "C"])
        start = first
        for _ in range(n_visits):
            vid += 1
            end = start + pd.Timedelta(days=float(rng.uniform(0.5, 10)))
            visits.append({"vid": vid, "pid": pid, "start": start, "end": end, "vtype": vtype})
            for s in range(int(rng.integers(0, 6))):
                codes.append({"vid": vid, "seq": s + 1, "icd": str(rng.choice(CODES))})
            start = end + pd.Timedelta(days=float(rng.uniform(10, 200)))
            vtype = NEXT_TYPE[vtype]
    # rows in a scrambled order: the loader must sort by order_by
    pd.DataFrame(pats).to_csv(folder / "patients.csv", index=False)
    pd.DataFrame(visits).sample(frac=1.0, random_state=1).to_csv(folder / "visits.csv", index=False)
    pd.DataFrame(codes).sample(frac=1.0, random_state=2).to_csv(folder / "codes.csv", index=False)
    path = folder / "schema.yaml"
    path.write_text(yaml.safe_dump(schema or tiny_schema(), sort_keys=False))
    return path
