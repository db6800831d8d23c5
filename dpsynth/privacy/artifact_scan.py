"""Scan a saved run or release bundle for real data: a fitted generator's artifact must hold none.

- :func:`scan_run_for_rows` looks for every training row (a) as a contiguous run of values inside
  any saved tensor, both in raw units and in the schema encoding, and (b) as comma-separated text
  in any text file (reports included);
- :func:`scan_for_statistics` looks for exact real statistics (given as numbers) as whole tokens
  in every text file; :func:`real_statistics` lists the distinctive ones of a table (full-
  precision means and standard deviations of numeric columns);
- :func:`scan_for_images` looks for real images, exactly, in every image array and PNG.

Files under a ``skip`` prefix (e.g. the bundle's ``synthetic/`` folder, whose rows may equal a
training row by chance on a coarse domain) are left out and the caller says so.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from safetensors.torch import load_file

from dpsynth.data.schema import Schema
from dpsynth.data.transform import TableTransformer

TEXT_SUFFIXES = {".json", ".yaml", ".yml", ".md", ".txt", ".csv", ".html"}


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


def _walk(run_dir: Path, skip: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in run_dir.rglob("*")
                  if p.is_file() and not p.relative_to(run_dir).as_posix().startswith(tuple(skip)))


def scan_run_for_rows(run_dir: str | Path, frame: pd.DataFrame, schema: Schema, *,
                      skip: tuple[str, ...] = ()) -> list[str]:
    """Return findings (empty when no training row is found)."""
    run_dir = Path(run_dir)
    files = _walk(run_dir, skip)
    findings = []
    raw_rows = _numeric_rows(frame, schema)
    raw_rows = raw_rows[~np.isnan(raw_rows).any(axis=1)]
    encoded = TableTransformer(schema).encode(frame)
    for path in [p for p in files if p.suffix == ".safetensors"]:
        for name, tensor in load_file(str(path)).items():
            arr = tensor.float().numpy()
            for label, rows, dtype in (("raw", raw_rows, np.float64), ("encoded", encoded, np.float32)):
                hits = _hits_in_tensor(arr, rows, dtype=dtype)
                if hits:
                    findings.append(f"{path.relative_to(run_dir)}:{name}: {hits} training row(s) found ({label} values)")
    row_texts = {",".join(str(v) for v in row) for row in frame.astype(str).itertuples(index=False)}
    for path in files:
        if path.suffix in TEXT_SUFFIXES:
            text = path.read_text(errors="ignore")
            hits = sum(1 for row in row_texts if row in text)
            if hits:
                findings.append(f"{path.relative_to(run_dir)}: {hits} training row(s) found as text")
    return findings


def number_pattern(value: float | int) -> re.Pattern:
    """A number as a whole token: not preceded or followed by a digit, a point or a letter."""
    text = str(value) if isinstance(value, (int, np.integer)) else repr(float(value))
    return re.compile(r"(?<![\w.])" + re.escape(text) + r"(?![\w]|\.\d)")


def scan_for_statistics(directory: str | Path, statistics: dict[str, float | int], *,
                        skip: tuple[str, ...] = ("synthetic/",)) -> list[str]:
    """Findings for every statistic found as a whole token in a text file under ``directory``."""
    directory = Path(directory)
    patterns = {label: number_pattern(v) for label, v in statistics.items()}
    findings = []
    for path in _walk(directory, skip):
        if path.suffix not in TEXT_SUFFIXES:
            continue
        text = path.read_text(errors="ignore")
        for label, pattern in patterns.items():
            if pattern.search(text):
                findings.append(f"{path.relative_to(directory)}: real statistic {label} found")
    return findings


def real_statistics(frame: pd.DataFrame, schema: Schema) -> dict[str, float]:
    """Distinctive exact statistics of a real table: full-precision mean and standard deviation
    of each numeric column (what a leaky report or a data-dependent normaliser would copy)."""
    out = {}
    for col in schema.columns:
        if not col.is_numeric:
            continue
        values = pd.to_numeric(frame[col.name], errors="coerce").dropna().to_numpy(dtype=float)
        if len(values) < 2:
            continue
        for label, value in ((f"mean({col.name})", values.mean()), (f"std({col.name})", values.std(ddof=1))):
            if not float(value).is_integer():
                out[label] = float(value)
    return out


def _image_keys(images: np.ndarray) -> set[bytes]:
    q = np.rint((np.clip(np.asarray(images, dtype=np.float64), -1, 1) + 1) * 127.5).astype(np.uint8)
    return {img.tobytes() for img in q}


def scan_for_images(directory: str | Path, real_unit_images: np.ndarray, *, schema) -> list[str]:
    """Findings for every real image (given in [-1, 1], (N, C, H, W)) found exactly, after 8-bit
    quantisation, in an ``.npz`` array or a ``.png`` under ``directory``; a PNG grid is cut
    into tiles of the schema's size (2-pixel padding, as :func:`save_image_grid` writes)."""
    directory = Path(directory)
    wanted = _image_keys(real_unit_images)
    c, h, w = schema.shape
    findings = []
    for path in _walk(directory, ()):
        candidates = []
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                for key in npz.files:
                    arr = npz[key]
                    if arr.ndim >= 3 and arr.shape[1:3] == (h, w):
                        imgs = arr[:, None] if arr.ndim == 3 else np.transpose(arr, (0, 3, 1, 2))
                        candidates.append(schema.to_unit(imgs))
        elif path.suffix == ".png":
            from PIL import Image

            grid = np.asarray(Image.open(path))
            grid = grid[:, :, None] if grid.ndim == 2 else grid[:, :, :c]
            tiles = [grid[y:y + h, x:x + w] for y in range(2, grid.shape[0] - h + 1, h + 2)
                     for x in range(2, grid.shape[1] - w + 1, w + 2)]
            if tiles:
                candidates.append(np.stack(tiles).transpose(0, 3, 1, 2).astype(np.float64) / 127.5 - 1)
        hits = sum(len(_image_keys(cand) & wanted) for cand in candidates)
        if hits:
            findings.append(f"{path.relative_to(directory)}: {hits} real image(s) found")
    return findings
