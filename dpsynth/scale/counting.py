"""One entry point for the marginal generators: exact counts of a table in memory or on disk."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np


@contextmanager
def exact_counts(data, discretizer) -> Iterator[tuple[np.ndarray | None, object | None]]:
    """``(codes, None)`` for a ``TableData`` (the in-memory numpy path, unchanged), or
    ``(None, counter)`` for a ``TableSource`` (a counting engine over the file, closed on exit,
    with its temporary files)."""
    from dpsynth.scale.source import TableSource

    if not isinstance(data, TableSource):
        yield discretizer.encode(data.frame), None
        return
    if list(data.schema.names) != list(discretizer.names):
        raise ValueError("the discretizer does not belong to the source's schema")
    counter = open_counts(data, discretizer.columns)
    try:
        yield None, counter
    finally:
        counter.close()


def open_counts(source: "TableSource", bins) -> "CubeCounts":  # noqa: F821
    """The engine's counter over ``source`` with the discretisation ``bins`` (ColumnBins per column)."""
    if source.engine == "spark":
        from dpsynth.scale.spark_counts import SparkCounts

        return SparkCounts(source, bins)
    from dpsynth.scale.duckdb_counts import DuckDBCounts

    return DuckDBCounts(source, bins)
