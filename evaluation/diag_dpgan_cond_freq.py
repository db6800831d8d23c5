"""dp-gan diagnosis (issue 16): the DP category frequencies its conditional vector gets on a suite
table, by replaying ``DPGAN.fit``'s use of the seeded RNG up to that release (no training).

    DPSYNTH_SHARED_DATA=/work/shared/data python evaluation/diag_dpgan_cond_freq.py aids whas500 wdbc

Prints, per epsilon and seed of the suite grid, the target's true training-split counts, the
released (noisy, clipped at 0) counts and frequencies, and how many conditional blocks got a
declared category at frequency 0 (such a category is never requested by the conditional vector,
neither for fake rows in training nor at sampling). An internal evaluation: it reads the real
training split and prints its exact target counts; nothing is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dpsynth.data.splits import SplitSpec, split_table  # noqa: E402
from dpsynth.data.table import TableData  # noqa: E402
from dpsynth.generators.base import seeded_torch, torch_generator  # noqa: E402
from dpsynth.generators.tabular.gan.conditional import cond_counts, frequencies  # noqa: E402
from dpsynth.generators.tabular.gan.dp_gan import DPGAN  # noqa: E402
from dpsynth.privacy.budget import Budget  # noqa: E402
from evaluation.bench_suite_dpsgd import CANDIDATES  # noqa: E402
from evaluation.suite_tables import load_table  # noqa: E402


def main(tables: list[str]) -> None:
    for table in tables:
        frame, schema = load_table(table)
        train = split_table(frame, SplitSpec(seed=0)).train
        for eps in (0.5, 1.0, 4.0):
            for seed in (0, 1, 2):
                gan = DPGAN(**CANDIDATES["dp-gan"]["s750b"])
                rng, budget = np.random.default_rng(seed), Budget(epsilon=eps)
                with seeded_torch(rng):  # the same draws, in the same order, as DPGAN.fit -> _fit
                    ledger = gan._make_ledger(budget, len(train), None)
                    gan._build(schema)
                    torch_generator(rng)
                    counts = cond_counts(train, gan.cond_, transformer=gan.transformer_, budget=budget, ledger=ledger,
                                         rng=rng, contribution=TableData(train, schema).max_rows_per_unit)
                j = [s.column for s in gan.cond_.spans].index(schema.target)
                true = np.bincount(gan.transformer_.category_codes(train, schema[schema.target]),
                                   minlength=gan.cond_.spans[j].dim)
                zeroed = sum(int((frequencies(c) == 0).any()) for c in counts)
                print(f"{table} eps {eps:g} seed {seed}: target true counts {true.tolist()} released"
                      f" {np.round(counts[j], 1).tolist()} -> freq {np.round(frequencies(counts[j]), 3).tolist()};"
                      f" blocks with a zeroed category {zeroed}/{len(counts)}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["aids", "whas500", "wdbc"])
