"""The discretisation of :mod:`dpsynth.generators.tabular.marginal.discretize`, written as SQL.

One expression per column turns a raw value into its code on the PUBLIC domain, exactly as
``ColumnBins.encode`` after ``Schema.prepare`` does in pandas: categories match by value
(``1``, ``1.0`` and ``'1'`` are one category, text is stripped), numeric columns fall in the
bin ``searchsorted(edges, x, 'right') - 1`` after their ``atoms`` (an exact lookup list or an
arithmetic bin checked against the public edges: :mod:`dpsynth.scale.bin_sql`), a nullable
column's missing value takes the last code. Only the schema's bounds and categories enter the SQL.

Rows that break the schema get a negative code, one per kind of error, so one aggregate finds
the first bad column and the caller raises the same one-line error as ``Schema.prepare``:
-1 missing in a non-nullable column, -2 not a number / unknown category, -3 a fractional value
in an integer column, -4 outside the declared bounds.

The SQL is shared by DuckDB and Spark SQL; ``Dialect`` holds the two spellings that differ
(identifier and string quoting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from dpsynth.scale.bin_sql import bin_code

MISSING_NOT_ALLOWED, BAD_VALUE, FRACTIONAL, OUT_OF_RANGE = -1, -2, -3, -4

# pandas.read_csv's default missing-value strings: CSV text equal to one of them is missing
NA_STRINGS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
              "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")

NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL", "INT", "LONG", "SHORT", "BYTE")
FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")
INTEGRAL_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "INT", "LONG", "SHORT", "BYTE")


@dataclass(frozen=True)
class Dialect:
    name: str  # "duckdb" or "spark"

    def ident(self, name: str) -> str:
        if self.name == "spark":
            return "`" + name.replace("`", "``") + "`"
        return '"' + name.replace('"', '""') + '"'

    def text(self, value: str) -> str:
        if self.name == "spark":
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return "'" + value.replace("'", "''") + "'"

    def double(self, value: float) -> str:
        """A float literal that parses to exactly ``value`` (repr round-trips)."""
        return f"CAST({self.text(repr(float(value)))} AS DOUBLE)"


DUCKDB, SPARK = Dialect("duckdb"), Dialect("spark")


def type_family(sql_type: str) -> str:
    """'text', 'float', 'number' (exact numeric) or 'boolean' for an engine's column type."""
    t = sql_type.upper()
    if t.startswith("BOOL"):
        return "boolean"
    if t.startswith(FLOAT_TYPES):
        return "float"
    if t.startswith(NUMERIC_TYPES):
        return "number"
    return "text"


def integral_type(sql_type: str) -> bool:
    """An engine type whose values are whole numbers (DuckDB and Spark spellings)."""
    return sql_type.upper() in INTEGRAL_TYPES


def _numeric_key(value: Any) -> float | None:
    """The number a category stands for under ``schema._key`` (None for a text category)."""
    if isinstance(value, bool):
        return float(int(value))
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def value_expressions(bins, sql_type: str, dialect: Dialect, j: int) -> list[str]:
    """The raw value, its stripped text and its number, computed once per row as columns
    ``x{j}``, ``t{j}``, ``n{j}`` of an inner SELECT (the code's CASE reads them many times)."""
    x = dialect.ident(bins.column.name)
    family = type_family(sql_type)
    if family == "text":
        return [f"{x} AS x{j}", f"trim({x}) AS t{j}", f"TRY_CAST(trim({x}) AS DOUBLE) AS n{j}"]
    number = f"CAST(CAST({x} AS INTEGER) AS DOUBLE)" if family == "boolean" else f"CAST({x} AS DOUBLE)"
    return [f"{x} AS x{j}", f"{number} AS n{j}"]


def code_expression(bins, sql_type: str, dialect: Dialect, *, csv: bool, j: int | None = None) -> str:
    """SQL for the code of one column (``bins``: a ``ColumnBins``: column, n_values, edges).

    With ``j``, it reads the columns ``x{j}``, ``t{j}``, ``n{j}`` of :func:`value_expressions`;
    without, the raw column (computing the text and number inline)."""
    col = bins.column
    x = dialect.ident(col.name) if j is None else f"x{j}"
    family = type_family(sql_type)
    if family == "text":
        t = f"trim({x})" if j is None else f"t{j}"
        number = f"TRY_CAST({t} AS DOUBLE)" if j is None else f"n{j}"
        missing = f"{x} IS NULL"
        if csv:  # pandas reads these CSV strings as missing
            missing += f" OR {x} IN ({', '.join(dialect.text(s) for s in NA_STRINGS)})"
    else:
        t = None
        number = f"CAST(CAST({x} AS INTEGER) AS DOUBLE)" if family == "boolean" else f"CAST({x} AS DOUBLE)"
        number = number if j is None else f"n{j}"
        missing = f"{x} IS NULL OR isnan({x})" if family == "float" else f"{x} IS NULL"
    on_missing = bins.missing_code if col.nullable else MISSING_NOT_ALLOWED
    cases = [f"WHEN {missing} THEN {on_missing}"]
    if col.is_numeric:
        if not integral_type(sql_type):  # an integer-typed column holds neither NaN nor fractions
            cases.append(f"WHEN {number} IS NULL OR isnan({number}) THEN {BAD_VALUE}")
            if col.kind == "integer":
                cases.append(f"WHEN {number} <> floor({number}) THEN {FRACTIONAL}")
        cases.append(f"WHEN {number} < {dialect.double(col.low)} OR {number} > {dialect.double(col.high)} "
                     f"THEN {OUT_OF_RANGE}")
        cases.append(f"ELSE {bin_code(bins, number, dialect)}")  # ColumnBins._numeric_codes, atoms included
    else:
        for code, category in enumerate(col.categories):
            key = _numeric_key(category)
            if key is not None:
                cases.append(f"WHEN {number} = {dialect.double(key)} THEN {code}")
            elif t is not None:
                cases.append(f"WHEN {t} = {dialect.text(str(category).strip())} THEN {code}")
        cases.append(f"ELSE {BAD_VALUE}")
    return "CASE " + " ".join(cases) + " END"


def error_message(source: str, col, kind: int, *, count: int, example: Any) -> str:
    """The one-line error ``Schema.prepare`` raises for the same rows."""
    name = col.name
    if kind == MISSING_NOT_ALLOWED:
        return (f"{source}: column '{name}' has {count} missing value(s) but the schema does not allow them"
                " (set nullable: true)")
    if kind == FRACTIONAL:
        return f"{source}: column '{name}' is integer but holds fractional values"
    if kind == OUT_OF_RANGE:
        return (f"{source}: column '{name}' has {count} value(s) outside the declared domain"
                f" [{col.low}, {col.high}]")
    if col.is_numeric:
        return f"{source}: column '{name}' is {col.kind} but holds non-numeric value {example!r}"
    return f"{source}: column '{name}' has unknown category {example!r} (declared: {list(col.categories)})"


def check_columns(source: str, schema, present: Sequence[str]) -> None:
    """The column checks of ``Schema.prepare``: every declared column present, nothing undeclared."""
    from dpsynth.errors import DataError

    missing = [n for n in schema.names if n not in present]
    if missing:
        raise DataError(f"{source}: column(s) {missing} declared in schema '{schema.name}' are missing")
    extra = [c for c in present if c not in schema.names and c not in schema.drop]
    if extra:
        raise DataError(
            f"{source}: column(s) {extra} are not in schema '{schema.name}' (declare them or list them under 'drop')"
        )


# the order in which Schema.prepare reports a column's errors
ERROR_ORDER = (MISSING_NOT_ALLOWED, BAD_VALUE, FRACTIONAL, OUT_OF_RANGE)
