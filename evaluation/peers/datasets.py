"""Datasets, splits and the peer encoding, shared by bench_peers.py and run_dpsynth.py (dpsynth side).

Peer encoding (what a peer virtualenv reads from CSV): categorical/binary columns as strings of the
declared categories (missing -> "__NA__"); numeric columns as floats, a nullable numeric column gets a
companion "<name>__na" (0/1) column and its missing values are filled with the public midpoint.
`from_peer_frame` maps a peer's synthetic output back to the schema's types, clipping and counting
every out-of-domain value.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from dpsynth.data.embedded import get_embedded
from dpsynth.data.schema import Schema, _key
from dpsynth.data.splits import SplitSpec, split_table

HERE = Path(__file__).resolve().parent
EVAL = HERE.parent
DIABETES = EVAL.parent.parent / "shared" / "data" / "ehr" / "diabetes130.zip"
NA = "__NA__"


def load_dataset(name: str, *, diabetes_rows: int = 20_000):
    """(frame, schema, target, note) or None when the data file is absent."""
    if name == "actg175":
        ds = get_embedded("actg175")
        schema = ds.schema()
        return schema.prepare(ds.load()), schema, "cens", "ACTG 175 (embedded), all 2139 rows"
    if name == "diabetes130":
        if not DIABETES.is_file():
            print(f"skip diabetes130: {DIABETES} is absent")
            return None
        schema = Schema.load(EVAL / "schemas" / "diabetes130.yaml")
        with zipfile.ZipFile(DIABETES) as z:
            member = next(n for n in z.namelist() if n.endswith("diabetic_data.csv"))
            raw = pd.read_csv(z.open(member), low_memory=False)
        # privacy unit = patient: the first encounter of each patient (drops encounter_id/patient_nbr)
        raw = raw.sort_values("encounter_id").drop_duplicates("patient_nbr", keep="first")
        raw["readmitted30"] = (raw["readmitted"] == "<30").astype(int)
        frame = schema.prepare(raw[schema.names], source=str(DIABETES))
        note = f"Diabetes-130, first encounter per patient ({len(frame)} patients)"
        if diabetes_rows and len(frame) > diabetes_rows:  # uniform subsample, for run time only
            frame = frame.sample(n=diabetes_rows, random_state=0).reset_index(drop=True)
            note += f", uniform subsample of {diabetes_rows}"
        return frame, schema, "readmitted30", note
    raise SystemExit(f"unknown dataset {name!r} (actg175, diabetes130)")


def splits_for(frame):
    return split_table(frame, SplitSpec(seed=0))


def peer_spec(schema: Schema, target: str) -> dict:
    cols = []
    for c in schema.columns:
        if c.is_numeric:
            cols.append({"name": c.name, "kind": "numeric", "integer": c.kind == "integer",
                         "low": float(c.low), "high": float(c.high), "nullable": bool(c.nullable)})
            if c.nullable:
                cols.append({"name": c.name + "__na", "kind": "categorical", "categories": ["0", "1"],
                             "indicator_of": c.name})
        else:
            cats = [_key(v) for v in c.categories] + ([NA] if c.nullable else [])
            cols.append({"name": c.name, "kind": "categorical", "categories": cats})
    return {"schema": schema.name, "target": target, "columns": cols}


def to_peer_frame(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    out = {}
    for c in schema.columns:
        s = frame[c.name]
        if c.is_numeric:
            v = pd.to_numeric(s, errors="coerce").astype(float)
            if c.nullable:
                out[c.name + "__na"] = np.where(v.isna(), "1", "0")
                v = v.fillna((c.low + c.high) / 2.0)
            out[c.name] = v
        else:
            out[c.name] = [NA if (v is None or (isinstance(v, float) and np.isnan(v))) else _key(v) for v in s]
    order = []
    for c in schema.columns:
        order.append(c.name)
        if c.is_numeric and c.nullable:
            order.append(c.name + "__na")
    return pd.DataFrame(out, index=frame.index)[order]


def from_peer_frame(peer: pd.DataFrame, schema: Schema) -> tuple[pd.DataFrame, dict]:
    """Map a peer's output to the schema: clip numerics into [low, high], round integers, map
    categories by value; unknown categories (or missing non-nullable values) are replaced by the
    column's most frequent synthetic category. Returns (prepared frame, {column: n out of domain})."""
    counts: dict[str, int] = {}
    out = {}
    n = len(peer)
    for c in schema.columns:
        bad = 0
        if c.name not in peer.columns:
            raise ValueError(f"peer output lacks column {c.name!r}")
        if c.is_numeric:
            v = pd.to_numeric(peer[c.name], errors="coerce").to_numpy(dtype=float)
            nan = ~np.isfinite(v)
            if c.nullable and c.name + "__na" in peer.columns:
                ind = peer[c.name + "__na"].map(lambda x: _key(x) if pd.notna(x) else "0").to_numpy()
                missing = ind == "1"
            else:
                missing = np.zeros(n, bool)
            if nan.any() and not c.nullable:
                bad += int(nan.sum())
                v[nan] = (c.low + c.high) / 2.0
            elif nan.any():
                missing |= nan
            low_high = (v < c.low) | (v > c.high)
            bad += int((low_high & ~missing).sum())
            v = np.clip(v, c.low, c.high)
            if c.kind == "integer":
                v = np.round(v)
            v = v.astype(float)
            v[missing] = np.nan
            out[c.name] = v
        else:
            lookup = {_key(k): k for k in c.categories}
            keys = [NA if (x is None or (isinstance(x, float) and np.isnan(x))) else _key(x) for x in peer[c.name]]
            ok = [k in lookup or (k == NA and c.nullable) for k in keys]
            bad = int(n - sum(ok))
            if bad:
                good = [k for k, o in zip(keys, ok) if o]
                fill = pd.Series(good).mode().iloc[0] if good else _key(c.categories[0])
                keys = [k if o else fill for k, o in zip(keys, ok)]
            out[c.name] = [None if k == NA else lookup[k] for k in keys]
        if bad:
            counts[c.name] = bad
    frame = schema.prepare(pd.DataFrame(out), source="peer synthetic")
    return frame, counts


def schema_for(name: str) -> Schema:
    if name == "actg175":
        return get_embedded("actg175").schema()
    return Schema.load(EVAL / "schemas" / f"{name}.yaml")
