"""The code of a valid numeric value in SQL, without one comparison per edge.

``ColumnBins._numeric_codes`` gives ``n_atoms + clip(searchsorted(edges, x, 'right') - 1)``,
then the atoms' own codes. A sum of one comparison per interior edge reproduces that exactly
but costs one comparison per bin per row (most of the encode pass). Two exact replacements:

- integer column over at most ``LOOKUP_MAX`` integers: a constant list holding the code of
  every integer of ``[ceil(low), floor(high)]``, computed by ``_numeric_codes`` itself (atoms
  included), indexed by ``x - ceil(low)``: one list lookup per row, exact by construction;
- otherwise the arithmetic bin ``g = clip(floor((x - e_0) / w), 0, B - 1)`` plus an edge check,
  ``g + [x >= e_{g+1}] - [x < e_g]``. That is exact when ``g`` is never more than one bin off,
  which is checked here, on the public edges, in the same IEEE double arithmetic the engine
  uses: ``g`` is monotone, so it suffices that ``g(e_k) >= k - 1`` and
  ``g(prev(e_k)) <= k`` at every interior edge ``e_k``. Where the check fails (degenerate
  edges) the comparison sum is used.

Only the schema's edges, bounds and atoms enter the SQL.
"""

from __future__ import annotations

import math

import numpy as np

LOOKUP_MAX = 4096  # integers per lookup list (one SQL literal per integer)


def lookup(values, index: str, dialect) -> str:
    """1-based element ``index`` of a constant list."""
    items = ", ".join(values)
    if dialect.name == "spark":
        return f"element_at(array({items}), CAST({index} AS INT))"
    return f"list_extract([{items}], CAST({index} AS BIGINT))"


def _guess(x: np.ndarray, e0: float, width: float, n_bins: int) -> np.ndarray:
    return np.clip(np.floor((x - e0) / width), 0, n_bins - 1)


def arithmetic_is_exact(edges: np.ndarray) -> bool:
    """Whether the arithmetic bin is at most one off the true bin for every double (see module doc)."""
    edges = np.asarray(edges, dtype=float)
    n_bins = len(edges) - 1
    if n_bins < 1 or not np.all(np.diff(edges) > 0):
        return False
    width = (edges[-1] - edges[0]) / n_bins
    if not (math.isfinite(width) and width > 0):
        return False
    k = np.arange(1, n_bins)
    inner = edges[1:-1]
    return bool(np.all(_guess(inner, edges[0], width, n_bins) >= k - 1)
                and np.all(_guess(np.nextafter(inner, -np.inf), edges[0], width, n_bins) <= k))


def bin_code(bins, number: str, dialect) -> str:
    """SQL for the code of a value ``number`` (a DOUBLE) already known to be valid: present, a
    number, integral for an integer column, inside the declared bounds."""
    col = bins.column
    if col.kind == "integer":
        lo, hi = math.ceil(col.low), math.floor(col.high)
        if hi - lo + 1 <= LOOKUP_MAX:
            codes = bins._numeric_codes(np.arange(lo, hi + 1, dtype=float))
            return lookup([str(int(c)) for c in codes], f"{number} - {lo} + 1", dialect)
    n_atoms = len(bins.atoms)
    atoms = [f"WHEN {number} = {dialect.double(a)} THEN {j}" for j, a in enumerate(bins.atoms)]
    edges = np.asarray(bins.edges, dtype=float)
    n_bins = len(edges) - 1
    if n_bins == 1:
        binned = "0"
    elif arithmetic_is_exact(edges):
        width = (edges[-1] - edges[0]) / n_bins
        g = (f"CAST(least(greatest(floor(({number} - {dialect.double(edges[0])}) / {dialect.double(width)}), 0), "
             f"{n_bins - 1}) AS INTEGER)")
        listed = [dialect.double(e) for e in edges]  # 1-based: e_k is element k + 1
        up = f"CAST({g} < {n_bins - 1} AND {number} >= {lookup(listed, f'{g} + 2', dialect)} AS INTEGER)"
        down = f"CAST({g} > 0 AND {number} < {lookup(listed, f'{g} + 1', dialect)} AS INTEGER)"
        binned = f"{g} + {up} - {down}"
    else:  # searchsorted(edges, x, 'right') - 1, clipped: the interior edges <= x
        binned = " + ".join(f"CAST({number} >= {dialect.double(e)} AS INTEGER)" for e in edges[1:-1])
    code = f"{n_atoms} + {binned}" if n_atoms else binned
    return f"CASE {' '.join(atoms)} ELSE {code} END" if atoms else code
