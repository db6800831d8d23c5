"""dp-gan's conditional sampler: the conditional vector of real and fake rows (CTGAN), the
resolution of ``sample(conditions=...)`` and the undoing of balanced training at sampling.

The categories of fake rows and of sampled rows come from DP frequencies (released once and
charged to the ledger by the generator); a real row's conditional vector is part of its own
example. Everything here reads no real row."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch

from dpsynth.data.schema import Schema, _key
from dpsynth.data.transform import Span, TableTransformer
from dpsynth.errors import DpsynthError
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.groups import balanced_category_probs, group_codes, group_columns_for, group_values
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.mechanisms import noisy_counts, preprocessing_noise_multiplier


class CondSpace:
    """The conditional vector: one-hot blocks of the categorical spans, one block active at a time."""

    def __init__(self, transformer: TableTransformer) -> None:
        self.spans: list[Span] = [s for s in transformer.spans if s.kind == "softmax" and s.role == "value"]
        self.offsets = np.cumsum([0] + [s.dim for s in self.spans])[:-1].tolist()
        self.dim = int(sum(s.dim for s in self.spans))

    def for_rows(self, encoded: torch.Tensor, *, gen: torch.Generator) -> torch.Tensor:
        """Per real row: pick one categorical block uniformly and copy the row's own one-hot there."""
        n = encoded.shape[0]
        cond = torch.zeros(n, self.dim)
        if not self.spans:
            return cond
        pick = torch.randint(len(self.spans), (n,), generator=gen)
        for j, (span, off) in enumerate(zip(self.spans, self.offsets)):
            rows = pick == j
            cond[rows, off : off + span.dim] = encoded[rows, span.start : span.stop]
        return cond

    def draw(self, n: int, *, probs: list[np.ndarray], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Conditional vectors for fake rows: a block uniformly, a category from its DP frequency."""
        cond = torch.zeros(n, self.dim)
        block = torch.randint(len(self.spans), (n,), generator=gen) if self.spans else torch.zeros(n, dtype=torch.long)
        category = torch.zeros(n, dtype=torch.long)
        for j, (span, off) in enumerate(zip(self.spans, self.offsets)):
            rows = (block == j).nonzero().flatten()
            if len(rows) == 0:
                continue
            cats = torch.multinomial(torch.as_tensor(probs[j], dtype=torch.float32), len(rows), replacement=True, generator=gen)
            category[rows] = cats
            cond[rows, off + cats] = 1.0
        return cond, block, category

    def fix(self, cond: torch.Tensor, fixed: dict[int, int], *, gen: torch.Generator) -> None:
        """Conditioned sampling: spread the rows over the conditioned blocks, each with its
        requested category (in place)."""
        cond.zero_()
        blocks = list(fixed.items())
        which = torch.randint(len(blocks), (cond.shape[0],), generator=gen)
        for b, (j, cat) in enumerate(blocks):
            cond[which == b, self.offsets[j] + cat] = 1.0



def cond_counts(frame: pd.DataFrame, cond: CondSpace, *, transformer: TableTransformer, budget: Budget,
                ledger: Ledger, rng: np.random.Generator, releases: int = 1, contribution: int = 1) -> list[np.ndarray]:
    """The category counts of the conditional blocks: one Gaussian release of all their
    histograms charged to the ledger (``releases``: preprocessing releases sharing the budget),
    or exact for the non-private reference."""
    schema = transformer.schema
    codes = [transformer.category_codes(frame, schema[s.column]) for s in cond.spans]
    sizes = [s.dim for s in cond.spans]
    if budget.non_private:
        ledger.record_non_private(purpose="non-private reference: exact category frequencies and plain SGD")
        counts = [np.bincount(c, minlength=k).astype(float) for c, k in zip(codes, sizes)]
    elif codes:
        sigma = preprocessing_noise_multiplier(budget, delta=ledger.delta, releases=releases)
        counts = noisy_counts(codes, sizes, ledger=ledger, noise_multiplier=sigma, rng=rng,
                              purpose="category frequencies for the conditional vector", secure=budget.secure_mode,
                              contribution=contribution)
    else:
        counts = []
    return counts


def frequencies(counts: np.ndarray) -> np.ndarray:
    """Counts (noisy, clipped at 0) to probabilities; uniform when all are 0."""
    c = np.clip(np.asarray(counts, dtype=float), 0.0, None)
    return c / c.sum() if c.sum() > 0 else np.full(len(c), 1.0 / len(c))


def resolve_conditions(conditions: Mapping[str, Any], *, schema: Schema,
                       cond: CondSpace) -> tuple[dict[int, int], dict[str, Any]]:
    """``{block: category}`` for the conditional vector and ``{column: value}`` to check."""
    fixed, checks = {}, {}
    span_index = {s.column: j for j, s in enumerate(cond.spans)}
    for name, value in conditions.items():
        if name not in schema:
            raise DpsynthError(f"cannot condition on unknown column '{name}'")
        col = schema[name]
        if col.is_numeric:
            raise DpsynthError(f"cannot condition on numeric column '{name}' (only categorical/binary columns)")
        lookup = {_key(c): i for i, c in enumerate(col.categories)}
        if _key(value) not in lookup:
            raise DpsynthError(f"condition {name}={value!r} is not a declared category {list(col.categories)}")
        fixed[span_index[name]] = lookup[_key(value)]
        checks[name] = col.categories[lookup[_key(value)]]
    return fixed, checks


def balance_accept(batch: pd.DataFrame, rng: np.random.Generator, checks: Mapping[str, Any], *, schema: Schema,
                   group_columns: tuple[str, ...], rates: np.ndarray) -> np.ndarray:
    """Undo balanced training: a model trained on batches where group g is sampled at rate
    q_g learns p(x) q_g(x) (up to a constant); keeping a row with probability q_ref / q_g
    restores p(x), with q_ref the smallest rate among the groups the conditions allow (so
    rows of a requested group are not thrown away needlessly). The rates are post-processing
    of DP counts."""
    columns = group_columns_for(schema, group_columns)
    codes, _ = group_codes(batch, schema, columns)
    allowed = np.ones(len(rates), dtype=bool)
    for code, combo in enumerate(group_values(schema, columns)):
        values = dict(zip(columns, combo))
        allowed[code] = all(_key(values[c]) == _key(v) for c, v in checks.items() if c in values)
    return rng.random(len(batch)) < rates[allowed].min() / rates[codes]


def balanced_cond_probs(cond_probs: list[np.ndarray], spans, groups: dict, rates: np.ndarray,
                        schema: Schema) -> list[np.ndarray]:
    """During balanced training, fake rows' conditional categories of the group columns follow
    the shares the balanced Poisson batches have (post-processing of the DP counts)."""
    probs = list(cond_probs)
    for j, span in enumerate(spans):
        if span.column in groups["columns"]:
            probs[j] = balanced_category_probs(groups["counts"], rates, schema, groups["columns"], span.column)
    return probs


def rejection_sample(draw: Callable[[int], pd.DataFrame], n: int, *, checks: Mapping[str, Any],
                     accept: Callable[[pd.DataFrame], np.ndarray] | None,
                     max_tries: int) -> tuple[pd.DataFrame | None, int]:
    """Draw batches and keep the rows that meet ``checks`` (and ``accept``) until n are kept:
    (the n rows, n), or (None, rows kept) after ``max_tries`` batches."""
    kept: list[pd.DataFrame] = []
    have = 0
    for _ in range(max_tries):
        batch = draw(max(1024, 2 * (n - have)))
        mask = np.ones(len(batch), dtype=bool)
        for name, value in checks.items():
            mask &= batch[name].map(_key).to_numpy() == _key(value)
        if accept is not None:
            mask &= accept(batch)
        kept.append(batch[mask])
        have += int(mask.sum())
        if have >= n:
            return pd.concat(kept, ignore_index=True).iloc[:n].reset_index(drop=True), n
    return None, have
