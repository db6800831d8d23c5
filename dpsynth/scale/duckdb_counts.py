"""Exact marginal counts on DuckDB, streaming over a Parquet/CSV file.

One pass encodes every row with the schema's SQL (:mod:`dpsynth.scale.sql`) into a table of
small-integer codes in a temporary DuckDB database file (compressed, buffer-managed under
``memory_limit``, deleted on close); a second, tiny aggregate checks the codes and raises the
one-line ``Schema.prepare`` error naming the first bad column. Each cover cube is then one
``GROUP BY`` over a packed cell index of the cover's code columns; the cube comes back
zero-filled to the public domain. The training split joins by row position (``POSITIONAL
JOIN`` with the split mask), so it is the in-memory path's split exactly.
"""

from __future__ import annotations

import shutil
import time
import tempfile
from pathlib import Path

import numpy as np

from dpsynth.errors import DataError, MissingExtraError
from dpsynth.scale.counts import CubeCounts
from dpsynth.scale.source import TableSource, _reader
from dpsynth.scale.sql import DUCKDB, ERROR_ORDER, check_columns, code_expression, error_message, value_expressions


def _duckdb():
    try:
        import duckdb
    except ImportError:
        raise MissingExtraError("the duckdb counting engine needs duckdb: pip install -e '.[scale]'") from None
    return duckdb


class DuckDBCounts(CubeCounts):
    engine = "duckdb"

    def __init__(self, source: TableSource, bins, *, max_cells: int | None = None) -> None:
        super().__init__([b.size for b in bins], **({} if max_cells is None else {"max_cells": max_cells}))
        duckdb = _duckdb()
        self.source, self.bins = source, list(bins)
        self._dir = Path(tempfile.mkdtemp(prefix="dpsynth-duckdb-"))
        try:
            self.con = duckdb.connect(str(self._dir / "codes.duckdb"))
            self.con.execute(f"SET threads={int(source.threads)}")
            self.con.execute(f"SET memory_limit='{source.memory_limit}'")
            self.con.execute(f"SET temp_directory='{self._dir / 'spill'}'")
            if source.train_mask is None:  # the positional join with a split mask needs the file's order
                self.con.execute("SET preserve_insertion_order=false")
            start = time.perf_counter()
            self._encode()
            self.stats["encode_seconds"] = time.perf_counter() - start
        except BaseException:
            self.close()
            raise

    def _encode(self) -> None:
        duckdb = _duckdb()
        src = self.source
        reader = _reader(src.path)
        where = str(src.path)
        try:
            described = self.con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
        except duckdb.Error as exc:
            raise DataError(f"{where}: cannot read table ({str(exc).splitlines()[0]})") from None
        types = {row[0]: row[1] for row in described}
        check_columns(where, src.schema, list(types))
        exprs = [f"CAST({code_expression(b, types[b.column.name], DUCKDB, csv=src.format == 'csv', j=j)} AS SMALLINT)"
                 f" AS c{j}" for j, b in enumerate(self.bins)]
        values = [v for j, b in enumerate(self.bins) for v in value_expressions(b, types[b.column.name], DUCKDB, j)]
        if src.train_mask is not None:
            import pyarrow as pa

            self.con.register("split_mask", pa.table({"keep__": np.asarray(src.train_mask, dtype=bool)}))
            inner = f"SELECT {', '.join(values)}, keep__ FROM {reader} POSITIONAL JOIN split_mask"
        else:
            inner = f"SELECT {', '.join(values)}, TRUE AS keep__ FROM {reader}"
        select = f"SELECT {', '.join(exprs)}, keep__ FROM ({inner})"
        try:
            self.con.execute(f"CREATE TABLE codes AS {select}")
        except duckdb.Error as exc:
            raise DataError(f"{where}: cannot read table ({str(exc).splitlines()[0]})") from None
        if src.train_mask is not None:
            self.con.unregister("split_mask")
        stats = self.con.execute(
            "SELECT count(*), count(*) FILTER (WHERE keep__), "
            + ", ".join(f"min(c{j})" for j in range(len(self.bins))) + " FROM codes"
        ).fetchone()
        total, self.n_rows = int(stats[0]), int(stats[1])
        if total == 0:
            raise DataError(f"{where}: the table has no rows or no columns")
        if src.train_mask is not None and total != len(src.train_mask):
            raise DataError(f"{where}: the file has {total} rows, the split mask {len(src.train_mask)}")
        bad = [j for j, low in enumerate(stats[2:]) if low is not None and low < 0]
        if bad:
            self._raise_first_error(bad[0], reader, types)

    def _raise_first_error(self, j: int, reader: str, types: dict) -> None:
        col = self.bins[j].column
        kinds = dict(self.con.execute(f"SELECT c{j}, count(*) FROM codes WHERE c{j} < 0 GROUP BY 1").fetchall())
        kind = next(k for k in ERROR_ORDER if k in kinds)
        expr = code_expression(self.bins[j], types[col.name], DUCKDB, csv=self.source.format == "csv")
        name = DUCKDB.ident(col.name)
        example = self.con.execute(f"SELECT {name} FROM {reader} WHERE ({expr}) = {kind} LIMIT 1").fetchone()[0]
        raise DataError(error_message(str(self.source.path), col, kind, count=int(kinds[kind]), example=example))

    def _count_cover(self, cover):
        shape = tuple(self.sizes[a] for a in cover)
        strides = np.cumprod((1,) + shape[::-1])[:-1][::-1]  # C order
        key = " + ".join(f"CAST(c{a} AS BIGINT) * {int(s)}" for a, s in zip(cover, strides))
        rows = self.con.execute(f"SELECT {key} AS k, count(*) AS n FROM codes WHERE keep__ GROUP BY k").fetchnumpy()
        cube = np.zeros(int(np.prod(shape)), dtype=np.int64)
        cube[np.asarray(rows["k"], dtype=np.int64)] = np.asarray(rows["n"], dtype=np.int64)
        return cube.reshape(shape)

    def close(self) -> None:
        super().close()
        con = getattr(self, "con", None)
        if con is not None:
            con.close()
            self.con = None
        shutil.rmtree(self._dir, ignore_errors=True)
