"""Writing synthetic tables: CSV/Parquet streamed in chunks through a temporary file renamed into
place (a failure leaves no partial output), and rebalanced samples (post-processing, no cost)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from dpsynth import safe_io
from dpsynth.artifacts import LoadedRun

OUTPUT_SUFFIXES = (".csv", ".parquet")


def balanced_sample(loaded: LoadedRun, *, n: int, rng: np.random.Generator, balance=None,
                    balance_target=None) -> pd.DataFrame:
    """n rows with equal counts per cell of ``balance`` columns, or the shares of ``balance_target``."""
    from dpsynth.balance import balanced_frame, equal_cells, load_target, parse_balance_columns

    if balance_target is not None:
        cells = load_target(balance_target, loaded.schema)
    else:
        cells = equal_cells(loaded.schema, parse_balance_columns(balance))
    return balanced_frame(loaded.generator, n, cells, rng=rng)


@contextmanager
def _atomic_output(out: Path) -> Iterator[Path]:
    """A temporary sibling of ``out`` renamed into place on success and removed on any failure
    (signals included), so no partial output file is ever left behind."""
    with safe_io.atomic_file(out) as tmp:
        yield tmp


def write_frame(frame: pd.DataFrame, out: Path) -> None:
    """Write one frame to CSV/Parquet through a temporary file renamed into place."""
    with _atomic_output(out) as tmp:
        if out.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def write_rows(generator, *, n: int, out: Path, rng: np.random.Generator, conditions=None, chunk_rows: int) -> None:
    with _atomic_output(out) as tmp:
        if out.suffix.lower() == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            writer = None
            try:
                for start in range(0, n, chunk_rows):
                    frame = generator.sample(min(chunk_rows, n - start), conditions=conditions, rng=rng).frame
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(str(tmp), table.schema)
                    writer.write_table(table)
            finally:
                if writer is not None:
                    writer.close()
        else:
            for start in range(0, n, chunk_rows):
                frame = generator.sample(min(chunk_rows, n - start), conditions=conditions, rng=rng).frame
                frame.to_csv(tmp, mode="w" if start == 0 else "a", header=start == 0, index=False)
