"""Federated DP marginals (mst/aim/independent): each site's ledger matches an independent
accountant, the server receives only noisy marginals (their sum is a measurement of the union
with the variances added), and on real data (UCI Heart's four hospitals) the federated model
beats the worst site alone.

The protocol tests drive the site and server functions directly (no flwr); the real-data test
runs the Flower simulation (skipped with a reason when flwr[simulation] or the data is absent).
"""

from __future__ import annotations

import json
import math
import sys

import dp_accounting
import numpy as np
import pytest

from dpsynth.data.embedded import get_embedded
from dpsynth.federated.marginal import (
    MarginalJob,
    ServerState,
    fit_generator,
    sum_measurements,
)
from dpsynth.federated.marginal_site import site_marginal_round
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


def _job(folder, generator, epsilon=1.0):
    return MarginalJob(generator=generator, bins=8, schema_path=str(folder / "schema.yaml"), epsilon=epsilon,
                       delta=None, accountant="rdp", secure_mode=False, seed=3,
                       sites=tuple((s, str(folder / f"{s}.csv")) for s in ("a", "b", "c")), pgm_iters=100)


def _drive(job):
    """Both rounds of the protocol without the Flower transport: what each site sends and what the server holds."""
    schema = load_schema(job.schema_path)
    sizes = tuple(Discretizer(schema, bins=job.bins).sizes)
    server = ServerState(sizes=sizes)
    states, sent = [None] * len(job.sites), []
    payload = [np.zeros(1)]
    for rnd in range(1, job.rounds + 1):
        out = [site_marginal_round(job=job, site_index=i, server_round=rnd, arrays=payload, state=states[i])
               for i in range(len(job.sites))]
        states = [s for _, s, _ in out]
        parts, sigmas, metrics = [a for a, _, _ in out], [m["sigma"] for _, _, m in out], [m for _, _, m in out]
        sent.append((parts, sigmas, metrics))
        if rnd == 1:
            votes = [[tuple(v) for v in json.loads(m["votes"])] for m in metrics]
            server.after_oneways(job, parts, sigmas, votes, schema.names.index(schema.target))
            payload = server.payload()
        else:
            server.pairs = sum_measurements(parts, sigmas, server.cliques)
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
    for m in metrics:  # besides the noisy arrays: the site's row count, its ledger and its DP vote only
        assert set(m) == {"site", "site_index", "n", "round", "votes", "sigma", "epsilon", "ledger"}
    d = len(disc.sizes)
    summed = sum_measurements(parts, sigmas, [(a,) for a in range(d)])
    for a in range(d):
        assert np.allclose(summed[a].values, sum(p[a] for p in parts))
        assert summed[a].sigma == pytest.approx(math.sqrt(sum(s * s for s in sigmas)))
    assert len(server.pairs) == len(server.cliques) >= d - 1
    gen = fit_generator(job, server, schema)
    syn = gen.sample(200, rng=np.random.default_rng(0)).frame
    assert list(syn.columns) == schema.names and len(syn) == 200


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
    assert fed.epsilon <= 1.0 + 1e-9 and len(fed.reports) == 2
    n_pooled = sum(len(t) for t, _ in parts.values())
    fed_syn = fed.generator.sample(n_pooled, rng=np.random.default_rng(1)).frame
    fed_scores, local_scores = [], []
    for s, (train, test) in parts.items():
        gen = build_generator("mst", {})
        rng = np.random.default_rng(0)
        gen.fit(TableData(train, schema), budget=Budget(epsilon=1.0), rng=rng)
        local, _ = tstr(train, gen.sample(len(train), rng=rng).frame, test, schema, seed=0)
        fed_score, _ = tstr(train, fed_syn, test, schema, seed=0)
        fed_scores.append(fed_score)
        local_scores.append(0.5 if local is None else local)
    assert np.mean(fed_scores) > min(local_scores), (fed_scores, local_scores)
