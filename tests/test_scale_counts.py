"""Marginal counts on DuckDB / Spark equal the numpy counts, and a fit on them is the same fit.

The engines count a file that is never loaded into pandas; the DP result must be the numpy
path's exactly: same exact counts (so, with the same seed, the same noise, ledger and model).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpsynth.data.loaders import read_table
from dpsynth.data.schema import Schema
from dpsynth.data.table import TableData
from dpsynth.errors import DataError
from dpsynth.generators.tabular.marginal.discretize import Discretizer
from dpsynth.generators.registry import get_generator_class
from dpsynth.privacy.budget import Budget
from dpsynth.scale.counts import ArrayCounts, RecodedCounts
from dpsynth.scale.covers import cells, plan_covers
from dpsynth.scale.source import TableSource
from dpsynth.scale.train import split_mask

pytest.importorskip("duckdb")

REPO = Path(__file__).resolve().parents[1]
SCHEMA = {
    "name": "scale_toy",
    "target": "outcome",
    "drop": ["pid"],
    "columns": [
        {"name": "race", "kind": "categorical", "categories": ["White", "Black", "Asian", "?"], "nullable": True},
        {"name": "site", "kind": "categorical", "categories": [1, 2, 3, 7]},
        {"name": "age", "kind": "integer", "low": 18, "high": 90},
        {"name": "visits", "kind": "integer", "low": 0, "high": 5},
        {"name": "bmi", "kind": "continuous", "low": 10.0, "high": 60.0, "nullable": True},
        {"name": "outcome", "kind": "binary", "categories": [0, 1]},
    ],
}


def _toy_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    race = rng.choice(["White", "Black", "Asian", "?", None], size=n, p=[0.5, 0.2, 0.1, 0.1, 0.1])
    bmi = np.round(rng.uniform(10, 60, size=n), 3)
    bmi[rng.random(n) < 0.1] = np.nan
    bmi[:4] = [10.0, 60.0, 16.25, 22.5]  # the bounds and bin edges themselves
    age = rng.integers(18, 91, size=n)
    age[:2] = [18, 90]
    return pd.DataFrame({
        "pid": np.arange(n) + 1000, "race": race, "site": rng.choice([1, 2, 3, 7], size=n),
        "age": age, "visits": rng.integers(0, 6, size=n), "bmi": bmi,
        "outcome": (rng.random(n) < 0.3).astype(int),
    })


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scale")
    frame = _toy_frame()
    schema = Schema.from_dict(SCHEMA)
    frame.to_parquet(folder / "toy.parquet", index=False)
    frame.to_csv(folder / "toy.csv", index=False)
    (folder / "schema.json").write_text(json.dumps(SCHEMA))
    return folder, schema


def _cliques(d: int) -> list[tuple[int, ...]]:
    return [c for k in (1, 2, 3) for c in itertools.combinations(range(d), k)] + [(3, 0), (5, 2, 1)]


def _numpy_counts(path: Path, schema: Schema, disc: Discretizer, mask=None) -> ArrayCounts:
    codes = disc.encode(schema.prepare(read_table(path), source=str(path)))
    return ArrayCounts(codes if mask is None else codes[mask], disc.sizes)


def _engine_counts(engine: str, path: Path, schema: Schema, disc: Discretizer, mask=None, max_cells=64):
    source = TableSource(path, schema, engine=engine, threads=2, memory_limit="1GB", train_mask=mask)
    if engine == "spark":
        from dpsynth.scale.spark_counts import SparkCounts

        return SparkCounts(source, disc.columns, max_cells=max_cells)
    from dpsynth.scale.duckdb_counts import DuckDBCounts

    return DuckDBCounts(source, disc.columns, max_cells=max_cells)


def test_covers_hold_every_clique_within_the_cap():
    sizes = [4, 3, 8, 8, 2, 10, 5]
    cliques = _cliques(len(sizes))
    covers = plan_covers(cliques, sizes, max_cells=400)
    assert all(any(set(c) <= set(cover) for cover in covers) for c in cliques)
    alone = {tuple(sorted(c)) for c in cliques if cells(c, sizes) > 400}  # too big to share: counted alone
    assert all(cells(cover, sizes) <= 400 or cover in alone for cover in covers)
    assert len(covers) < len({tuple(sorted(c)) for c in cliques if len(c) == 3})  # fewer passes than triples


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_duckdb_counts_equal_numpy_counts(toy, fmt):
    folder, schema = toy
    path = folder / f"toy.{fmt}"
    disc = Discretizer(schema, bins=5)
    mask = split_mask(600, __import__("dpsynth.data.splits", fromlist=["SplitSpec"]).SplitSpec(seed=3))
    for m in (None, mask):
        expected = _numpy_counts(path, schema, disc, m)
        counter = _engine_counts("duckdb", path, schema, disc, m)
        try:
            assert counter.n_rows == expected.n_rows == (600 if m is None else int(mask.sum()))
            cliques = _cliques(len(disc.sizes))
            for c, got, want in zip(cliques, counter.counts(cliques), expected.counts(cliques)):
                assert got.dtype == want.dtype and np.array_equal(got, want), c
            assert counter.stats["covers"] < len(cliques)
            maps = [np.minimum(np.arange(s), max(1, s - 3)) for s in disc.sizes]  # merge each column's last cells
            pairs = list(itertools.combinations(range(len(disc.sizes)), 2))
            recoded = RecodedCounts(counter, maps).counts(pairs)
            codes = np.stack([mp[expected._codes[:, j]] for j, mp in enumerate(maps)], axis=1)
            direct = ArrayCounts(codes, [int(mp.max()) + 1 for mp in maps]).counts(pairs)
            assert all(np.array_equal(a, b) for a, b in zip(recoded, direct))
        finally:
            counter.close()


@pytest.mark.skipif(importlib.util.find_spec("pyspark") is None or shutil.which("java") is None,
                    reason="pyspark or Java not installed (pip install -e '.[scale]', Java 17)")
def test_spark_counts_equal_numpy_counts(toy):
    folder, schema = toy
    path = folder / "toy.parquet"
    disc = Discretizer(schema, bins=5)
    mask = np.random.default_rng(1).random(600) < 0.6
    expected = _numpy_counts(path, schema, disc, mask)
    counter = _engine_counts("spark", path, schema, disc, mask, max_cells=4096)
    try:
        cliques = _cliques(len(disc.sizes))
        assert counter.n_rows == int(mask.sum())
        for c, got, want in zip(cliques, counter.counts(cliques), expected.counts(cliques)):
            assert np.array_equal(got, want), c
    finally:
        counter.close()


@pytest.mark.parametrize("name,params", [
    ("aim", {"max_iterations": 2, "pgm_iters": 5, "final_pgm_iters": 10}),
    ("mst", {"pgm_iters": 20}),
    ("independent", {}),
])
def test_fit_on_duckdb_is_the_numpy_fit(toy, name, params):
    """Same seed, same exact counts: the same noise, the same ledger, the same fitted model."""
    pytest.importorskip("mbi")
    folder, schema = toy
    path = folder / "toy.parquet"
    frame = schema.prepare(read_table(path), source=str(path))
    budget = Budget(epsilon=1.0, delta=1e-5)
    cls = get_generator_class(name)
    in_memory = cls(**params).fit(TableData(frame, schema), budget=budget, rng=np.random.default_rng(7))
    on_disk = cls(**params).fit(TableSource(path, schema, threads=1, memory_limit="1GB"), budget=budget,
                                rng=np.random.default_rng(7))
    assert on_disk.ledger_.to_dict() == in_memory.ledger_.to_dict()
    assert 0.99 < on_disk.ledger_.epsilon() <= 1.0 + 1e-9
    a, b = in_memory.state_dict(), on_disk.state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_api_train_engine_duckdb_matches_numpy_split_and_model(toy, tmp_path):
    """The streamed run trains on the same seeded split as the pandas run (by row position)."""
    pytest.importorskip("mbi")
    from dpsynth import api
    from dpsynth.config import RunConfig

    folder, schema = toy
    config = RunConfig(generator="mst", seed=5, params={"pgm_iters": 20})
    runs = {}
    for engine in ("numpy", "duckdb"):
        runs[engine] = api.train(data=str(folder / "toy.csv"), out=tmp_path / engine, config=config,
                                 schema_path=folder / "schema.json", engine=engine)
    assert runs["duckdb"].engine == "duckdb" and len(runs["duckdb"].splits.train) == len(runs["numpy"].splits.train)
    assert runs["duckdb"].ledger.to_dict() == runs["numpy"].ledger.to_dict()
    a, b = runs["numpy"].generator.state_dict(), runs["duckdb"].generator.state_dict()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    recorded = json.loads((tmp_path / "duckdb" / "run.json").read_text())
    assert recorded["engine"] == "duckdb" and recorded["split"]["n_train"] == len(runs["numpy"].splits.train)


@pytest.mark.parametrize("column,value", [("race", "Martian"), ("age", 130), ("site", 5), ("visits", 2.5)])
def test_bad_values_give_the_pandas_one_line_error(tmp_path, column, value):
    frame = _toy_frame(50)
    frame[column] = frame[column].astype(object)
    frame.loc[17, column] = value
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path, index=False)
    schema = Schema.from_dict(SCHEMA)
    with pytest.raises(DataError) as pandas_error:
        schema.prepare(read_table(path), source=str(path))
    with pytest.raises(DataError) as engine_error:
        _engine_counts("duckdb", path, schema, Discretizer(schema, bins=5)).close()
    # the same message (pandas spells a numpy scalar as np.int64(5), SQL as 5)
    assert str(engine_error.value) == re.sub(r"np\.\w+\((.*?)\)", r"\1", str(pandas_error.value))
    assert f"'{column}'" in str(engine_error.value) and "\n" not in str(engine_error.value)


def test_import_cli_does_not_import_torch():
    code = ("import sys, dpsynth.cli; heavy = [m for m in ('torch', 'opacus', 'diffusers', 'sklearn', 'lifelines',"
            " 'mbi', 'jax', 'pandas') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == ""


def test_cli_train_engine_duckdb_and_one_line_refusals(toy, tmp_path):
    pytest.importorskip("mbi")
    from click.testing import CliRunner

    from dpsynth.cli import main

    folder, _ = toy
    base = ["train", "--data", str(folder / "toy.parquet"), "--schema", str(folder / "schema.json"), "--epsilon", "1"]
    ok = CliRunner().invoke(main, base + ["--generator", "independent", "--engine", "duckdb", "--out", str(tmp_path / "r")])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "r" / "run.json").read_text())["engine"] == "duckdb"
    bad = CliRunner().invoke(main, base + ["--generator", "dp-gan", "--engine", "duckdb", "--out", str(tmp_path / "g")])
    assert bad.exit_code == 2 and "--engine duckdb counts marginals" in bad.output
    assert len(bad.output.strip().splitlines()) == 1 and not (tmp_path / "g").exists()
