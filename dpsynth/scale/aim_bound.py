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

``bounded(params)`` applies the fixed ``COMPUTE_BOUND`` (opt-in, ``--aim-bound`` in bench_scale).

The default rule on the large-table path (``large_table_rule``, scale14b): the fixed bound hurt
wide small tables (actg175, 26 columns: validation TSTR/TRTR 0.990 -> 0.783) because T = 32 with
d = 26 columns gives the one-way marginals d / T = 81% of the measuring budget. The rule uses
public facts only (the training row count n, the number of columns d):

- n < ``LARGE_ROWS``: nothing changes (aim's defaults; every suite table is far below it);
- n >= ``LARGE_ROWS``: T = ``ROUNDS_PER_COLUMN`` x d rounds (so the one-way marginals take
  1 / ``ROUNDS_PER_COLUMN`` of the measuring budget whatever the width), and the junction tree
  is capped at ``MODEL_SIZE_MB``. The model loop's worst case (``work_bound``) then depends on
  d only, never on n, and the counting is linear in n.

The row count is treated as public, as the rest of dpsynth already does (delta < 1 / n is
checked against it; ``--engine auto`` switches on it; split sizes are released). It decides only
which public parameters aim runs with; AIM's zCDP plan spends exactly the target epsilon under
either setting (the last round takes what is left). Constants chosen on VALIDATION data only:
Diabetes-130 training patients replicated to 1M rows, TSTR AUROC on real held-out Diabetes-130
patients (validation split), eps 1 (evaluation/bench_scale_utility.py; evaluation/results/scale.md):
T = 4d gave validation AUROC 0.5689 (fit 282 s) vs 0.5536 for T = 2d (17 s), seed 0. LARGE_ROWS is a
compute choice: aim's defaults took 1414.5 s at 1M rows. Measured under the rule (DuckDB, one thread):
100M rows 339.0 s, 1.25 GiB peak RSS with the target-3-way workload (load 5-9); 121.0 s, 1.26 GiB with aim's
current default workload (load 1-3).
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


LARGE_ROWS = 1_000_000  # the rule applies from this many training rows (public: the ledger's delta < 1/n uses it)
ROUNDS_PER_COLUMN = 4  # T = 4 d: the one-way marginals take 1/4 of the measuring budget
MODEL_SIZE_MB = 4.0  # junction tree <= 524,288 float64 cells


def _aim_default(name: str):
    """aim's constructor default for ``name`` (read from the generator, not restated here)."""
    import inspect

    from dpsynth.generators.tabular.marginal.aim import AIM

    return inspect.signature(AIM.__init__).parameters[name].default


def large_table_rule(n_rows: int, n_columns: int, params: Mapping | None = None) -> tuple[dict, str | None]:
    """aim's parameters on a table of ``n_rows`` training rows and ``n_columns`` modelled columns
    (both public), and why (None when the rule does not apply). Only unset settings are filled:
    ``max_iterations`` None and ``max_model_size`` at aim's default; an explicit value is kept."""
    out = dict(params or {})
    if n_rows < LARGE_ROWS:
        return out, None
    default_size = _aim_default("max_model_size")  # aim's own default (an explicit other value is kept)
    rounds = ROUNDS_PER_COLUMN * n_columns
    filled = []
    if out.get("max_iterations") is None:
        out["max_iterations"] = rounds
        filled.append(f"max_iterations = {ROUNDS_PER_COLUMN} x {n_columns} columns = {rounds} rounds")
    if out.get("max_model_size", default_size) == default_size:
        out["max_model_size"] = MODEL_SIZE_MB
        filled.append(f"max_model_size = {MODEL_SIZE_MB:g} MB")
    if not filled:
        return out, None
    work = work_bound(max_iterations=out["max_iterations"], max_model_size=out["max_model_size"])
    why = (f"aim large-table rule: {n_rows:,} training rows >= {LARGE_ROWS:,} (public row count), so "
           f"{', '.join(filled)}; model-loop worst case {work:.3g} cell-iterations, independent of the rows; "
           f"epsilon unchanged (set max_iterations / max_model_size explicitly to override)")
    return out, why


def apply_large_table_rule(generator, n_rows: int, n_columns: int, note=None) -> str | None:
    """Set the rule's parameters on a constructed ``aim`` generator (any other generator: untouched);
    the reason is passed to ``note`` (default: printed to stderr) and returned."""
    import sys

    if getattr(generator, "name", None) != "aim":
        return None
    current = {"max_iterations": generator.max_iterations, "max_model_size": generator.max_model_size}
    params, why = large_table_rule(n_rows, n_columns, current)
    if why is None:
        return None
    generator.max_iterations = params["max_iterations"]
    generator.max_model_size = params["max_model_size"]
    (note or (lambda text: print(text, file=sys.stderr, flush=True)))(why)
    return why
