"""Exact marginal counts on Apache Spark (PySpark), for tables that live on a cluster.

The same SQL code expressions as DuckDB (:mod:`dpsynth.scale.sql`, Spark dialect) encode the
file into a DataFrame of codes, persisted (memory and disk); one aggregate checks the codes;
each cover cube is one ``groupBy`` on a packed cell index, collected as (index, count) pairs
and zero-filled to the public domain on the driver. Only counts reach the driver; the noise is
added once, on the driver, by the generator's measurer.

The training split is the in-memory path's split by row position: rows are numbered in file
order (``monotonically_increasing_id`` re-based per partition), and the positions outside the
training split are removed with an anti-join. ``local[threads]`` here; set ``SPARK_MASTER``
(e.g. ``spark://host:7077`` or ``yarn``) to run on a cluster. Needs pyspark and Java 17+.
"""

from __future__ import annotations

import os
import shutil
import time
import tempfile
from pathlib import Path

import numpy as np

from dpsynth.errors import DataError, MissingExtraError
from dpsynth.scale.counts import CubeCounts
from dpsynth.scale.source import TableSource
from dpsynth.scale.sql import ERROR_ORDER, SPARK, check_columns, code_expression, error_message


def spark_session(*, threads: int, memory: str):
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise MissingExtraError("the spark counting engine needs pyspark (and Java 17): pip install -e '.[scale]'") from None
    master = os.environ.get("SPARK_MASTER", f"local[{int(threads)}]")
    try:
        return (SparkSession.builder.master(master).appName("dpsynth-counts")
                .config("spark.driver.memory", memory)
                .config("spark.sql.shuffle.partitions", str(max(2, 2 * int(threads))))
                .config("spark.ui.enabled", "false")
                .config("spark.sql.ansi.enabled", "false")
                .getOrCreate())
    except Exception as exc:  # no Java, wrong Java, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MissingExtraError(f"cannot start Spark ({first}); the spark engine needs Java 17+") from None


class SparkCounts(CubeCounts):
    engine = "spark"

    def __init__(self, source: TableSource, bins, *, max_cells: int | None = None) -> None:
        super().__init__([b.size for b in bins], **({} if max_cells is None else {"max_cells": max_cells}))
        self.source, self.bins = source, list(bins)
        self._dir = Path(tempfile.mkdtemp(prefix="dpsynth-spark-"))
        self.spark = spark_session(threads=source.threads, memory=source.memory_limit.replace("GB", "g"))
        self._codes = None
        try:
            start = time.perf_counter()
            self._encode()
            self.stats["encode_seconds"] = time.perf_counter() - start
        except BaseException:
            self.close()
            raise

    def _read(self):
        reader = self.spark.read
        path = str(self.source.path)
        try:
            if self.source.format == "csv":
                return reader.option("header", "true").option("inferSchema", "false").option("escape", '"').csv(path)
            return reader.parquet(path)
        except Exception as exc:
            raise DataError(f"{path}: cannot read table ({str(exc).strip().splitlines()[0]})") from None

    def _encode(self) -> None:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        src, where = self.source, str(self.source.path)
        raw = self._read()
        types = {f.name: f.dataType.simpleString() for f in raw.schema.fields}
        check_columns(where, src.schema, list(types))
        self._raw, self._types = raw, types
        exprs = [f"CAST({code_expression(b, types[b.column.name], SPARK, csv=src.format == 'csv')} AS SMALLINT) AS c{j}"
                 for j, b in enumerate(self.bins)]
        if src.train_mask is not None:
            raw = self._with_position(raw)
            dropped = np.flatnonzero(~np.asarray(src.train_mask, dtype=bool)).astype(np.int64)
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({"pos__": dropped}), str(self._dir / "dropped.parquet"))
            out = self.spark.read.parquet(str(self._dir / "dropped.parquet")).withColumn("drop__", F.lit(True))
            raw = raw.join(out, on="pos__", how="left").withColumn("keep__", F.col("drop__").isNull())
        else:
            raw = raw.withColumn("keep__", F.lit(True))
        codes = raw.selectExpr(*exprs, "keep__").persist(StorageLevel.MEMORY_AND_DISK)
        stats = codes.agg(F.count(F.lit(1)), F.sum(F.col("keep__").cast("long")),
                          *[F.min(f"c{j}") for j in range(len(self.bins))]).collect()[0]
        self._codes = codes
        total, self.n_rows = int(stats[0]), int(stats[1] or 0)
        if total == 0:
            raise DataError(f"{where}: the table has no rows or no columns")
        if src.train_mask is not None and total != len(src.train_mask):
            raise DataError(f"{where}: the file has {total} rows, the split mask {len(src.train_mask)}")
        bad = [j for j, low in enumerate(stats[2:]) if low is not None and low < 0]
        if bad:
            self._raise_first_error(bad[0])

    def _with_position(self, frame):
        """Row positions in file order: partition offsets + the row's index in its partition."""
        from pyspark.sql import functions as F

        frame = frame.withColumn("mid__", F.monotonically_increasing_id())
        frame = frame.withColumn("part__", F.shiftright(F.col("mid__"), 33))
        sizes = dict(frame.groupBy("part__").count().collect())
        offsets, total = {}, 0
        for part in sorted(sizes):
            offsets[part], total = total, total + sizes[part]
        offset_rows = self.spark.createDataFrame([(int(p), int(o)) for p, o in offsets.items()], "part__ long, off__ long")
        frame = frame.join(F.broadcast(offset_rows), on="part__")
        local = F.col("mid__") - F.shiftleft(F.col("part__"), 33)
        return frame.withColumn("pos__", F.col("off__") + local).drop("mid__", "part__", "off__")

    def _raise_first_error(self, j: int) -> None:
        from pyspark.sql import functions as F

        col = self.bins[j].column
        kinds = {int(r[0]): int(r[1]) for r in self._codes.where(F.col(f"c{j}") < 0).groupBy(f"c{j}").count().collect()}
        kind = next(k for k in ERROR_ORDER if k in kinds)
        expr = code_expression(self.bins[j], self._types[col.name], SPARK, csv=self.source.format == "csv")
        example = self._raw.where(f"({expr}) = {kind}").select(col.name).limit(1).collect()[0][0]
        raise DataError(error_message(str(self.source.path), col, kind, count=kinds[kind], example=example))

    def _count_cover(self, cover):
        from pyspark.sql import functions as F

        shape = tuple(self.sizes[a] for a in cover)
        strides = np.cumprod((1,) + shape[::-1])[:-1][::-1]
        key = " + ".join(f"CAST(c{a} AS BIGINT) * {int(s)}" for a, s in zip(cover, strides))
        rows = self._codes.where(F.col("keep__")).selectExpr(f"{key} AS k").groupBy("k").count().collect()
        cube = np.zeros(int(np.prod(shape)), dtype=np.int64)
        if rows:
            keys, counts = zip(*[(int(r[0]), int(r[1])) for r in rows])
            cube[np.array(keys, dtype=np.int64)] = np.array(counts, dtype=np.int64)
        return cube.reshape(shape)

    def close(self) -> None:
        super().close()
        if self._codes is not None:
            self._codes.unpersist()
            self._codes = None
        shutil.rmtree(self._dir, ignore_errors=True)
