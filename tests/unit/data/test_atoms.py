"""Point masses (schema ``atoms``) survive the shared encoders of the marginal and DP-SGD generators."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from dpsynth.config import build_generator
from dpsynth.data.schema import Column, Schema
from dpsynth.data.table import TableData
from dpsynth.data.transform import TableTransformer
from dpsynth.errors import SchemaError
from dpsynth.generators.tabular.marginal.discretize import Discretizer
from dpsynth.privacy.budget import Budget


def _data(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    coma = np.where(rng.random(n) < 0.7, 0, rng.integers(1, 16, n))
    lab = np.where(rng.random(n) < 0.5, 0.0, np.clip(rng.gamma(2.0, 2.0, n), 0, 40))
    lab[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({"coma": coma, "lab": lab})


def _schema(atoms=True):
    return Schema(columns=(Column("coma", "integer", low=0, high=15, atoms=(0,) if atoms else ()),
                           Column("lab", "continuous", low=0, high=40, nullable=True, atoms=(0,) if atoms else ())))


def test_discretizer_and_transformer_keep_atoms_exact():
    schema = _schema()
    frame = schema.prepare(_data())
    disc = Discretizer(schema, bins=8)
    back = disc.decode(disc.encode(frame), np.random.default_rng(0))
    for name in ("coma", "lab"):
        assert ((back[name] == 0) == (frame[name] == 0)).all()
    tr = TableTransformer(schema)
    assert [s.role for s in tr.spans] == ["value", "atom", "value", "atom", "missing"]
    decoded = tr.decode(tr.encode(frame))
    assert ((decoded["lab"] == 0) == (frame["lab"] == 0)).all() and decoded["lab"].isna().sum() == frame["lab"].isna().sum()
    assert ((decoded["coma"] == 0) == (frame["coma"] == 0)).all()


def test_marginal_generator_reproduces_the_point_mass():
    frame = _schema().prepare(_data())
    ks = {}
    for atoms in (False, True):
        schema = _schema(atoms)
        gen = build_generator("independent", {}).fit(TableData(frame, schema), budget=Budget(epsilon=2.0),
                                                     rng=np.random.default_rng(1))
        syn = gen.sample(4000, rng=np.random.default_rng(2)).frame
        ks[atoms] = ks_2samp(frame["lab"].dropna(), syn["lab"].astype(float).dropna()).statistic
    real_vs_real = ks_2samp(frame["lab"].dropna()[:1500], frame["lab"].dropna()[1500:]).statistic
    assert ks[False] > 0.3 and ks[True] < real_vs_real + 0.05, (ks, real_vs_real)


def test_atoms_are_validated():
    with pytest.raises(SchemaError, match="atom 50"):
        Column("lab", "continuous", low=0, high=40, atoms=(50,))
    with pytest.raises(SchemaError, match="numeric columns only"):
        Column("ward", "categorical", categories=("a",), atoms=(0,))
