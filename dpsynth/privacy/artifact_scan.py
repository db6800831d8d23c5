"""Scan a saved run for training rows: a fitted generator's artifact must hold none.

Looks for every training row (a) as a contiguous run of values inside any saved tensor, both in
raw units and in the schema encoding, and (b) as comma-separated text in any text file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from safetensors.torch import load_file

from dpsynth.data.schema import Schema
from dpsynth.data.transform import TableTransformer

TEXT_SUFFIXES = {".json", ".yaml", ".yml", ".md", ".txt", ".csv"}


def _numeric_rows(frame: pd.DataFrame, schema: Schema) -> np.ndarray:
    cols = []
    for col in schema.columns:
        if col.is_numeric:
            cols.append(frame[col.name].to_numpy(dtype=float))
        else:
            cats = {str(c): i for i, c in enumerate(col.categories)}
            cols.append(np.array([float(cats.get(str(v), -1)) for v in frame[col.name]]))
    return np.stack(cols, axis=1)


def _hits_in_tensor(values: np.ndarray, rows: np.ndarray, *, dtype) -> int:
    flat = values.astype(dtype).ravel()
    d = rows.shape[1]
    if flat.size < d:
        return 0
    wanted = {r.tobytes() for r in rows.astype(dtype)}
    windows = sliding_window_view(flat, d)
    return sum(1 for w in windows if w.tobytes() in wanted)


def scan_run_for_rows(run_dir: str | Path, frame: pd.DataFrame, schema: Schema) -> list[str]:
    """Return findings (empty when no training row is found)."""
    run_dir = Path(run_dir)
    findings = []
    raw_rows = _numeric_rows(frame, schema)
    raw_rows = raw_rows[~np.isnan(raw_rows).any(axis=1)]
    encoded = TableTransformer(schema).encode(frame)
    for path in sorted(run_dir.glob("*.safetensors")):
        for name, tensor in load_file(str(path)).items():
            arr = tensor.float().numpy()
            for label, rows, dtype in (("raw", raw_rows, np.float64), ("encoded", encoded, np.float32)):
                hits = _hits_in_tensor(arr, rows, dtype=dtype)
                if hits:
                    findings.append(f"{path.name}:{name}: {hits} training row(s) found ({label} values)")
    row_texts = {",".join(str(v) for v in row) for row in frame.astype(str).itertuples(index=False)}
    for path in sorted(run_dir.iterdir()):
        if path.suffix in TEXT_SUFFIXES:
            text = path.read_text(errors="ignore")
            hits = sum(1 for row in row_texts if row in text)
            if hits:
                findings.append(f"{path.name}: {hits} training row(s) found as text")
    return findings
