"""AIM and MST on real ACTG 175 rows: privacy accounting, artifacts, conditioning, utility; plus
the numpy junction-tree engine checked against brute force and against mbi."""

import math
import sys

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

pytest.importorskip("mbi", reason="aim/mst need the optional extra dpsynth[marginal] (mbi)")

from dpsynth.data.table import TableData  # noqa: E402
from dpsynth.errors import DpsynthError, MissingExtraError, PrivacyError  # noqa: E402
from dpsynth.generators import REGISTRY  # noqa: E402
from dpsynth.generators.tabular.marginal.compress import compress  # noqa: E402
from dpsynth.generators.tabular.marginal.discretize import Discretizer  # noqa: E402
from dpsynth.generators.tabular.marginal.estimate import Measurement, MirrorDescent, estimate_total  # noqa: E402
from dpsynth.generators.tabular.marginal.junction import CalibratedTree, JunctionTree, calibrate  # noqa: E402
from dpsynth.generators.tabular.marginal.mbi_glue import greedy_tree, mbi_estimate  # noqa: E402
from dpsynth.generators.tabular.marginal.structure import augment, augmented_cells  # noqa: E402
from dpsynth.privacy.accountants import RDP_ORDERS  # noqa: E402
from dpsynth.privacy.artifact_scan import scan_run_for_rows  # noqa: E402
from dpsynth.privacy.budget import Budget  # noqa: E402
from dpsynth.privacy.ledger import Ledger  # noqa: E402

EPSILON = 1.0


@pytest.fixture(scope="module")
def train_test(actg_splits):
    schema, splits = actg_splits
    return schema, splits.train, splits.test


@pytest.fixture(scope="module")
def fitted(train_test):
    """aim and mst fitted once on the full ACTG 175 training split at epsilon = 1."""
    schema, train, _ = train_test
    data = TableData(train, schema)
    return {
        name: REGISTRY[name]().fit(data, budget=Budget(epsilon=EPSILON), rng=np.random.default_rng(0))
        for name in ("aim", "mst")
    }


# ---- privacy accounting ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["aim", "mst"])
def test_ledger_within_target_and_independently_recomputed(name, fitted):
    from dp_accounting import GaussianDpEvent, ZCDpEvent
    from dp_accounting.rdp import RdpAccountant
    from opacus.accountants.analysis import rdp as rdp_analysis

    ledger = fitted[name].ledger_
    eps = ledger.epsilon()
    assert 0.99 * EPSILON < eps <= EPSILON
    gaussian = [e for e in ledger.entries if e.mechanism == "gaussian"]
    selections = [e for e in ledger.entries if e.mechanism == "zcdp"]
    assert gaussian and selections and len(gaussian) + len(selections) == len(ledger.entries)
    if name == "mst":  # one-ways, the tree's two-ways; d - 1 tree edges
        assert len(gaussian) == 2 and len(selections) == len(fitted[name].schema_.columns) - 1
    else:  # one-ways, then one selection and one measurement per round
        assert len(gaussian) == len(selections) + 1
    # opacus' RDP analysis functions, composed by hand
    orders = np.array(RDP_ORDERS)
    curve = sum(rdp_analysis.compute_rdp(q=1.0, noise_multiplier=e.noise_multiplier, steps=1, orders=orders)
                for e in gaussian)
    curve = curve + sum(e.rho for e in selections) * orders
    eps_opacus, _ = rdp_analysis.get_privacy_spent(orders=orders, rdp=curve, delta=ledger.delta)
    assert eps_opacus == pytest.approx(eps, rel=1e-9)
    # Google's dp_accounting, from the same entries
    accountant = RdpAccountant(orders=list(RDP_ORDERS))
    for e in gaussian:
        accountant.compose(GaussianDpEvent(e.noise_multiplier))
    for e in selections:
        accountant.compose(ZCDpEvent(e.rho))
    assert accountant.get_epsilon(ledger.delta) == pytest.approx(eps, rel=1e-6)


def test_run_stops_at_target_after_earlier_spending(train_test):
    schema, train, _ = train_test
    ledger = Ledger(delta=1e-5, target_epsilon=EPSILON)
    ledger.record_gaussian(purpose="an earlier release", noise_multiplier=8.0)
    before = ledger.epsilon()
    gen = REGISTRY["mst"]().fit(TableData(train, schema), budget=Budget(epsilon=EPSILON, delta=1e-5),
                                rng=np.random.default_rng(0), ledger=ledger)
    assert gen.ledger_ is ledger and before < ledger.epsilon() <= EPSILON


def test_prv_accountant_is_refused(train_test):
    schema, train, _ = train_test
    with pytest.raises(PrivacyError, match="rdp"):
        REGISTRY["mst"]().fit(TableData(train, schema), budget=Budget(epsilon=EPSILON, accountant="prv"),
                              rng=np.random.default_rng(0))


def test_non_private_reference(train_test):
    schema, train, _ = train_test
    for gen in (REGISTRY["mst"](), REGISTRY["aim"](max_iterations=3)):
        gen.fit(TableData(train.iloc[:300], schema), budget=Budget.non_private_reference(), rng=np.random.default_rng(0))
        assert math.isinf(gen.ledger_.epsilon())
        assert [e.mechanism for e in gen.ledger_.entries] == ["non-private"]
        assert len(gen.sample(50, rng=np.random.default_rng(1))) == 50


def test_missing_extra_is_a_clear_error(train_test, monkeypatch):
    schema, train, _ = train_test
    monkeypatch.setitem(sys.modules, "mbi", None)  # import mbi -> ImportError
    with pytest.raises(MissingExtraError, match=r"dpsynth\[marginal\]"):
        REGISTRY["aim"]().fit(TableData(train, schema), budget=Budget(epsilon=EPSILON), rng=np.random.default_rng(0))


# ---- artifacts ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["aim", "mst"])
def test_state_dict_round_trip_and_no_training_row(name, fitted, train_test, tmp_path):
    schema, train, _ = train_test
    gen = fitted[name]
    path = tmp_path / "weights.safetensors"
    save_file(gen.state_dict(), str(path))
    state = load_file(str(path))
    again = REGISTRY[name](**gen.get_params()).load_state_dict(state, schema=schema)
    a = gen.sample(3000, rng=np.random.default_rng(7)).frame
    b = again.sample(3000, rng=np.random.default_rng(7)).frame
    assert a.equals(b)
    # no training row, as raw values or as bin codes, is a contiguous run inside any tensor
    codes = Discretizer(schema, bins=gen.bins).encode(train).astype(float)
    raw = np.stack([train[c].to_numpy(dtype=float) if schema[c].is_numeric else codes[:, j]
                    for j, c in enumerate(schema.names)], axis=1)
    wanted = {row.tobytes() for rows in (raw, codes) for row in rows}
    width = len(schema.names)
    for tensor in state.values():
        flat = tensor.double().numpy().ravel()
        if flat.size >= width:
            windows = np.lib.stride_tricks.sliding_window_view(flat, width)
            assert not any(w.tobytes() in wanted for w in windows)
    assert scan_run_for_rows(tmp_path, train, schema) == []


# ---- sampling -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["aim", "mst"])
def test_sample_types_domain_and_conditions(name, fitted):
    gen = fitted[name]
    schema = gen.schema_
    syn = gen.sample(2000, rng=np.random.default_rng(3)).frame
    schema.prepare(syn, source="synthetic")  # every value inside the public domain
    assert syn["age"].dtype == np.int64 and syn["cd496"].dtype == "Int64" and syn["race"].dtype == np.int64
    assert syn["cd496"].isna().any() and not syn["cd496"].dropna().empty
    cond = gen.sample(1000, conditions={"race": 1, "age": 40, "cd496": None}, rng=np.random.default_rng(4)).frame
    assert (cond["race"] == 1).all() and (cond["age"] == 40).all() and cond["cd496"].isna().all()
    for bad, column in (({"race": 7}, "race"), ({"age": 5}, "age"), ({"nosuch": 1}, "nosuch"), ({"age": None}, "age")):
        with pytest.raises(DpsynthError, match=column):
            gen.sample(10, conditions=bad, rng=np.random.default_rng(4))


def test_aim_group_option_measures_groups_and_releases_model_proportions(train_test):
    """Fairness-aware aim: the race x gender x target marginal is measured first with its share
    of the budget (a ledger entry), the total stays at the target, and a plain sample draws the
    group cells in exactly the model's proportions (largest-remainder counts)."""
    schema, train, _ = train_test
    gen = REGISTRY["aim"](group_columns=["race", "gender"], group_share=0.3, max_iterations=20).fit(
        TableData(train, schema), budget=Budget(epsilon=EPSILON), rng=np.random.default_rng(0))
    ledger = gen.ledger_
    assert 0.99 * EPSILON < ledger.epsilon() <= EPSILON
    first = ledger.entries[0]
    assert "race" in first.purpose and "gender" in first.purpose and "cens" in first.purpose
    n = 997
    syn = gen.sample(n, rng=np.random.default_rng(1)).frame
    disc = gen.discretizer_
    cols = sorted(disc.index(c) for c in ("race", "gender"))
    p = gen.model_.marginal(tuple(cols)).ravel()
    counts = syn.groupby(["race", "gender"]).size().reindex(
        [(r, g) for r in (0, 1) for g in (0, 1)], fill_value=0).to_numpy()
    assert counts.sum() == n and np.all(np.abs(counts - n * p / p.sum()) < 1.0)
    # shares close to the real ones (they carry only the DP noise of one measurement)
    real = train.groupby(["race", "gender"]).size().to_numpy() / len(train)
    assert np.all(np.abs(counts / n - real) < 0.03)
    cond = gen.sample(50, conditions={"race": 1}, rng=np.random.default_rng(2)).frame
    assert (cond["race"] == 1).all()
    with pytest.raises(DpsynthError, match="nosuch"):
        REGISTRY["aim"](group_columns=["nosuch"]).fit(TableData(train, schema), budget=Budget(epsilon=EPSILON),
                                                     rng=np.random.default_rng(0))


def test_tstr_auroc_beats_independent_marginals(fitted, train_test):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    schema, train, test = train_test
    independent = REGISTRY["independent"]().fit(TableData(train, schema), budget=Budget(epsilon=EPSILON),
                                                rng=np.random.default_rng(0))

    def tstr(gen) -> float:
        syn = gen.sample(len(train), rng=np.random.default_rng(5)).frame
        model = HistGradientBoostingClassifier(random_state=0).fit(syn.drop(columns="cens").astype(float),
                                                                   syn["cens"].astype(int))
        return roc_auc_score(test["cens"].astype(int), model.predict_proba(test.drop(columns="cens").astype(float))[:, 1])

    baseline = tstr(independent)
    for name in ("aim", "mst"):
        assert tstr(fitted[name]) > max(baseline, 0.5) + 0.15, name


# ---- the engine ---------------------------------------------------------------------------------
def _random_model(seed=0):
    """A 5-column chain junction tree with random potentials, and its brute-force joint."""
    rng = np.random.default_rng(seed)
    sizes = (2, 3, 2, 4, 3)
    tree = JunctionTree(sizes=sizes, nodes=[(1, 2, 3), (0, 1), (3, 4)], parent=[-1, 0, 0])
    logpot = [rng.normal(size=tree.shape(n)) for n in tree.nodes]
    joint = np.zeros(sizes)
    letters = "abcde"
    for node, table in zip(tree.nodes, logpot):
        joint = joint + np.einsum(f"{''.join(letters[a] for a in node)}->{''.join(letters[a] for a in node)}", table
                                  ).reshape([sizes[a] if a in node else 1 for a in range(5)])
    joint = np.exp(joint)
    return CalibratedTree(tree, calibrate(tree, logpot)), joint / joint.sum()


def test_junction_tree_marginals_sampling_and_evidence_match_brute_force():
    model, joint = _random_model()
    for clique in [(0,), (1, 2, 3), (0, 4), (0, 2, 4), (0, 1, 2, 3, 4)]:
        other = tuple(a for a in range(5) if a not in clique)
        assert np.allclose(model.marginal(clique), joint.sum(axis=other))
    codes = model.sample(200_000, np.random.default_rng(0))
    empirical = np.bincount(np.ravel_multi_index(codes.T, joint.shape), minlength=joint.size) / len(codes)
    assert 0.5 * np.abs(empirical - joint.ravel()).sum() < 0.02
    # exact conditioning: P(x | x2 = 1, x4 = 0)
    codes = model.sample(200_000, np.random.default_rng(1), evidence={2: 1, 4: 0})
    assert (codes[:, 2] == 1).all() and (codes[:, 4] == 0).all()
    conditional = joint[:, :, 1, :, 0]
    conditional = (conditional / conditional.sum()).ravel()
    empirical = np.bincount(np.ravel_multi_index(codes[:, [0, 1, 3]].T, (2, 3, 4)), minlength=24) / len(codes)
    assert 0.5 * np.abs(empirical - conditional).sum() < 0.02


def test_augmented_tree_holds_the_clique_and_is_a_junction_tree():
    rng = np.random.default_rng(0)
    sizes = tuple(int(s) for s in rng.integers(2, 6, size=9))
    for _ in range(20):
        cliques = [(a,) for a in range(9)] + [tuple(sorted(rng.choice(9, 2, replace=False))) for _ in range(5)]
        tree = greedy_tree(sizes, cliques)
        q = tuple(sorted(rng.choice(9, int(rng.integers(2, 4)), replace=False)))
        bigger = augment(tree, q)
        assert bigger.node_holding(q) is not None and augmented_cells(tree, q) == bigger.cells()
        assert all(bigger.node_holding(c) is not None for c in cliques)
        for a in range(9):  # running intersection: the nodes holding a column form one subtree
            holders = [i for i, n in enumerate(bigger.nodes) if a in n]
            assert sum(1 for i in holders if bigger.parent[i] not in holders) == 1


def test_numpy_mirror_descent_matches_mbi():
    rng = np.random.default_rng(0)
    sizes = (3, 4, 2, 5)
    truth = rng.dirichlet(np.ones(np.prod(sizes))).reshape(sizes) * 1000
    cliques = [(0,), (1,), (2,), (3,), (0, 1), (1, 2), (2, 3)]
    measurements = []
    for c in cliques:
        exact = truth.sum(axis=tuple(a for a in range(4) if a not in c)).ravel()
        sigma = 5.0 if c != (3,) else np.linspace(2.0, 8.0, exact.size)  # one per-cell sigma, as after compression
        measurements.append(Measurement(c, exact + rng.normal(0, 5.0, exact.shape), sigma))
    tree = greedy_tree(sizes, cliques)
    total = estimate_total(measurements)
    _, ours = MirrorDescent(tree, measurements, total).run(2000)
    _, theirs = mbi_estimate(tree, measurements, total, iters=2000)
    for c in [(0, 1), (1, 2), (2, 3), (0, 3)]:
        assert np.abs(ours.marginal(c) - theirs.marginal(c)).sum() < 2e-3


def test_discretizer_uses_the_public_domain_only(train_test):
    schema, train, _ = train_test
    disc = Discretizer(schema, bins=16)
    age = disc.columns[disc.index("age")]
    assert np.allclose(age.edges, np.linspace(12, 91, 17))  # from the schema's [12, 90], not the data
    assert disc.sizes[disc.index("karnof")] == 4 and disc.sizes[disc.index("cd496")] == 17
    codes = disc.encode(train)
    again = disc.encode(disc.decode(codes, np.random.default_rng(0)))
    assert (codes == again).all()  # decoded values stay inside their bins
    with pytest.raises(DpsynthError, match="bins"):
        Discretizer(schema, bins=1)


def test_mst_domain_compression(fitted, train_test):
    schema, train, _ = train_test
    gen = fitted["mst"]
    maps = gen.domain_map_.maps
    merged = [j for j, m in enumerate(maps) if len(m) != m.max() + 1]
    assert merged, "at epsilon 1 some sparse bins (e.g. high CD8 counts) should have been merged"
    cd80 = schema.names.index("cd80")
    assert cd80 in merged
    # a merged cell is sampled back onto every one of its original bins; conditions stay exact
    codes = Discretizer(schema, bins=gen.bins).encode(gen.sample(20000, rng=np.random.default_rng(6)).frame)
    rare = np.flatnonzero(maps[cd80] == maps[cd80].max())
    assert len(set(codes[:, cd80]) & set(rare)) > 1
    syn = gen.sample(300, conditions={"cd80": 6900, "karnof": 70}, rng=np.random.default_rng(6)).frame
    assert (syn["cd80"] == 6900).all() and (syn["karnof"] == 70).all()


def test_compress_merges_small_noisy_cells():
    m = Measurement((0,), np.array([100.0, 2.0, -3.0, 50.0, 1.0]), 4.0)
    domain_map, (out,) = compress([m], (5,))
    assert list(domain_map.maps[0]) == [0, 2, 2, 1, 2] and domain_map.model_sizes == (3,)
    assert np.allclose(out.values, [100.0, 50.0, 0.0]) and np.allclose(out.sigma, [4.0, 4.0, 4.0 * np.sqrt(3)])
    back = domain_map.from_model(np.full((30000, 1), 2), np.random.default_rng(0))[:, 0]
    assert set(back) == {1, 2, 4} and abs(np.mean(back == 4) - 1 / 3) < 0.02
    kept = Measurement((0,), np.array([100.0, 50.0, 1.0]), 4.0)  # one small cell: nothing to merge
    assert list(compress([kept], (3,))[0].maps[0]) == [0, 1, 2]
