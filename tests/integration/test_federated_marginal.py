"""Federated DP marginals (mst/aim/independent): each site's ledger matches an independent
accountant, the server receives only noisy marginals (their sum is a measurement of the union
with the variances added), and on real data (UCI Heart's four hospitals) the federated model
beats the worst site alone.

The protocol tests drive the site and server functions directly (no flwr); the real-data test
runs the Flower simulation (skipped with a reason when flwr[simulation] or the data is absent).
"""

from __future__ import annotations

import math
import sys

import dp_accounting
import numpy as np
import pytest

from dpsynth.data.embedded import get_embedded
from dpsynth.federated.marginal import (
    MarginalJob,
    drive_locally,
    fit_generator,
    sum_measurements,
)
from dpsynth.federated.marginal_site import open_site, vote_scores
from dpsynth.federated.site import load_schema, load_site_data
from dpsynth.generators.tabular.marginal.discretize import Discretizer
from dpsynth.privacy.accountants import RDP_ORDERS
from dpsynth.privacy.ledger import Ledger
from tests.conftest import REPO, shared_data


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    folder = tmp_path_factory.mktemp("msites")
    ds = get_embedded("actg175")
    schema = ds.schema()
    frame = schema.prepare(ds.load())
    order = np.random.default_rng(1).permutation(len(frame))
    (folder / "a.csv").write_text(frame.iloc[order[:700]].to_csv(index=False))
    (folder / "b.csv").write_text(frame.iloc[order[700:1000]].to_csv(index=False))
    (folder / "c.csv").write_text(frame.iloc[order[1000:1200]].to_csv(index=False))
    schema.save(folder / "schema.yaml")
    return folder


def _job(folder, generator, epsilon=1.0, **kw):
    return MarginalJob(generator=generator, bins=8, schema_path=str(folder / "schema.yaml"), epsilon=epsilon,
                       delta=None, accountant="rdp", secure_mode=False, seed=3,
                       sites=tuple((s, str(folder / f"{s}.csv")) for s in ("a", "b", "c")), pgm_iters=100, **kw)


def _drive(job):
    """Every round of the protocol without the Flower transport: what each site sends and what the server holds."""
    schema = load_schema(job.schema_path)
    server, states, sent = drive_locally(job, schema)
    sent = [([a for a, _ in rnd], [m["sigma"] for _, m in rnd], [m for _, m in rnd]) for rnd in sent]
    return schema, server, states, sent


def _independent_epsilon(ledger: Ledger) -> float:
    """Google's dp_accounting RDP accountant: a Gaussian release with noise multiplier s, and a
    rho-zCDP selection (RDP alpha * rho = that of a Gaussian with s = 1 / sqrt(2 rho))."""
    acc = dp_accounting.rdp.RdpAccountant(orders=list(RDP_ORDERS))
    for e in ledger.entries:
        if e.mechanism == "gaussian":
            acc.compose(dp_accounting.GaussianDpEvent(e.noise_multiplier), e.steps or 1)
        else:
            assert e.rho is not None and e.rho > 0, e.to_dict()
            acc.compose(dp_accounting.GaussianDpEvent(1.0 / math.sqrt(2 * e.rho)))
    return acc.get_epsilon(ledger.accountant_delta())


@pytest.mark.parametrize("generator", ["mst", "independent"])
def test_each_site_ledger_matches_an_independent_accountant(sites, generator):
    job = _job(sites, generator)
    _, _, states, _ = _drive(job)
    for state in states:
        ledger = Ledger.from_dict(state["ledger"])
        kinds = {e.mechanism for e in ledger.entries}
        assert "gaussian" in kinds and (generator == "independent" or len(ledger.entries) >= 3)
        assert ledger.epsilon() <= 1.0 + 1e-9 and ledger.epsilon() > 0.99  # the whole budget, never more
        assert _independent_epsilon(ledger) == pytest.approx(ledger.epsilon(), rel=2e-3)


def test_server_receives_only_noisy_marginals_and_their_sum_is_a_measurement(sites):
    job = _job(sites, "mst")
    schema, server, _, sent = _drive(job)
    disc = Discretizer(schema, bins=job.bins)
    parts, sigmas, metrics = sent[0]
    residuals = []
    for (name, path), arrays, sigma in zip(job.sites, parts, sigmas):
        codes = disc.encode(load_site_data(path, schema).frame)
        for a, noisy in enumerate(arrays):
            exact = np.bincount(codes[:, a], minlength=disc.sizes[a]).astype(float)
            assert not np.any(np.isclose(noisy, exact)), f"site {name} sent an exact count of column {a}"
            residuals.append((noisy - exact) / sigma)
    z = np.concatenate(residuals)
    assert len(z) > 150 and 0.8 < z.std() < 1.2 and abs(z.mean()) < 0.25  # Gaussian noise of the planned std
    for m in metrics:  # besides the noisy arrays: the site's row count and its ledger only
        assert set(m) == {"site", "site_index", "n", "round", "sigma", "epsilon", "ledger"}
    for m in sent[1][2]:  # round 2: its DP vote, no table
        assert set(m) == {"site", "site_index", "n", "round", "votes", "sigma", "epsilon", "ledger"}
    assert all(len(a) == 1 and not a[0].any() for a in sent[1][0])
    d = len(disc.sizes)
    summed = sum_measurements(parts, sigmas, [(a,) for a in range(d)])
    for a in range(d):
        assert np.allclose(summed[a].values, sum(p[a] for p in parts))
        assert summed[a].sigma == pytest.approx(math.sqrt(sum(s * s for s in sigmas)))
    assert len(server.pairs) == len(server.cliques) >= d - 1
    gen = fit_generator(job, server, schema)
    syn = gen.sample(200, rng=np.random.default_rng(0)).frame
    assert list(syn.columns) == schema.names and len(syn) == 200


def test_site_column_keeps_each_site_ledger_and_touches_only_its_own_rows(sites, tmp_path):
    """With the site column every site's ledger is at the target epsilon (never above), the site's
    slice of the joint (X, site) is exactly what that site sent, the other slices get nothing from
    it, and what a site sends does not change when another site's rows change."""
    from dpsynth.federated.marginal import site_measurements
    from dpsynth.federated.marginal_site import recode_counts

    job = _job(sites, "mst", site_column="site", target_weight=4.0)
    schema, server, states, sent = _drive(job)
    for state in states:
        ledger = Ledger.from_dict(state["ledger"])
        assert 0.99 < ledger.epsilon() <= 1.0 + 1e-9
        assert _independent_epsilon(ledger) == pytest.approx(ledger.epsilon(), rel=2e-3)
    d, k = len(schema.names), len(job.sites)
    stacked = site_measurements(job, server)
    for a in range(d):
        m = stacked[a]
        assert m.clique == (a, d)
        table = m.values.reshape(-1, k)
        for i in range(k):  # slice i holds site i's noisy one-way (on the model codes) and nothing else
            assert np.allclose(table[:, i], recode_counts(sent[0][0][i][a], server.maps[a]))
        sig = np.asarray(m.sigma).reshape(-1, k)
        assert np.allclose(sig[:, 0], sent[0][1][0] * np.sqrt(np.bincount(server.maps[a])))
    # change site c's rows: sites a and b send exactly the same arrays in every round (same seed)
    other = tmp_path / "sites"
    other.mkdir()
    for name in ("a", "b", "c", "schema"):
        src = sites / (f"{name}.csv" if name != "schema" else "schema.yaml")
        (other / src.name).write_text(src.read_text())
    frame = load_site_data(other / "c.csv", schema).frame
    (other / "c.csv").write_text(frame.iloc[: len(frame) // 2].to_csv(index=False))
    job2 = _job(other, "mst", site_column="site", target_weight=4.0)
    _, server2, _, sent2 = _drive(job2)
    for i in (0, 1):  # round 1 reads nothing but the site's own rows: sites a and b send the same tables
        assert all(np.array_equal(x, y) for x, y in zip(sent[0][0][i], sent2[0][0][i]))
        # and their slices of the stacked (X, site) hold exactly those tables, whatever site c holds
        assert np.allclose(site_measurements(job2, server2)[0].values.reshape(-1, k)[:, i],
                           recode_counts(sent[0][0][i][0], server2.maps[0]))
    assert not np.allclose(sent[0][0][2][0], sent2[0][0][2][0])  # site c's own table did change
    gen = fit_generator(job, server, schema)
    assert gen.schema_.names == schema.names + ["site"]
    syn = gen.sample(150, conditions={"site": "b"}, rng=np.random.default_rng(0)).frame
    assert set(syn["site"]) == {"b"} and len(syn) == 150
    assert set(gen.sample(300, rng=np.random.default_rng(1)).frame["site"]) <= {"a", "b", "c"}


def test_vote_score_sensitivity_is_at_most_the_target_weight(sites):
    """The vote's scores move by <= 1 (<= target_weight for target pairs) when one row is removed."""
    from dpsynth.privacy.budget import Budget

    schema = load_schema(sites / "schema.yaml")
    data = load_site_data(sites / "b.csv", schema)
    target = schema.names.index(schema.target)
    budget = Budget(epsilon=1.0)
    _, measurer = open_site(schema=schema, data=data, bins=8, budget=budget, rng=np.random.default_rng(0))
    noisy = [np.asarray(m.values) for m in measurer.measure([(a,) for a in range(len(schema.names))], rho=0.01,
                                                              purpose="test")]
    full = vote_scores(measurer, noisy, target=target, target_weight=4.0)
    worst_target, worst_other = 0.0, 0.0
    for drop in (0, 5, 17, 100, len(data) - 1):
        smaller = type(data)(data.frame.drop(index=data.frame.index[drop]).reset_index(drop=True), schema)
        _, m2 = open_site(schema=schema, data=smaller, bins=8, budget=budget, rng=np.random.default_rng(0))
        less = vote_scores(m2, noisy, target=target, target_weight=4.0)
        for pair, score in full.items():
            gap = abs(score - less[pair])
            if target in pair:
                worst_target = max(worst_target, gap)
            else:
                worst_other = max(worst_other, gap)
    assert worst_other <= 1.0 + 1e-9 and worst_target <= 4.0 + 1e-9
    assert worst_target > 1.0  # the weight is applied (the bound is not vacuous)


@pytest.mark.slow
def test_federated_mst_beats_the_worst_site_alone_on_uci_heart(tmp_path):
    pytest.importorskip("flwr", reason="flwr is not installed (pip install -e '.[federated]')")
    pytest.importorskip("ray", reason="flwr[simulation] (ray) is not installed")
    folder = shared_data("ehr", "uci_heart_disease")
    sys.path.insert(0, str(REPO / "evaluation"))
    from bench_federated import split_site, tstr
    from uci_heart import SCHEMA, SITES, read_site

    from dpsynth.config import PrivacyConfig, build_generator
    from dpsynth.data.schema import Schema
    from dpsynth.data.table import TableData
    from dpsynth.federated.config import FederatedConfig
    from dpsynth.federated.workflow import run_federated
    from dpsynth.privacy.budget import Budget

    schema = Schema.load(SCHEMA)
    parts = {s: split_site(schema.prepare(read_site(folder, s), source=s), seed=0) for s in SITES}
    files = []
    for s, (train, _) in parts.items():
        files.append((s, str(tmp_path / f"{s}.csv")))
        train.to_csv(files[-1][1], index=False)
    cfg = FederatedConfig(sites=tuple(files), schema=str(SCHEMA), generator="mst", seed=0,
                          privacy=PrivacyConfig(epsilon=1.0))
    fed = run_federated(config=cfg, out=tmp_path / "run", overwrite=True)
    assert fed.epsilon <= 1.0 + 1e-9 and len(fed.reports) == 3
    assert fed.generator.schema_.names[-1] == "site"  # the default: a public site column
    fed_scores, local_scores = [], []
    for s, (train, test) in parts.items():
        gen = build_generator("mst", {})
        rng = np.random.default_rng(0)
        gen.fit(TableData(train, schema), budget=Budget(epsilon=1.0), rng=rng)
        local, _ = tstr(train, gen.sample(len(train), rng=rng).frame, test, schema, seed=0)
        fed_syn = fed.generator.sample(len(train), conditions={"site": s}, rng=np.random.default_rng(1)).frame
        fed_score, _ = tstr(train, fed_syn.drop(columns=["site"]), test, schema, seed=0)
        fed_scores.append(0.5 if fed_score is None else fed_score)  # n/a (< 3 rows of a class) counts as chance
        local_scores.append(0.5 if local is None else local)
    assert np.mean(fed_scores) > min(local_scores), (fed_scores, local_scores)
