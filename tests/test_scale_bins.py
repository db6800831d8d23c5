"""The engines' numeric codes (lookup list, arithmetic bin + edge check) equal ``ColumnBins``'s codes.

Values sit on every public edge, one double below and above it, on the bounds and on the atoms,
for integer columns counted by lookup and by arithmetic (range above ``LOOKUP_MAX``), continuous
columns with and without atoms, an integer column read as DOUBLE, and the same file as CSV.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.data.loaders import read_table
from dpsynth.data.schema import Schema
from dpsynth.generators.tabular.marginal.discretize import Discretizer, column_bins
from dpsynth.scale.bin_sql import LOOKUP_MAX, arithmetic_is_exact
from dpsynth.scale.counts import ArrayCounts
from dpsynth.scale.source import TableSource

pytest.importorskip("duckdb")

SCHEMA = {
    "name": "bins_toy",
    "columns": [
        {"name": "visits", "kind": "integer", "low": 0, "high": 40, "atoms": [0, 1, 2]},
        {"name": "big", "kind": "integer", "low": -3, "high": 3 * LOOKUP_MAX},
        {"name": "lab", "kind": "continuous", "low": 0.1, "high": 7.3, "atoms": [0.1, 7.3], "nullable": True},
        {"name": "odd", "kind": "continuous", "low": -1e-3, "high": 1 / 3},
        {"name": "as_double", "kind": "integer", "low": 1, "high": 14},
    ],
}


def _near(edges: np.ndarray, low: float, high: float) -> np.ndarray:
    """Every edge, its neighbouring doubles, kept inside [low, high]."""
    x = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf), [low, high]])
    return x[(x >= low) & (x <= high)]


def _frame(schema: Schema, bins: int, n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols = {}
    for col in schema.columns:
        edges = column_bins(col, bins=bins).edges
        special = _near(edges, col.low, col.high)
        if col.kind == "integer":
            special = np.unique(np.concatenate([np.floor(special), np.ceil(special)]))
            special = special[(special >= col.low) & (special <= col.high)]
            rest = rng.integers(int(col.low), int(col.high) + 1, size=n - len(special)).astype(float)
        else:
            rest = rng.uniform(col.low, col.high, size=n - len(special))
        values = np.concatenate([special, np.asarray(col.atoms, dtype=float), rest])[:n]
        cols[col.name] = rng.permutation(values)
    frame = pd.DataFrame(cols)
    frame.loc[frame.index[:50], "lab"] = np.nan
    for name in ("visits", "big"):
        frame[name] = frame[name].astype(np.int64)
    return frame  # as_double stays float64: an integer column stored as DOUBLE


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("bins", [3, 7, 16])
def test_numeric_codes_equal_column_bins(tmp_path, fmt, bins):
    from dpsynth.scale.duckdb_counts import DuckDBCounts

    schema = Schema.from_dict(SCHEMA)
    frame = _frame(schema, bins)
    path = tmp_path / f"t.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False, float_format="%.17g")
    else:
        frame.to_parquet(path, index=False)
    disc = Discretizer(schema, bins=bins)
    # the values as written (pandas' default CSV parser is not correctly rounded one double off an edge,
    # DuckDB's is; for Parquet this is read_table's frame)
    codes = disc.encode(schema.prepare(frame if fmt == "csv" else read_table(path), source=str(path)))
    want = ArrayCounts(codes, disc.sizes)
    got = DuckDBCounts(TableSource(path, schema, threads=1, memory_limit="512MB"), disc.columns, max_cells=1)
    try:
        cliques = [(j,) for j in range(len(disc.sizes))]
        for c, a, b in zip(cliques, got.counts(cliques), want.counts(cliques)):
            assert np.array_equal(a, b), (schema.columns[c[0]].name, a, b)
    finally:
        got.close()


def test_arithmetic_check_accepts_linspace_and_refuses_degenerate_edges():
    for low, high, k in [(0.1, 7.3, 16), (-1e-3, 1 / 3, 7), (0.0, 1e300, 5), (1e-300, 3e-300, 9)]:
        assert arithmetic_is_exact(np.linspace(low, high, k + 1))
    assert not arithmetic_is_exact(np.array([0.0, 0.0, 1.0]))  # an empty bin
    assert not arithmetic_is_exact(np.array([0.0, 0.1, 0.2, 5.1]))  # far from equal width: g(0.2) is 2 bins off
