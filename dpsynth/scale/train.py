"""Choosing the counting engine, and training a marginal generator on a file that stays on disk.

``resolve_engine``: ``numpy`` (load the table into pandas; every generator), ``duckdb`` or
``spark`` (count marginals in SQL; aim, mst, independent, and ``auto``, which always picks mst or
aim), or ``auto``: DuckDB for a CSV/Parquet file of at least ``AUTO_ROWS`` rows (Parquet: the
footer's row count; CSV: its size on disk) when the generator is one of those and duckdb is
installed, numpy otherwise.

``fit_streaming``: the same seeded split as the in-memory path (``split_mask``: the training
rows' positions, as ``split_table`` draws them), the generator fitted on a ``TableSource``;
only the noisy marginals and the fitted model come back. ``aim`` runs under the public
large-table rule (``dpsynth.scale.aim_bound.large_table_rule``: from 1M training rows, T = 4 x
columns rounds and a 4 MB model), printed when it applies; ``aim_rule=False`` turns it off.
Generator ``auto`` decides here, before any row is read, from the schema, the budget and the
training row count (all public), and the rule then fills the chosen aim's settings.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpsynth.data.splits import SplitSpec
from dpsynth.errors import DataError, DpsynthError

ENGINE_CHOICES = ("auto", "numpy", "duckdb", "spark")
MARGINAL_GENERATORS = ("aim", "mst", "independent")
STREAMABLE_GENERATORS = (*MARGINAL_GENERATORS, "auto")  # auto picks mst or aim from public facts
AUTO_ROWS = 2_000_000
AUTO_CSV_BYTES = 200 * 2**20  # ~2M rows of a 17-column CSV


def resolve_engine(engine: str | None, *, data: str, generator: str, schema_path, infer_schema: bool) -> str:
    from dpsynth.data.loaders import is_embedded
    from dpsynth.scale.source import count_rows, file_format

    engine = engine or "auto"
    if engine not in ENGINE_CHOICES:
        raise DpsynthError(f"unknown engine '{engine}' (choose {', '.join(ENGINE_CHOICES)})")
    if engine == "numpy":
        return engine
    path = None if is_embedded(data) else Path(data)
    streamable = (path is not None and path.is_file() and file_format(path) is not None
                  and generator in STREAMABLE_GENERATORS and schema_path is not None and not infer_schema)
    if engine == "auto":
        if not streamable or importlib.util.find_spec("duckdb") is None or _has_unit_column(schema_path):
            return "numpy"
        if file_format(path) == "csv":
            return "duckdb" if path.stat().st_size >= AUTO_CSV_BYTES else "numpy"
        return "duckdb" if count_rows(path) >= AUTO_ROWS else "numpy"
    if generator not in STREAMABLE_GENERATORS:
        raise DpsynthError(f"--engine {engine} counts marginals: it works with {', '.join(STREAMABLE_GENERATORS)},"
                           f" not '{generator}'")
    if path is None or file_format(path) is None:
        raise DpsynthError(f"--engine {engine} reads a .csv or .parquet file, not '{data}'")
    if schema_path is None or infer_schema:
        raise DpsynthError(f"--engine {engine} needs a declared public schema (--schema), not --infer-schema")
    return engine


def _has_unit_column(schema_path) -> bool:
    """Patient-level DP (a privacy-unit column) bounds rows per patient in memory only."""
    from dpsynth.data.schema import Schema

    return Schema.load(schema_path).unit_column is not None


def split_mask(n: int, spec: SplitSpec) -> np.ndarray:
    """Training rows of ``split_table`` on an n-row table, as a boolean mask over positions."""
    if not (0 <= spec.holdout < 1 and 0 <= spec.test < 1 and spec.holdout + spec.test < 1):
        raise DataError(f"split fractions holdout={spec.holdout}, test={spec.test} must be in [0, 1) and sum below 1")
    order = np.random.default_rng(spec.seed).permutation(n)
    n_out = int(round(spec.test * n)) + int(round(spec.holdout * n))
    if n - n_out < 2:
        raise DataError(f"only {n - n_out} training row(s) after splitting {n} rows")
    mask = np.zeros(n, dtype=bool)
    mask[order[n_out:]] = True
    return mask


@dataclass(frozen=True)
class StreamedSplits:
    """Split sizes of a table that stayed on disk: ``len(splits.train)`` works, no row is held."""

    train: range
    holdout: range
    test: range
    spec: SplitSpec

    def to_dict(self) -> dict:
        return {**self.spec.to_dict(), "n_train": len(self.train), "n_holdout": len(self.holdout),
                "n_test": len(self.test)}


@dataclass
class StreamedTrain:
    generator: object
    schema: object
    splits: StreamedSplits
    fit_seconds: float


def fit_streaming(*, data: str, schema_path, engine: str, generator, budget, rng: np.random.Generator,
                  split: SplitSpec, progress=None, threads: int | None = None,
                  memory_limit: str = "4GB", aim_rule: bool = True) -> StreamedTrain:
    import os

    from dpsynth.data.schema import Schema
    from dpsynth.scale.source import TableSource, count_rows

    schema = Schema.load(schema_path)
    path = Path(data)
    threads = threads or os.cpu_count() or 1
    n = count_rows(path, threads=threads)
    mask = split_mask(n, split)
    n_train = int(mask.sum())
    budget.resolve_delta(n_train)  # refuse delta >= 1/n before any work
    source = TableSource(path, schema, engine=engine, threads=threads, memory_limit=memory_limit, train_mask=mask)
    del mask
    if getattr(generator, "name", None) == "auto":  # decide now, from public facts (n = training rows)
        def adjust(name, params):
            if not aim_rule or name != "aim":
                return params, None
            from dpsynth.scale.aim_bound import large_table_rule

            return large_table_rule(n_train, len(schema.names), params)

        generator.plan(schema, n=n_train, budget=budget, adjust=adjust)  # the reason ends in generator.reason_
    elif aim_rule:  # public facts only: the training row count and the number of columns
        from dpsynth.scale.aim_bound import apply_large_table_rule

        apply_large_table_rule(generator, n_train, len(schema.names))
    start = time.perf_counter()
    generator.fit(source, budget=budget, rng=rng, progress=progress)
    fit_seconds = time.perf_counter() - start
    n_test, n_hold = int(round(split.test * n)), int(round(split.holdout * n))
    splits = StreamedSplits(train=range(n_train), holdout=range(n_hold), test=range(n_test), spec=split)
    return StreamedTrain(generator=generator, schema=schema, splits=splits, fit_seconds=fit_seconds)
