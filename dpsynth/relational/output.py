"""Write (and read back) a set of synthetic tables: a folder with one CSV or Parquet file per
table, or one DuckDB / SQLite database whose tables declare their primary and foreign keys.

Every writer builds its output under a temporary sibling and renames it into place, so a
failure leaves nothing partial behind.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from dpsynth.data.relational import RelationalSchema
from dpsynth.errors import DpsynthError, MissingExtraError

DATABASE_SUFFIXES = (".duckdb", ".sqlite", ".sqlite3", ".db")
FOLDER_FORMATS = ("csv", "parquet")


def output_kind(out: str | Path, fmt: str = "auto") -> str:
    """'csv' / 'parquet' (a folder, one file per table), 'duckdb' or 'sqlite'."""
    suffix = Path(out).suffix.lower()
    if suffix == ".duckdb":
        return "duckdb"
    if suffix in (".sqlite", ".sqlite3", ".db"):
        return "sqlite"
    if suffix:
        raise DpsynthError(f"{out}: related tables are written to a folder (no suffix), a .duckdb or a .sqlite file")
    if fmt in ("auto", "csv"):
        return "csv"
    if fmt == "parquet":
        return "parquet"
    raise DpsynthError(f"--format {fmt} does not apply to related tables (use csv or parquet for a folder)")


def _check_replaceable(out: Path, *, kind: str, names) -> None:
    """--overwrite replaces only what this writer writes: a folder holding nothing but these
    tables' files, or a regular database file; never a user's folder (one line, naming it)."""
    if kind in FOLDER_FORMATS:
        ours = {f"{name}.{ext}" for name in names for ext in FOLDER_FORMATS}
        if not out.is_dir() or out.is_symlink() or any(p.name not in ours for p in out.iterdir()):
            raise DpsynthError(f"{out}: exists and is not a folder of these synthetic tables ({', '.join(sorted(names))});"
                               " refusing to replace it, choose another path")
    elif not out.is_file() or out.is_symlink():
        raise DpsynthError(f"{out}: exists and is not a regular file; refusing to replace it")


def write_tables(tables: dict[str, pd.DataFrame], out: str | Path, *, schema: RelationalSchema, fmt: str = "auto",
                 overwrite: bool = True) -> Path:
    out = Path(out)
    kind = output_kind(out, fmt)
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise DpsynthError(f"{out} exists (use --overwrite)")
        _check_replaceable(out, kind=kind, names=tables)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind in FOLDER_FORMATS:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            for name, frame in tables.items():
                if kind == "csv":
                    frame.to_csv(tmp / f"{name}.csv", index=False)
                else:
                    frame.to_parquet(tmp / f"{name}.parquet", index=False)
            if out.exists():
                shutil.rmtree(out) if out.is_dir() else out.unlink()
            os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # the database engines create the file themselves
    try:
        (_write_duckdb if kind == "duckdb" else _write_sqlite)(tables, tmp, schema)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def read_tables(path: str | Path, schema: RelationalSchema) -> dict[str, pd.DataFrame]:
    """The tables of a folder / database written by :func:`write_tables` (for evaluation)."""
    path = Path(path)
    kind = output_kind(path, "auto") if path.suffix else "folder"
    if not path.exists():
        raise DpsynthError(f"synthetic tables not found: {path}")
    out = {}
    if kind == "folder":
        for table in schema.tables:
            csv, parquet = path / f"{table.name}.csv", path / f"{table.name}.parquet"
            if parquet.is_file():
                out[table.name] = pd.read_parquet(parquet)
            elif csv.is_file():
                out[table.name] = pd.read_csv(csv, dtype={k: str for k in _keys(table)})
            else:
                raise DpsynthError(f"{path}: no {table.name}.csv or {table.name}.parquet")
        return out
    if kind == "duckdb":
        duckdb = _duckdb()
        con = duckdb.connect(str(path), read_only=True)
        try:
            return {t.name: con.execute(f'SELECT * FROM "{t.name}"').df() for t in schema.tables}
        finally:
            con.close()
    con = sqlite3.connect(str(path))
    try:
        return {t.name: pd.read_sql_query(f'SELECT * FROM "{t.name}"', con) for t in schema.tables}
    finally:
        con.close()


def _keys(table) -> list[str]:
    return [k for k in (table.primary_key, table.foreign_key) if k is not None]


def _sql_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_integer_dtype(series):
        return "BIGINT"
    if pd.api.types.is_float_dtype(series):
        return "DOUBLE"
    return "TEXT"


def _ddl(name: str, frame: pd.DataFrame, schema: RelationalSchema) -> str:
    table = schema[name]
    cols = []
    for col in frame.columns:
        kind = "TEXT" if col in _keys(table) else _sql_type(frame[col])
        cols.append(f'"{col}" {kind}' + (" PRIMARY KEY" if col == table.primary_key else ""))
    if table.parent is not None:
        parent = schema[table.parent]
        cols.append(f'FOREIGN KEY ("{table.foreign_key}") REFERENCES "{parent.name}" ("{parent.primary_key}")')
    return f'CREATE TABLE "{name}" ({", ".join(cols)})'


def _plain_rows(frame: pd.DataFrame) -> list[tuple]:
    """Rows as python values (None for missing) for a DB-API executemany."""
    obj = frame.astype(object).where(frame.notna(), None)
    return [tuple(v.item() if isinstance(v, np.generic) else v for v in row) for row in obj.itertuples(index=False)]


def _write_sqlite(tables: dict[str, pd.DataFrame], path: Path, schema: RelationalSchema) -> None:
    con = sqlite3.connect(str(path))
    try:
        con.execute("PRAGMA foreign_keys = ON")
        for table in schema.tables:
            frame = tables[table.name]
            con.execute(_ddl(table.name, frame, schema))
            marks = ", ".join("?" for _ in frame.columns)
            con.executemany(f'INSERT INTO "{table.name}" VALUES ({marks})', _plain_rows(frame))
        con.commit()
    finally:
        con.close()


def _duckdb():
    try:
        import duckdb
    except ImportError:
        raise MissingExtraError("writing a .duckdb file needs duckdb: pip install 'dpsynth[relational]'") from None
    return duckdb


def _write_duckdb(tables: dict[str, pd.DataFrame], path: Path, schema: RelationalSchema) -> None:
    duckdb = _duckdb()
    con = duckdb.connect(str(path))
    try:
        for table in schema.tables:
            frame = tables[table.name]
            con.execute(_ddl(table.name, frame, schema))
            con.register("_frame", frame)
            con.execute(f'INSERT INTO "{table.name}" SELECT * FROM _frame')
            con.unregister("_frame")
    finally:
        con.close()
