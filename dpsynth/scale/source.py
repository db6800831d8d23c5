"""A table on disk to be counted by an engine, never loaded into pandas.

``TableSource`` is what a marginal generator's ``fit`` takes instead of a ``TableData`` when
the table is large: the file, its PUBLIC schema, the engine, and optionally the training rows
(a boolean mask over row positions, from the same seeded split as the in-memory path, so a
run trains on exactly the rows it would have trained on in pandas).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dpsynth.data.schema import Schema
from dpsynth.errors import DataError, DpsynthError

ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class TableSource:
    path: Path
    schema: Schema
    engine: str = "duckdb"
    threads: int = 2
    memory_limit: str = "2GB"
    train_mask: np.ndarray | None = field(default=None, repr=False)  # row position -> trained on

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise DpsynthError(f"unknown counting engine '{self.engine}' (choose {', '.join(ENGINES)})")
        path = Path(self.path)
        if not path.is_file():
            raise DataError(f"data file not found: {path}")
        if file_format(path) is None:
            raise DataError(f"{path}: unsupported table format '{path.suffix}' (use .csv or .parquet)")
        if self.schema.unit_column is not None:  # rows per patient are bounded (and split) only in memory
            raise DpsynthError(
                f"--engine {self.engine} counts one row per person, but schema '{self.schema.name}' names the"
                f" privacy unit column '{self.schema.unit_column}': use --engine numpy for patient-level DP")
        object.__setattr__(self, "path", path)

    @property
    def format(self) -> str:
        return file_format(self.path)


def file_format(path: Path) -> str | None:
    suffix = Path(path).suffix.lower()
    return "csv" if suffix == ".csv" else "parquet" if suffix in (".parquet", ".pq") else None


def count_rows(path: str | Path, *, threads: int = 2) -> int:
    """Rows of a CSV/Parquet file (Parquet: from its footer), to size the training split."""
    import duckdb

    reader = _reader(Path(path))
    con = duckdb.connect()
    try:
        con.execute(f"SET threads={int(threads)}")
        return int(con.execute(f"SELECT count(*) FROM {reader}").fetchone()[0])
    except duckdb.Error as exc:
        raise DataError(f"{path}: cannot read table ({str(exc).splitlines()[0]})") from None
    finally:
        con.close()


def _reader(path: Path) -> str:
    quoted = "'" + str(path).replace("'", "''") + "'"
    if file_format(path) == "csv":
        return f"read_csv({quoted}, all_varchar=true, header=true, delim=',', quote='\"', escape='\"')"
    return f"read_parquet({quoted})"
