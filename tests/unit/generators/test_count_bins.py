"""Public binning rule for skewed counts: atoms low, low + 1, ... are width-1 codes, the bins start after them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dpsynth.data.schema import Column
from dpsynth.generators.tabular.marginal.discretize import column_bins


def test_count_atoms_give_width_one_codes_and_the_bins_cover_the_rest():
    col = Column("number_inpatient", "integer", low=0, high=30, atoms=(0, 1, 2, 3, 4, 5))
    bins = column_bins(col, bins=8)
    assert bins.n_values == 14 and bins.edges[0] == 6 and bins.edges[-1] == 31  # 6 atoms + 8 bins over 6..30
    x = pd.Series([0, 1, 2, 3, 4, 5, 6, 9, 30])
    codes = bins.encode(x)
    assert codes.tolist()[:6] == [0, 1, 2, 3, 4, 5] and codes[6] == 6 and codes[-1] == 13
    back = bins.decode(codes, np.random.default_rng(0))
    assert back[:6].tolist() == [0, 1, 2, 3, 4, 5] and (back[6:] >= 6).all()
    # a small range made of atoms then width-1 bins: every value is its own code
    small = column_bins(Column("days", "integer", low=1, high=14, atoms=(1, 2, 3, 4, 5, 6)), bins=8)
    assert small.n_values == 14 and np.array_equal(small.decode(small.encode(pd.Series(range(1, 15))),
                                                               np.random.default_rng(0)), np.arange(1, 15))
    # no run at the low end (an atom elsewhere): the bins keep the whole range, as before
    assert column_bins(Column("score", "integer", low=0, high=15, atoms=(15,)), bins=8).edges[0] == 0
