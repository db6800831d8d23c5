"""Which GROUP BYs answer a set of marginals.

Every requested marginal (a clique of columns) is a sum of some larger "cover" cube that holds
all its columns. Counting a few covers of up to ``max_cells`` cells each, instead of every
marginal on its own, cuts the number of passes over the table: AIM's 256 candidate marginals
of Diabetes-130 (every pair, every triple with the target) fit in about a dozen covers.

Greedy: cliques largest first; a clique inside an existing cover is answered by it; otherwise it
joins the cover whose union with it stays smallest within ``max_cells``, or starts a new cover.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

Clique = tuple[int, ...]


def cells(columns: Iterable[int], sizes: Sequence[int]) -> int:
    return math.prod(sizes[a] for a in columns)


def plan_covers(cliques: Iterable[Clique], sizes: Sequence[int], *, max_cells: int) -> list[Clique]:
    """Sorted column tuples whose cubes together hold every clique (each within ``max_cells``
    cells unless a clique alone is larger)."""
    covers: list[set[int]] = []
    for clique in sorted({tuple(sorted(c)) for c in cliques}, key=lambda c: (-cells(c, sizes), c)):
        q = set(clique)
        if any(q <= cover for cover in covers):
            continue
        best, best_cells = None, None
        for i, cover in enumerate(covers):
            size = cells(cover | q, sizes)
            if size <= max_cells and (best_cells is None or size < best_cells):
                best, best_cells = i, size
        if best is None:
            covers.append(q)
        else:
            covers[best] |= q
    return [tuple(sorted(c)) for c in covers]
