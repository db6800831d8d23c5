"""A public compute bound for ``aim`` on tables of millions of rows.

Why AIM's fit time grows with the rows (measured on Diabetes-130 replicated to 1M rows, DuckDB
counting, defaults: 80 MB model cap, T = 16 x 17 = 272 rounds; evaluation/results/scale.md):
the counting is seconds; the time is the model loop, and each round costs mirror descent on
the current junction tree, proportional to its cells (0.4 s at 100 cells, 2.4 s at 150k, 35 s
at 3.2M cells per 50-iteration refit). AIM's noise is fixed in counts while the marginals grow
with n, so at large n (a) every measurement moves the model, the anneal test rarely fires and
the run keeps the small per-round budget of a T = 272 plan for many rounds, and (b) the
selection's size penalty (noise x cells) shrinks against the errors, so large cliques win and
the tree climbs to the size cap (10.5M cells at 80 MB). Neither is bounded by anything but T and
``max_model_size``, whose defaults allow hours.

The bound: both are public parameters of ``aim`` (``max_iterations`` = T, ``max_model_size``
in MB), independent of the data. ``COMPUTE_BOUND`` sets them so that the model loop's
worst-case work, ``work_bound``, is fixed whatever the number of rows; the DP accounting is
unchanged (AIM plans its zCDP budget over T rounds and its last round spends what is left, so
the run still ends exactly at the target epsilon). A smaller T also means fewer, less noisy
measurements, which suits a large table, where the noise is small against the counts.

Use it by passing the parameters (a run config's ``params:``, or ``bounded(params)``); an
explicit smaller value is kept. It is not switched on by the engine or the row count: the row
count is a fact about the data, so choosing parameters from it would be a data-dependent choice
outside the ledger.
"""

from __future__ import annotations

import math
from typing import Mapping

COMPUTE_BOUND = {"max_iterations": 32, "max_model_size": 4.0}  # T rounds; junction tree <= 4 MB (524,288 cells)
BYTES_PER_CELL = 8  # aim.BYTES_PER_CELL: float64 cells


def bounded(params: Mapping | None = None, bound: Mapping = COMPUTE_BOUND) -> dict:
    """``params`` for ``aim`` with every bounded setting at most the bound (unset counts as unbounded)."""
    out = dict(params or {})
    for key, cap in bound.items():
        value = out.get(key)
        out[key] = cap if value is None else min(value, cap)
    return out


def work_bound(*, max_iterations: int, max_model_size: float, pgm_iters: int = 50, final_pgm_iters: int = 1000,
               round_iters: int | None = None) -> int:
    """Worst-case mirror-descent work of the model loop, in cell-iterations: every round refits a
    tree of at most ``max_model_size`` MB with ``round_iters`` iterations (``pgm_iters``, or the most a
    round may run when the anneal test iterates to convergence), then the final fit. It depends on
    public parameters only."""
    cells = math.floor(max_model_size * 2**20 / BYTES_PER_CELL)
    per_round = pgm_iters if round_iters is None else round_iters
    return cells * (max_iterations * per_round + final_pgm_iters)
