"""JSON for internal results: infinity as "inf", numpy scalars as Python numbers."""

from __future__ import annotations

import math

import numpy as np


def json_default(obj):
    if isinstance(obj, float) and math.isinf(obj):
        return "inf"
    if isinstance(obj, (np.generic,)):
        return obj.item()
    raise TypeError(type(obj).__name__)
