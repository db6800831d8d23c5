"""Synthetic mass where the real data has no support.

For every column, the public domain is cut into bins (categories; numeric columns into
``n_bins`` equal bins of their public bounds), and runs of adjacent bins that hold no real
training row but hold synthetic rows are reported with their synthetic count: "117 synthetic
rows with age in 70.5-90, real rows there: 0". Such mass is either noise the generator spread
over the public domain or a sign of a bad fit; either way a reader should see it, not a
"too small" label. An internal statistic (it reads real rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dpsynth.data.schema import Schema
from dpsynth.metrics.encoding import discretize, n_codes, numeric_bins


def unsupported_regions(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, *, n_bins: int = 20,
                        min_synthetic: int = 1) -> dict:
    """{"regions": [{column, region, n_synthetic, share_synthetic, n_real: 0}], "total_rows_flagged"}."""
    regions = []
    flagged_rows = np.zeros(len(synthetic), dtype=bool)
    for col in schema.columns:
        size = n_codes(col, n_bins=n_bins)
        real_codes = discretize(real[col.name], col, n_bins=n_bins)
        syn_codes = discretize(synthetic[col.name], col, n_bins=n_bins)
        r = np.bincount(real_codes, minlength=size)
        s = np.bincount(syn_codes, minlength=size)
        empty = (r == 0) & (s > 0)
        empty[-1] = False  # the missing-value code: nullable columns are handled by their own checks
        if col.is_numeric:
            edges = numeric_bins(col, n_bins)
            i = 0
            while i < size - 1:
                if not empty[i]:
                    i += 1
                    continue
                j = i
                while j + 1 < size - 1 and r[j + 1] == 0:
                    j += 1
                n_syn = int(s[i:j + 1].sum())
                if n_syn >= min_synthetic:
                    regions.append({"column": col.name, "region": f"{edges[i]:.4g}-{edges[j + 1]:.4g}",
                                    "n_synthetic": n_syn, "share_synthetic": n_syn / max(1, len(synthetic)),
                                    "n_real": 0})
                    flagged_rows |= (syn_codes >= i) & (syn_codes <= j)
                i = j + 1
        else:
            for code in np.flatnonzero(empty):
                if s[code] >= min_synthetic:
                    regions.append({"column": col.name, "region": f"= {col.categories[code]}",
                                    "n_synthetic": int(s[code]), "share_synthetic": float(s[code]) / max(1, len(synthetic)),
                                    "n_real": 0})
                    flagged_rows |= syn_codes == code
    regions.sort(key=lambda g: -g["n_synthetic"])
    return {"regions": regions, "rows_in_unsupported_regions": int(flagged_rows.sum()),
            "share_in_unsupported_regions": float(flagged_rows.mean()) if len(synthetic) else 0.0, "n_bins": n_bins}
