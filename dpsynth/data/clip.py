"""Clip a raw table onto its public schema instead of refusing values outside it.

A hospital table often holds a few values just outside documented bounds (a BMI of 9.8
where the data dictionary says [10, 100]) or a rare code that the category list does not
name. With ``clip: true`` on a column (or ``--clip-to-schema`` for every column):

- numeric columns: values below ``low`` become ``low``, values above ``high`` become ``high``;
- categorical columns: a value outside ``categories`` becomes the column's declared ``other``
  level; a column without ``other`` whose categories are all numbers maps a numeric value to
  the nearest category (so a stray 2 in a 0/1 flag becomes 1); anything else is refused with a
  one-line error naming the column.

Clipping is a per-row transformation fixed by the public schema, so it costs no privacy
budget. The number of clipped values per column is a statistic of the real rows: it is
returned to the caller for the internal evaluation only and must never be written into a run
directory or a release.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dpsynth.data.schema import Column, Schema, _key
from dpsynth.errors import DataError


def clip_to_schema(
    frame: pd.DataFrame, schema: Schema, *, all_columns: bool = False, source: str = "data"
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Return ``(clipped_frame, counts_by_column)``.

    Clips the columns marked ``clip: true`` (every declared column when ``all_columns``).
    Missing values are left missing; columns the schema does not declare are left as they are
    (``Schema.prepare`` decides about them). ``counts_by_column`` holds, for each clipped
    column, how many values were changed (0 included): internal-evaluation material only.
    """
    out = frame.copy()
    counts: dict[str, int] = {}
    for col in schema.columns:
        if not (col.clip or all_columns) or col.name not in out.columns:
            continue
        if col.is_numeric:
            out[col.name], counts[col.name] = _clip_numeric(out[col.name], col, source)
        else:
            out[col.name], counts[col.name] = _clip_categorical(out[col.name], col, source)
    return out, counts


def _clip_numeric(series: pd.Series, col: Column, source: str) -> tuple[pd.Series, int]:
    isna = series.isna()
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() & ~isna
    if bad.any():
        raise DataError(
            f"{source}: column '{col.name}' is {col.kind} but holds non-numeric value {series[bad].iloc[0]!r}"
        )
    below, above = values < col.low, values > col.high
    clipped = values.clip(lower=col.low, upper=col.high)
    return clipped, int(below.sum() + above.sum())


def _clip_categorical(series: pd.Series, col: Column, source: str) -> tuple[pd.Series, int]:
    known = {_key(c) for c in col.categories}
    isna = series.isna()
    unknown = ~isna & ~series.map(lambda v: _key(v) in known if not _is_missing(v) else True)
    n = int(unknown.sum())
    if n == 0:
        return series, 0
    out = series.astype(object).copy()
    if col.other is not None:
        out[unknown] = col.other
        return out, n
    numeric_cats = np.array([_as_float(c) for c in col.categories], dtype=float)
    if np.all(np.isfinite(numeric_cats)):
        values = np.array([_as_float(v) for v in out[unknown]], dtype=float)
        if np.all(np.isfinite(values)):
            nearest = np.abs(values[:, None] - numeric_cats[None, :]).argmin(axis=1)
            out[unknown] = [col.categories[i] for i in nearest]
            return out, n
    raise DataError(
        f"{source}: column '{col.name}' has unknown category {series[unknown].iloc[0]!r} and no declared 'other'"
        f" level to clip it to (declared: {list(col.categories)})"
    )


def _is_missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _as_float(value) -> float:
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def prepare_clipped(
    raw: pd.DataFrame, schema: Schema, *, all_columns: bool = False, source: str = "data"
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``clip_to_schema`` then ``Schema.prepare``: the prepared frame and the clip counts."""
    clipped, counts = clip_to_schema(raw, schema, all_columns=all_columns, source=source)
    return schema.prepare(clipped, source=source), counts
