"""Read user tables (CSV / Parquet) or embedded datasets, with one-line errors naming the file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dpsynth.data.embedded import EMBEDDED, get_embedded
from dpsynth.errors import DataError

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def read_table(path: str | Path, *, as_text: bool = False) -> pd.DataFrame:
    """Read a CSV or Parquet file; raise DataError naming the file when it cannot be read.

    ``as_text``: CSV cells stay strings (missing stays missing), so no column type is inferred
    from the whole file (the DP schema inference classifies each cell itself)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if not path.is_file():
        raise DataError(f"data path is not a file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str) if as_text else pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise DataError(f"{path}: unsupported table format '{suffix}' (use .csv or .parquet)")
    except DataError:
        raise
    except Exception as exc:  # pandas / pyarrow raise many types for corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot read table ({first})") from None
    if frame.empty or frame.shape[1] == 0:
        raise DataError(f"{path}: the table has no rows or no columns")
    return frame


def is_embedded(source: str) -> bool:
    return source in EMBEDDED


def load_source(source: str, *, as_text: bool = False) -> pd.DataFrame:
    """An embedded dataset name or a path to a CSV/Parquet file (``as_text``: see read_table)."""
    if is_embedded(source):
        return get_embedded(source).load()
    return read_table(source, as_text=as_text)
