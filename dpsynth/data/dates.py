"""Dates and datetimes as offsets from a PUBLIC origin, in a public unit, inside public bounds.

A column declared ``{kind: integer, origin: "2100-01-01", unit: day, low: 0, high: 36525}``
holds dates in the data: :meth:`Schema.prepare` turns them into the number of ``unit``s
since ``origin`` (then checks them against [low, high] like any number), generators model the
offsets, and :func:`from_offsets` turns sampled offsets back into ISO dates / datetimes. The
origin and bounds are written from documentation (e.g. a data set's published date range, or
MIMIC's documented shift into 2100-2200), never read off the data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

UNITS = {"day": "D", "hour": "h", "minute": "min", "second": "s"}


def parse_origin(origin: str) -> pd.Timestamp:
    return pd.Timestamp(origin)


def to_offsets(series: pd.Series, *, origin: str, unit: str) -> pd.Series:
    """Dates (strings or datetimes) -> float offsets in ``unit`` since ``origin``; unparseable -> NaN."""
    stamps = pd.to_datetime(series, errors="coerce", format="mixed")
    delta = stamps - parse_origin(origin)
    return delta / pd.Timedelta(1, unit=UNITS[unit])


def from_offsets(values: pd.Series, *, origin: str, unit: str) -> pd.Series:
    """Offsets -> ISO text: 'YYYY-MM-DD' for day units, 'YYYY-MM-DD HH:MM:SS' otherwise; missing stays missing."""
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    stamps = parse_origin(origin) + pd.to_timedelta(numbers.to_numpy(), unit=UNITS[unit])
    text = pd.Series(stamps, index=values.index).dt.strftime("%Y-%m-%d" if unit == "day" else "%Y-%m-%d %H:%M:%S")
    return text.where(~np.isnan(numbers.to_numpy()), None).astype(object)
