"""Related tables under one patient-level budget: accounting, sampling with fresh keys,
children per parent from the DP model, sequences, writers."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from tiny_relational import make_tiny, tiny_schema
from dpsynth.data.relational import RelationalSchema
from dpsynth.data.splits import SplitSpec
from dpsynth.data.table import TableData
from dpsynth.generators import REGISTRY
from dpsynth.metrics.relational import child_counts, evaluate_relational_tables
from dpsynth.privacy.accountants import RDP_ORDERS
from dpsynth.privacy.budget import Budget
from dpsynth.relational.load import load_relational, split_relational
from dpsynth.relational.model import KEY_PREFIX, fit_relational
from dpsynth.relational.output import read_tables, write_tables

EPSILON = 2.0
PARAMS = {"independent": {}, "mst": {"pgm_iters": 200}}  # fewer mirror-descent iterations: seconds, not minutes


@pytest.fixture
def splits(tiny):
    folder, path = tiny
    frames = load_relational(folder, RelationalSchema.load(path), rng=np.random.default_rng(0))
    return split_relational(frames, SplitSpec(seed=0))


@pytest.mark.parametrize("generator", ["independent", "mst"])
def test_one_ledger_split_across_tables_equals_an_independent_accountant(splits, generator):
    from dp_accounting import GaussianDpEvent, ZCDpEvent
    from dp_accounting.rdp import RdpAccountant

    model = fit_relational(splits.train, generator=generator, params=PARAMS[generator], budget=Budget(epsilon=EPSILON),
                           rng=np.random.default_rng(0))
    ledger = model.ledger
    eps = ledger.epsilon()
    assert 0.99 * EPSILON < eps <= EPSILON and ledger.target_epsilon == EPSILON
    # every entry names its table, that table's rows per patient and its share: the split is in the ledger
    schema = splits.train.schema
    tables = {e.params["table"] for e in ledger.entries}
    assert tables == set(schema.names)
    for e in ledger.entries:
        m = schema.rows_per_unit(e.params["table"])
        assert e.params["rows_per_patient"] == m and e.purpose.startswith(f"[{e.params['table']}] ")
        if e.mechanism == "gaussian" and m > 1:  # the marginal's sensitivity is scaled to the patient's m rows
            assert e.params["rows_per_unit"] == m
            assert e.params["l2_sensitivity"] == pytest.approx(m * np.sqrt(len(e.params.get("marginals", [0] * e.params.get("histograms", 1)))))
    # each table spends about its planned share of the patient-level rho (the ledger is a zCDP sum)
    rho = {t: 0.0 for t in schema.names}
    for e in ledger.entries:
        rho[e.params["table"]] += e.rho if e.mechanism == "zcdp" else 1 / (2 * e.noise_multiplier**2)
    plans = {p.table: p for p in model.plans}
    total = sum(p.patient_rho for p in plans.values())
    for t in schema.names:
        assert rho[t] <= plans[t].patient_rho * (1 + 1e-6) + (total - sum(rho.values()) + 1e-12)
        assert rho[t] == pytest.approx(plans[t].patient_rho, rel=0.02)
    # Google's dp_accounting from the same entries gives the same epsilon
    accountant = RdpAccountant(orders=list(RDP_ORDERS))
    for e in ledger.entries:
        accountant.compose(GaussianDpEvent(e.noise_multiplier) if e.mechanism == "gaussian" else ZCDpEvent(e.rho))
    assert accountant.get_epsilon(ledger.delta) == pytest.approx(eps, rel=1e-6)


def test_one_table_with_the_whole_budget_matches_the_single_table_generator(tiny):
    # the root has one row per patient (k does not apply): its ledger equals a plain single-table fit
    root = {**tiny_schema()["tables"][0], "derive": [], "columns": [tiny_schema()["tables"][0]["columns"][0]]}
    schema = RelationalSchema.from_dict({"name": "one", "tables": [root]})
    frames = load_relational(tiny[0], schema, rng=np.random.default_rng(0))
    model = fit_relational(frames, generator="independent", params={}, budget=Budget(epsilon=EPSILON),
                           rng=np.random.default_rng(0))
    model_schema = schema.model_schema("patients")
    single = REGISTRY["independent"]().fit(TableData(frames.tables["patients"][model_schema.names], model_schema),
                                           budget=Budget(epsilon=EPSILON), rng=np.random.default_rng(0))
    assert [e.noise_multiplier for e in model.ledger.entries] == [e.noise_multiplier for e in single.ledger_.entries]
    assert model.ledger.epsilon() == pytest.approx(single.ledger_.epsilon(), rel=1e-12)
    assert model.generators["patients"].probs_[0] == pytest.approx(single.probs_[0])


def test_samples_have_fresh_keys_full_integrity_and_counts_from_the_model(splits, tiny):
    model = fit_relational(splits.train, generator="mst", params=PARAMS["mst"], budget=Budget(epsilon=EPSILON),
                           rng=np.random.default_rng(0))
    sampled = model.sample(300, rng=np.random.default_rng(1))
    out = model.output_tables(sampled)
    schema = model.schema
    real = load_relational(tiny[0], schema, rng=np.random.default_rng(0)).tables
    results = evaluate_relational_tables(real=splits.train.tables, synthetic=out, schema=schema)
    assert results["referential_integrity"]["value"] == 1.0
    assert results["key_overlap_with_real"] == 0
    for t in schema.tables:  # fresh keys, never a real id
        for key in (t.primary_key, t.foreign_key):
            if key is not None:
                assert out[t.name][key].str.startswith(KEY_PREFIX).all()
                assert not set(out[t.name][key]) & set(real[t.name][key])
    # every parent has exactly as many children as its sampled (DP-modelled) count says, at most k
    for t in schema.tables[1:]:
        parent = schema[t.parent]
        asked = sampled[parent.name].set_index(parent.primary_key)[schema.count_column(t.name)].astype(int)
        got = child_counts(out, schema, t.name)
        assert (got.to_numpy() == asked.to_numpy()).all() and got.max() <= t.max_per_parent
    # positions run 1..c and offsets are cumulative gaps starting at 0
    visits = out["visits"]
    first = visits.groupby("pid").head(1)
    assert (first["offset_days"] == 0).all() and (first["gap_days"] == 0).all()
    assert (visits.groupby("pid")["offset_days"].diff().dropna() >= 0).all()
    codes = out["codes"]
    assert (codes.groupby("vid")["seq"].apply(lambda s: list(s) == list(range(1, len(s) + 1)))).all()
    assert list(out["visits"].columns) == ["vid", "pid", "vtype", "gap_days", "los", "offset_days"]


def test_children_per_parent_follow_the_dp_estimate(splits):
    model = fit_relational(splits.train, generator="independent", params={}, budget=Budget(epsilon=EPSILON),
                           rng=np.random.default_rng(0))
    sampled = model.sample(10000, rng=np.random.default_rng(2))
    patients = model.generators["patients"]
    j = model.schema.model_schema("patients").names.index("n_visits")
    estimate = patients.probs_[j]  # the DP (noisy, normalised) histogram of visits per patient
    counts = child_counts(model.output_tables(sampled), model.schema, "visits")
    realised = counts.value_counts(normalize=True).reindex(range(4), fill_value=0.0).to_numpy()
    assert np.abs(realised - estimate).max() < 0.02  # 4 standard errors at n = 10000


def test_sequences_keep_first_order_transitions(tmp_path):
    path = make_tiny(tmp_path, patients=150, seed=4)
    schema = RelationalSchema.load(path)
    frames = load_relational(tmp_path, schema, rng=np.random.default_rng(0))
    train = split_relational(frames, SplitSpec(seed=0, holdout=0.0, test=0.0)).train
    distance = {}
    for generator in ("mst", "independent"):
        model = fit_relational(train, generator=generator, params=PARAMS[generator], budget=Budget(epsilon=200.0),
                               rng=np.random.default_rng(0))
        out = model.output_tables(model.sample(400, rng=np.random.default_rng(3)))
        res = evaluate_relational_tables(real=train.tables, synthetic=out, schema=schema)
        seq = res["sequences"]["tables"]["visits"]
        distance[generator] = seq["transitions"]["vtype"]["distance"]
        if generator == "mst":
            assert seq["length_tvd"] < 0.08
            syn = seq["transitions"]["vtype"]["synthetic"]
            assert syn["A"].get("B", 0) > 0.85 and syn["B"].get("A", 0) > 0.85  # A -> B -> A kept
    assert distance["mst"] < 0.1 < 0.3 < distance["independent"]  # the metric separates a model without them


@pytest.mark.parametrize("target", ["folder", "parquet", "synth.sqlite", "synth.duckdb"])
def test_writers_round_trip_and_databases_declare_keys(splits, tmp_path, target):
    if target.endswith(".duckdb"):
        pytest.importorskip("duckdb")
    model = fit_relational(splits.train, generator="independent", params={}, budget=Budget(epsilon=EPSILON),
                           rng=np.random.default_rng(0))
    out = model.output_tables(model.sample(30, rng=np.random.default_rng(1)))
    dest = tmp_path / ("synth" if target in ("folder", "parquet") else target)
    write_tables(out, dest, schema=model.schema, fmt="parquet" if target == "parquet" else "auto")
    back = read_tables(dest, model.schema)
    for name, frame in out.items():
        assert len(back[name]) == len(frame) and list(back[name].columns) == list(frame.columns)
        assert back[name].iloc[:, 0].astype(str).tolist() == frame.iloc[:, 0].astype(str).tolist()
    assert not list(tmp_path.glob(".synth*"))  # no temporary left behind
    if target.endswith(".sqlite"):
        con = sqlite3.connect(dest)
        ddl = con.execute("SELECT sql FROM sqlite_master WHERE name = 'codes'").fetchone()[0]
        assert 'FOREIGN KEY ("vid") REFERENCES "visits" ("vid")' in ddl
        con.execute("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError):
            con.execute("INSERT INTO codes VALUES ('no-such-visit', 1, NULL)")
        con.close()


def test_parents_without_children_give_empty_child_tables_that_still_write(splits, tmp_path):
    model = fit_relational(splits.train, generator="independent", params={}, budget=Budget(epsilon=EPSILON),
                           rng=np.random.default_rng(0))
    sampled = model.sample(5, rng=np.random.default_rng(1))
    sampled["patients"]["n_visits"] = 0  # as if the DP model had drawn no visit for anyone
    sampled["visits"] = model._sample_children(model.schema["visits"], sampled["patients"], np.random.default_rng(0))
    sampled["codes"] = model._sample_children(model.schema["codes"], sampled["visits"], np.random.default_rng(0))
    out = model.output_tables(sampled)
    assert (len(out["patients"]), len(out["visits"]), len(out["codes"])) == (5, 0, 0)
    write_tables(out, tmp_path / "empty.sqlite", schema=model.schema)
    assert {k: len(v) for k, v in read_tables(tmp_path / "empty.sqlite", model.schema).items()} == \
        {"patients": 5, "visits": 0, "codes": 0}
