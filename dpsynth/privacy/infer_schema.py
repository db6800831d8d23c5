"""Estimate a schema for a user table with DP mechanisms, every statistic charged to the ledger.

Used when a user has a file but no declared schema (``--infer-schema``). It reads the
TRAINING split only, and nothing about a column is taken from pandas' type inference: every
cell is classified on its own (missing, text, a small integer -1..31, an integer or a
fractional number in a signed power-of-two bin), and everything decided from those classes
comes from noisy counts. Two Gaussian releases share ``budget.preprocessing_share`` of the
budget:

1. **kinds and coarse ranges**: one histogram of the cell classes per column (each row adds one
   count to each column's histogram: L2 sensitivity sqrt(k) for k columns). A class is *seen*
   when its noisy count clears a threshold set so that an empty class passes with probability
   below 1e-3 over the whole table. Mostly text -> categorical; numbers with a fractional class
   seen -> continuous; else integer. An integer column whose range is {0, 1} is binary; one whose
   range holds at most ``max_levels`` integers, or whose seen values (at most ``max_levels``) hold
   90% of its mass, is categorical over those integers (step 2 counts them one by one). A small
   integer holding at least ``atom_share`` of a numeric column's noisy mass is kept as an *atom*
   (a point mass, e.g. 0 for "none" or a score's maximum), which the generators reproduce exactly.
2. **fine bounds and category lists**, one release over disjoint columns: each numeric column's
   histogram over 32 equal bins of its coarse range (bounds = the outer edges of the outermost
   seen bins, widened by one bin, kept inside the coarse range), and Gaussian partition selection
   of each text column's values (kept when above a threshold set for an additive delta of
   ``delta / 10``, entered in the ledger; values not kept map to ``__other__``).

A column none of whose value classes clears the noise (mostly missing, or spread too thin for
this budget) is listed under the schema's ``drop`` (a DP decision, charged like the rest) unless it
is the target or a sensitive column, which is then a one-line error.

Public rules that cost nothing: every column is nullable except the target (so whether a column
has missing values is not revealed); every inferred column has ``clip: true`` (values outside the
estimated bounds are clipped, unknown categories map to ``__other__``, a stray small integer to the
nearest kept one). ``--target`` names the outcome; ``--sensitive`` marks subgroup columns.

Prefer a declared schema (``dpsynth schema draft``): it costs no budget and keeps exact domains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from dpsynth.data.schema import Column, Schema
from dpsynth.errors import DataError
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.ledger import Ledger
from dpsynth.privacy.mechanisms import gaussian_noise, preprocessing_noise_multiplier

OTHER = "__other__"
_EXPONENTS = np.arange(-10, 41)  # |x| bins [2^e, 2^(e+1)) for e in -10..40, plus a zero bin
FINE_BINS = 32
MAX_INT_CODES = 40  # an integer column whose coarse range holds at most this many values is counted per value
FALSE_POSITIVE = 1e-3  # probability that any empty class of the whole table is "seen"


def _grid() -> np.ndarray:
    """Public bin edges: -2^41 ... -2^-10, 0 (a zero bin [-2^-10, 2^-10)), 2^-10 ... 2^41."""
    pos = 2.0 ** np.append(_EXPONENTS, _EXPONENTS[-1] + 1)
    return np.concatenate([-pos[::-1], pos])


EDGES = _grid()
N_BINS = len(EDGES) - 1
# class layout of a column's histogram: missing, text, exact zero, integer bins, fractional bins
MISSING, TEXT, ZERO = 0, 1, 2
INT0 = 3
FRAC0 = INT0 + N_BINS
N_CLASSES = FRAC0 + N_BINS


def cell_classes(series: pd.Series) -> np.ndarray:
    """The class of every cell, from the cell alone (no column-level type inference)."""
    s = series.astype(object).map(lambda v: v if pd.isna(v) else int(v)) if pd.api.types.is_bool_dtype(series) \
        else series
    missing = s.isna().to_numpy()
    if s.dtype == object:
        missing |= s.map(lambda v: isinstance(v, str) and v.strip() == "").to_numpy()
    x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
    x[missing] = np.nan
    number = np.isfinite(x)
    classes = np.full(len(s), TEXT, dtype=np.int64)  # not missing and not a finite number: text
    classes[missing] = MISSING
    whole = number & (np.mod(np.where(number, x, 0.0), 1.0) == 0)
    binned = np.clip(np.searchsorted(EDGES, np.clip(np.nan_to_num(x), EDGES[0], EDGES[-1]), side="right") - 1,
                     0, N_BINS - 1)
    zero = whole & (x == 0)
    classes[zero] = ZERO
    big = whole & ~zero
    classes[big] = INT0 + binned[big]
    frac = number & ~whole
    classes[frac] = FRAC0 + binned[frac]
    return classes


def _threshold(std: float, tests: int, p: float = FALSE_POSITIVE) -> float:
    return float(std * norm.isf(p / max(1, tests)))


@dataclass
class _Seen:
    """Release-1 decisions for one column."""

    kind: str  # "categorical" (text), "integer" or "continuous"
    coarse: tuple[float, float] | None = None  # numeric: [low, high] covering every seen class
    zero_atom: bool = False
    numeric_mass: float = 0.0

    @property
    def int_range(self) -> range | None:
        if self.kind != "integer":
            return None
        values = range(int(math.ceil(self.coarse[0])), int(math.floor(self.coarse[1])) + 1)
        return values if 0 < len(values) <= MAX_INT_CODES else None


def _decide(noisy: np.ndarray, tau: float, *, atom_share: float) -> _Seen | None:
    seen = noisy > tau
    ints = np.nonzero(seen[INT0:FRAC0])[0]
    fracs = np.nonzero(seen[FRAC0:])[0]
    numeric_mass = float(noisy[ZERO:][seen[ZERO:]].sum())
    if seen[TEXT] and noisy[TEXT] >= numeric_mass:
        return _Seen("categorical")
    if not seen[ZERO] and not len(ints) and not len(fracs):
        return None
    kind = "continuous" if len(fracs) else "integer"
    # widen over adjacent power-of-two bins that still hold clear mass (thin bins near zero)
    combined = noisy[INT0:FRAC0] + noisy[FRAC0:]
    bins = np.union1d(ints, fracs).astype(int)
    if len(bins):
        lo, hi = int(bins[0]), int(bins[-1])
        while lo > 0 and combined[lo - 1] > 2.0 * tau / 4.5:
            lo -= 1
        while hi < N_BINS - 1 and combined[hi + 1] > 2.0 * tau / 4.5:
            hi += 1
        ints = np.union1d(ints, [b for b in (lo, hi) if noisy[INT0 + b] > 0 and noisy[FRAC0 + b] <= noisy[INT0 + b]])
        fracs = np.union1d(fracs, [b for b in (lo, hi) if noisy[FRAC0 + b] > noisy[INT0 + b]])
    lows = [float(EDGES[b]) for b in np.union1d(ints, fracs).astype(int)]
    # integer bin [e, e') holds the integers ceil(e) .. ceil(e') - 1
    highs = [float(EDGES[int(b) + 1]) for b in fracs] + [float(math.ceil(EDGES[int(b) + 1]) - 1) for b in ints]
    if seen[ZERO]:
        lows.append(0.0)
        highs.append(0.0)
    low, high = min(lows), max(highs)
    zero_atom = bool(seen[ZERO] and noisy[ZERO] >= atom_share * numeric_mass)
    return _Seen(kind, (low, high if high > low else low + 1.0), zero_atom, numeric_mass)


def infer_schema_dp(
    frame: pd.DataFrame,
    *,
    budget: Budget,
    ledger: Ledger,
    rng: np.random.Generator,
    name: str = "table",
    target: str | None = None,
    sensitive: Sequence[str] = (),
    max_levels: int = 10,
    atom_share: float = 0.1,
) -> tuple[Schema, Callable[[pd.DataFrame], pd.DataFrame]]:
    """Return a DP-estimated schema (every inferred column ``clip: true``) and a function that
    prepares frames under it (clip onto the schema, then ``Schema.prepare``)."""
    names = [str(c) for c in frame.columns]
    for role, cols in (("target", [target] if target else []), ("sensitive", list(sensitive))):
        unknown = [c for c in cols if c not in names]
        if unknown:
            raise DataError(f"--{role}: column(s) {unknown} are not in the data (columns: {names[:12]}...)")
    k = len(names)
    sigma = preprocessing_noise_multiplier(budget, delta=ledger.delta, releases=2)
    secure = budget.secure_mode

    # ---- release 1: cell classes of every column ---------------------------------------------
    ledger.record_gaussian(purpose="DP column kinds, coarse ranges and atoms (cell-class histograms)",
                           noise_multiplier=sigma, params={"histograms": k, "l2_sensitivity": math.sqrt(k),
                                                           "classes_per_column": N_CLASSES})
    std1 = sigma * math.sqrt(k)
    tau1 = _threshold(std1, k * N_CLASSES)
    decisions: dict[str, _Seen] = {}
    for c in names:
        counts = np.bincount(cell_classes(frame[c]), minlength=N_CLASSES).astype(float)
        noisy = counts + gaussian_noise(counts.shape, std=std1, rng=rng, secure=secure)
        seen = _decide(noisy, tau1, atom_share=atom_share)
        if seen is None and (c == target or c in set(sensitive)):
            raise DataError(
                f"column '{c}': too few rows to infer its kind and range privately at this budget; declare it in a"
                " schema (dpsynth schema draft) or raise privacy.preprocessing_share"
            )
        if seen is not None:
            decisions[c] = seen
    dropped = [c for c in names if c not in decisions]
    if len(dropped) == len(names):
        raise DataError("too few rows to infer any column's kind privately at this budget; declare a schema "
                        "(dpsynth schema draft) or raise privacy.preprocessing_share")

    # ---- release 2: fine bounds of numeric columns, category lists of text columns -----------
    fine = [c for c, d in decisions.items() if d.coarse is not None]
    text = [c for c, d in decisions.items() if d.kind == "categorical"]
    k2 = len(fine) + len(text)
    std2 = sigma * math.sqrt(max(1, k2))
    columns: dict[str, Column] = {}
    if fine:
        ledger.record_gaussian(purpose="DP bounds, small-integer codes and atoms of numeric columns (histograms "
                                       "of the coarse ranges)",
                               noise_multiplier=std2 / math.sqrt(len(fine)),
                               params={"histograms": len(fine), "l2_sensitivity": math.sqrt(len(fine)),
                                       "bins": f"{FINE_BINS} equal bins, or one per integer when <= {MAX_INT_CODES}"})
        tau2 = _threshold(std2, len(fine) * max(FINE_BINS, MAX_INT_CODES))
        for c in fine:
            columns[c] = _numeric_column(c, frame[c], decisions[c], std=std2, tau=tau2, rng=rng, secure=secure,
                                         max_levels=max_levels, atom_share=atom_share)
    if text:
        delta_sel = ledger.delta / 10.0
        tau_sel = 1.0 + std2 * norm.isf(delta_sel / len(text))
        # a row adds at most one new key per column: each passes with prob <= P(1 + N(0, std^2) > tau)
        ledger.record_gaussian(purpose="DP category lists (Gaussian partition selection)",
                               noise_multiplier=std2 / math.sqrt(len(text)),
                               params={"columns": len(text), "l2_sensitivity": math.sqrt(len(text)),
                                       "threshold": tau_sel}, delta_spent=delta_sel)
        for c in text:
            counts = frame[c].dropna().astype(str).str.strip().value_counts()
            counts = counts[counts.index != ""]
            noisy = counts.to_numpy(dtype=float) + gaussian_noise(len(counts), std=std2, rng=rng, secure=secure)
            kept = sorted(counts.index[noisy > tau_sel].tolist())
            if c == target and len(kept) == 2:
                columns[c] = Column(name=c, kind="categorical", categories=tuple(kept), clip=False,
                                    description="categories selected with DP")
            else:
                columns[c] = Column(name=c, kind="categorical", categories=tuple(kept + [OTHER]), other=OTHER,
                                    nullable=True, clip=True,
                                    description=f"categories selected with DP; others map to {OTHER}")
    cols = []
    for c in [c for c in names if c in decisions]:
        col = columns[c]
        changes = {"sensitive": c in set(sensitive), "nullable": col.nullable and c != target}
        cols.append(Column(**{**_fields(col), **changes}))
    note = (f"; dropped (no value class clears the noise at this budget: mostly missing or too spread): "
            f"{', '.join(dropped)}") if dropped else ""
    schema = Schema(columns=tuple(cols), name=name, target=target, drop=tuple(dropped),
                    description="estimated with DP mechanisms (see the ledger); every column clip: true" + note)

    def prepare(raw: pd.DataFrame) -> pd.DataFrame:
        from dpsynth.data.clip import prepare_clipped

        return prepare_clipped(coerce_cells(raw, schema), schema, source=name)[0]

    return schema, prepare


def _numeric_column(c: str, series: pd.Series, d: _Seen, *, std: float, tau: float, rng, secure, max_levels: int,
                    atom_share: float) -> Column:
    a, b = d.coarse
    x = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    codes = d.int_range
    if codes is not None:  # one count per integer of the coarse range
        values = np.array(codes, dtype=float)
        inside = x[(x >= values[0]) & (x <= values[-1]) & (np.mod(x, 1) == 0)]
        counts = np.bincount((inside - values[0]).astype(np.int64), minlength=len(values)).astype(float)
        noisy = counts + gaussian_noise(counts.shape, std=std, rng=rng, secure=secure)
        seen = noisy > tau
        total = float(np.clip(noisy, 0, None).sum())
        kept = [int(v) for v in values[seen]]
        if set(codes) <= {0, 1}:  # a 0/1 column is binary whatever its counts
            return Column(name=c, kind="binary", categories=(0, 1), nullable=True, clip=True,
                          description="a 0/1 column seen with DP; other values map to the nearest")
        if not (kept and noisy[seen].sum() >= 0.9 * total) and len(codes) <= max_levels:
            kept = list(codes)  # a short integer range whose mass is not pinned down: one category per value
        elif not (kept and noisy[seen].sum() >= 0.9 * total):
            kept = []
        if kept and len(kept) <= max_levels:
            if set(kept) <= {0, 1}:
                return Column(name=c, kind="binary", categories=(0, 1), nullable=True, clip=True,
                              description="a 0/1 column seen with DP; other values map to the nearest")
            return Column(name=c, kind="categorical", categories=tuple(range(min(kept), max(kept) + 1)),
                          nullable=True, clip=True,
                          description="small-integer codes seen with DP; other values map to the nearest")
        atoms = tuple(float(v) for v, n in zip(values, noisy) if n > tau and n >= atom_share * total)
        return Column(name=c, kind="integer", low=int(values[0]), high=max(int(values[-1]), int(values[0]) + 1),
                      nullable=True, clip=True, atoms=atoms,
                      description="bounds estimated with DP; values outside are clipped")
    edges = np.linspace(a, b, FINE_BINS + 1)
    counts = np.histogram(x[(x >= a) & (x <= b)], bins=edges)[0].astype(float)
    noisy = counts + gaussian_noise(counts.shape, std=std, rng=rng, secure=secure)
    above = np.nonzero(noisy > tau)[0]
    if len(above):
        first, last = _trim(noisy, above, std=std)
        low, high = float(edges[first]), float(edges[last + 1])
    else:
        low, high = a, b
    atoms = (0.0,) if d.zero_atom else ()
    if atoms:
        low, high = min(low, 0.0), max(high, 0.0)
    if d.kind == "integer":
        low, high = int(math.floor(low)), int(math.ceil(high))
        high = max(high, low + 1)
    elif high <= low:
        high = low + 1.0
    return Column(name=c, kind=d.kind, low=low, high=high, nullable=True, clip=True, atoms=atoms,
                  description="bounds estimated with DP; values outside are clipped")


def _trim(noisy: np.ndarray, above: np.ndarray, *, std: float, z: float = 2.0, share: float = 0.01) -> tuple[int, int]:
    """First and last bin kept: start from the outermost bins that clearly hold data and widen
    while the noisy mass outside is more than ``share`` of the column plus ``z`` noise deviations
    (so a tail is cut only where the counts say it is nearly empty)."""
    total = float(np.clip(noisy, 0, None).sum())
    typical = float(noisy[above].mean())

    def full(mass: float, m: int) -> bool:  # the m outer bins may still hold data
        return mass + z * std * math.sqrt(m) > share * total and mass / m > 0.02 * typical

    first, last = int(above[0]), int(above[-1])
    while first > 0 and full(noisy[:first].sum(), first):
        first -= 1
    n = len(noisy)
    while last < n - 1 and full(noisy[last + 1:].sum(), n - 1 - last):
        last += 1
    return first, last


def _fields(col: Column) -> dict:
    return {"name": col.name, "kind": col.kind, "low": col.low, "high": col.high, "categories": col.categories,
            "nullable": col.nullable, "sensitive": col.sensitive, "description": col.description, "clip": col.clip,
            "other": col.other, "atoms": col.atoms}


def coerce_cells(raw: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Per-cell coercion under the inferred schema: text in a numeric column becomes missing
    (those columns are nullable), integers are rounded, categories compared as text."""
    out = raw.copy()
    for col in schema.columns:
        if col.name not in out.columns:
            continue
        if col.is_numeric:
            values = pd.to_numeric(out[col.name], errors="coerce")
            values = values.where(np.isfinite(values.astype(float)))
            out[col.name] = values.round() if col.kind == "integer" else values
        elif all(isinstance(v, str) for v in col.categories):
            out[col.name] = out[col.name].map(lambda v: v if pd.isna(v) else str(v).strip())
        else:
            values = pd.to_numeric(out[col.name], errors="coerce")
            out[col.name] = values.where(np.isfinite(values.astype(float))).round()
    return out
