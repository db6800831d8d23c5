"""DP selection of the fine codes a high-cardinality code column keeps (e.g. ICD-9 ``diag_1``).

The public hierarchy (:mod:`dpsynth.data.icd9`) gives every 3-digit category and chapter
without reading data. A column declared ``codes: icd9, top_codes: K`` keeps the K categories
with the largest *noisy* counts: one Gaussian release of the histograms of all such columns
over their whole public category space (L2 sensitivity sqrt(columns) x k rows per unit),
charged to the ledger; the choice is post-processing of that release. Every other category
is folded into its chapter's bucket, so no row is lost and the chapter marginals stay whole.
The selected domain is a DP output: it goes into the saved schema and may be released.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from dpsynth.data import icd9
from dpsynth.data.schema import Schema
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.mechanisms import noisy_counts


def selection_columns(schema: Schema) -> list[str]:
    """Code columns whose fine categories are still to be selected (``top_codes`` set)."""
    return [c.name for c in schema.columns if c.codes is not None and c.top_codes is not None]


def select_codes(
    frame: pd.DataFrame,
    schema: Schema,
    *,
    ledger: Ledger,
    noise_multiplier: float,
    rng: np.random.Generator,
    contribution: int = 1,
    secure: bool = False,
    exact: bool = False,
) -> Schema:
    """The schema with each selection column narrowed to its top-K noisy categories plus all
    chapter buckets (``top_codes`` cleared). ``frame`` is prepared on ``schema`` (values are
    categories or buckets). One Gaussian release, charged to ``ledger`` before anything is chosen.
    ``exact``: the non-private reference (exact counts, a ``non-private`` ledger entry)."""
    names = selection_columns(schema)
    if not names:
        return schema
    fine = icd9.categories()
    position = {c: i for i, c in enumerate(fine)}
    codes, sizes = [], []
    for name in names:
        # rows already in a bucket (their category was not in the declared domain) are not candidates
        values = frame[name].dropna()
        idx = values.map(lambda v: position.get(v, -1)).to_numpy(dtype=np.int64)
        codes.append(idx[idx >= 0])
        sizes.append(len(fine))
    if exact:
        ledger.record_non_private(purpose="code selection: exact category counts (non-private reference)")
        counts = [np.bincount(c, minlength=s).astype(float) for c, s in zip(codes, sizes)]
    else:
        counts = noisy_counts(codes, sizes, ledger=ledger, noise_multiplier=noise_multiplier, rng=rng,
                              purpose=f"code selection: noisy category counts of {', '.join(names)}",
                              secure=secure, contribution=contribution)
    columns = []
    for col in schema.columns:
        if col.name in names:
            noisy = counts[names.index(col.name)]
            declared = set(col.categories)
            eligible = np.array([c in declared for c in fine])
            order = np.argsort(-np.where(eligible, noisy, -np.inf), kind="stable")[: col.top_codes]
            kept = sorted(int(i) for i in order if eligible[i])
            categories = tuple(fine[i] for i in kept) + icd9.chapter_buckets()
            col = dataclasses.replace(col, categories=categories, top_codes=None)
        columns.append(col)
    return dataclasses.replace(schema, columns=tuple(columns), _index={})


def recode(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Map the code columns of a prepared frame onto ``schema``'s (narrowed) categories."""
    out = frame.copy()
    for col in schema.columns:
        if col.codes is not None:
            kept = frozenset(col.categories)
            present = out[col.name].notna()
            values = out.loc[present, col.name]
            out.loc[present, col.name] = values.map({v: icd9.coarsen(v, kept) for v in values.unique()})
    return out
