"""One site's side of federated DP marginals: its own ledger, its noisy marginals, its DP votes.

No flwr here. Every function reads the site's private codes and returns DP outputs only.

Protocol (per site, in zCDP rho, planned on the site's own ledger so it ends at its target):

- round 1 ("oneway"): Gaussian noise on every one-way marginal of the PUBLIC domain (the schema's
  categories and bins, zero-filled), one release of ``share_oneway x rho``. For ``mst`` / ``aim``
  the site also votes for a spanning tree of column pairs: it scores every pair by the L1 distance
  between its exact 2-way counts and the independent model of its OWN noisy one-ways (post-
  processing), and grows a tree Kruskal-style with the exponential mechanism (d - 1 selections
  sharing ``share_select x rho``, sensitivity 1: the model is fixed before the scores, and one row
  moves one cell of the exact counts by 1), exactly as single-site MST does.
- round 2 ("measure"): Gaussian noise on the marginals the server asks for (public: the sites'
  voted tree plus, for ``aim``, the schema's target pairs), on the model codes the server chose
  from the SUMMED noisy one-ways (post-processing), one release of the rest of rho.

Only noisy arrays and the voted pairs leave the site; its row count is reported as public (as in
the DP-SGD path). The server sums the sites' noisy marginals: the sum is an unbiased measurement
of the union's marginal with noise variance = the sum of the sites' variances.
"""

from __future__ import annotations

import math

import numpy as np

from dpsynth.errors import PrivacyError
from dpsynth.privacy.ledger import Ledger

SHARES = {"independent": (1.0, 0.0), "mst": (1 / 3, 1 / 3), "aim": (1 / 3, 1 / 3)}  # (one-ways, selection)
DEFAULT_BINS = {"independent": 16, "mst": 16, "aim": 8}


def read_payload(arrays: list[np.ndarray]) -> tuple[list[tuple[int, int]], list[np.ndarray]]:
    cliques = [tuple(int(v) for v in row) for row in np.asarray(arrays[0]).reshape(-1, 2)]
    return cliques, [np.asarray(m, np.int64) for m in arrays[1:]]


def open_site(*, schema, data, bins: int, budget, rng: np.random.Generator, ledger: Ledger | None = None):
    """The site's Discretizer and Measurer (its private codes, its ledger: a fresh one in round 1)."""
    from dpsynth.generators.tabular.marginal.discretize import Discretizer
    from dpsynth.generators.tabular.marginal.measure import Measurer

    disc = Discretizer(schema, bins=bins)
    codes = disc.encode(data.frame)
    if ledger is None:
        ledger = Ledger(delta=budget.resolve_delta(len(codes)), accountant=budget.accountant,
                        target_epsilon=budget.epsilon)
    measurer = Measurer(codes, disc.sizes, ledger=ledger, rng=rng, secure=budget.secure_mode, names=disc.names,
                        contribution=getattr(data, "max_rows_per_unit", 1))
    return disc, measurer


def plan_rho(ledger: Ledger, epsilon: float) -> float:
    from dpsynth.generators.tabular.marginal.measure import available_rho

    return available_rho(ledger, epsilon)


def oneway_round(measurer, *, generator: str, rho: float) -> tuple[list[np.ndarray], float, list[tuple[int, int]]]:
    """Round 1: noisy one-way marginals (one Gaussian release) and, for mst/aim, the site's DP tree vote.
    Returns (noisy one-ways, their per-cell noise std, voted pairs)."""
    share_one, share_select = SHARES[generator]
    d = len(measurer.sizes)
    oneway = [(a,) for a in range(d)]
    found = measurer.measure(oneway, rho=rho * share_one, purpose="federated: all one-way marginals (site's noisy "
                                                                   "counts, summed by the server)")
    noisy = [np.asarray(m.values, float) for m in found]
    sigma = float(found[0].sigma)
    votes: list[tuple[int, int]] = []
    if share_select > 0 and d > 1:
        votes = tree_vote(measurer, noisy, rho=rho * share_select)
    return noisy, sigma, votes


def tree_vote(measurer, noisy_oneways: list[np.ndarray], *, rho: float) -> list[tuple[int, int]]:
    """The site's spanning tree of column pairs, chosen by d - 1 exponential mechanisms sharing ``rho``."""
    d = len(noisy_oneways)
    probs = [np.clip(v, 0, None) / max(np.clip(v, 0, None).sum(), 1e-12) for v in noisy_oneways]
    total = max(1.0, float(np.mean([v.sum() for v in noisy_oneways])))  # the site's noisy row count (DP output)
    candidates = [(a, b) for a in range(d) for b in range(a + 1, d)]
    errors = {}
    for a, b in candidates:  # PRIVATE scores: used only by the exponential mechanism below
        estimate = total * np.outer(probs[a], probs[b]).ravel()
        errors[(a, b)] = float(np.abs(measurer.answer((a, b)) - estimate).sum())
    from dpsynth.generators.tabular.marginal.mst import _Components

    components = _Components(d)
    epsilon = math.sqrt(8 * rho / (d - 1))
    chosen = []
    for step in range(d - 1):
        open_pairs = [p for p in candidates if components.find(p[0]) != components.find(p[1])]
        pick = measurer.select(np.array([errors[p] for p in open_pairs]), epsilon=epsilon, sensitivity=1.0,
                               purpose=f"federated: vote for tree edge {step + 1} of {d - 1}")
        pair = open_pairs[pick]
        components.union(*pair)
        chosen.append(pair)
    return chosen


def measure_round(measurer, *, cliques: list[tuple[int, ...]], maps: list[np.ndarray], ledger: Ledger,
                  epsilon: float) -> tuple[list[np.ndarray], float]:
    """Round 2: noisy marginals of ``cliques`` on the model codes ``maps`` (public), with the site's
    remaining budget. Returns (noisy flattened tables, per-cell noise std)."""
    if not cliques:
        return [], 0.0
    rho = plan_rho(ledger, epsilon)
    recoded = measurer.recoded(maps)
    found = recoded.measure([tuple(c) for c in cliques], rho=rho,
                            purpose=f"federated: {len(cliques)} marginals the server asked for (site's noisy counts)")
    if ledger.epsilon() > epsilon * (1 + 1e-9):
        raise PrivacyError(f"internal error: site spent epsilon {ledger.epsilon():.4f} > {epsilon}")
    return [np.asarray(m.values, float) for m in found], float(found[0].sigma)


def site_marginal_round(*, job, site_index: int, server_round: int, arrays: list[np.ndarray],
                        state: dict | None) -> tuple[list[np.ndarray], dict, dict]:
    """Site ``site_index``'s answer to round ``server_round`` of ``job`` (a MarginalJob).

    ``state``: what the site kept from round 1 (its ledger), None in round 1. Returns the noisy
    arrays it sends, its new state, and its metrics (its ledger, epsilon, noise std, row count and,
    in round 1, its DP vote)."""
    import json

    from dpsynth.federated.site import load_schema, load_site_data

    name, path = job.sites[site_index]
    schema = load_schema(job.schema_path)
    data = load_site_data(path, schema)
    budget = job.budget()
    rng = np.random.default_rng([job.seed, site_index, server_round])
    ledger = None if state is None else Ledger.from_dict(state["ledger"])
    _, measurer = open_site(schema=schema, data=data, bins=job.bins, budget=budget, rng=rng, ledger=ledger)
    metrics = {"site": name, "site_index": site_index, "n": len(data), "round": server_round}
    if server_round == 1:
        if state is not None:
            raise PrivacyError(f"site {name}: round 1 asked twice")
        rho = plan_rho(measurer.ledger, budget.epsilon)
        out, sigma, votes = oneway_round(measurer, generator=job.generator, rho=rho)
        metrics["votes"] = json.dumps([list(v) for v in votes])
    else:
        if state is None:
            raise PrivacyError(f"site {name}: round {server_round} before round 1")

        cliques, maps = read_payload(arrays)
        out, sigma = measure_round(measurer, cliques=cliques, maps=maps, ledger=measurer.ledger,
                                   epsilon=budget.epsilon)
    ledger = measurer.ledger
    if ledger.epsilon() > budget.epsilon * (1 + 1e-9):
        raise PrivacyError(f"site {name}: spent epsilon {ledger.epsilon():.4f} exceeds the target {budget.epsilon}")
    metrics.update({"sigma": sigma, "epsilon": float(ledger.epsilon()), "ledger": json.dumps(ledger.to_dict())})
    return out, {"ledger": ledger.to_dict()}, metrics
