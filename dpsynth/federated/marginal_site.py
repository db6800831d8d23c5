"""One site's side of federated DP marginals: its own ledger, its noisy marginals, its DP votes.

No flwr here. Every function reads the site's private codes and returns DP outputs only.

Protocol (per site, in zCDP rho, planned on the site's own ledger so it ends at its target;
``independent`` runs round 1 only):

- round 1 ("oneway"): Gaussian noise on every one-way marginal of the PUBLIC domain (the schema's
  categories and bins, zero-filled), one release of ``share_oneway x rho``. The site keeps its
  noisy one-ways (DP outputs) for round 2.
- round 2 ("vote", mst / aim): the server sends the model codes it chose from the SUMMED noisy
  one-ways (MST's domain compression; post-processing). The site votes for a spanning tree of
  column pairs ON THOSE CODES, as single-site MST selects after compressing: it scores every pair
  by the L1 distance between its exact 2-way counts and the independent model of its OWN noisy
  one-ways (post-processing), a pair holding the schema's target scored ``target_weight`` x
  (public weight; sensitivity ``target_weight``, 1 otherwise), and grows a tree Kruskal-style with
  the exponential mechanism (d - 1 selections sharing ``share_select x rho``; the model is fixed
  before the scores, and one row moves one cell of the exact counts by 1). (Voting on the
  uncompressed codes, as round 1 did before, let the tree's edges land on columns that the
  compression then merged into one code, which cut the target off every other column.)
- round 3 ("measure", mst / aim): Gaussian noise on the marginals the server asks for (public:
  the sites' voted tree plus, for ``aim``, the schema's target pairs), on the model codes, one
  release of the rest of rho.

Only noisy arrays and the voted pairs leave the site; its row count is reported as public (as in
the DP-SGD path). A site measures its OWN rows only: with a site column (see
:mod:`.marginal`) the server places the site's noisy tables in that site's slice of the joint with
the site column; the other sites' slices of that joint are structurally zero for this site.
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


def oneway_round(measurer, *, generator: str, rho: float) -> tuple[list[np.ndarray], float]:
    """Round 1: noisy one-way marginals (one Gaussian release of ``share_oneway x rho``).
    Returns (noisy one-ways, their per-cell noise std)."""
    share_one, _ = SHARES[generator]
    d = len(measurer.sizes)
    oneway = [(a,) for a in range(d)]
    found = measurer.measure(oneway, rho=rho * share_one, purpose="federated: all one-way marginals (site's noisy "
                                                                   "counts, sent to the server)")
    return [np.asarray(m.values, float) for m in found], float(found[0].sigma)


def recode_counts(values: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """A one-way table on the original codes summed onto the model codes (``mapping``: code -> model code)."""
    mapping = np.asarray(mapping, np.int64)
    return np.bincount(mapping, weights=np.asarray(values, float), minlength=int(mapping.max()) + 1)


def vote_round(measurer, noisy_oneways: list[np.ndarray], maps: list[np.ndarray], *, rho: float,
               target: int | None, target_weight: float) -> list[tuple[int, int]]:
    """Round 2: the site's DP vote for a spanning tree on the model codes ``maps`` (public)."""
    if len(noisy_oneways) < 2:
        return []
    recoded = measurer.recoded(maps)
    own = [recode_counts(v, m) for v, m in zip(noisy_oneways, maps)]  # post-processing of round 1's release
    return tree_vote(recoded, own, rho=rho, target=target, target_weight=target_weight)


def vote_scores(measurer, noisy_oneways: list[np.ndarray], *, target: int | None = None,
                target_weight: float = 1.0) -> dict[tuple[int, int], float]:
    """PRIVATE scores of every column pair (used only by the exponential mechanism in :func:`tree_vote`):
    L1 distance between the pair's exact counts and ``total x outer(p_a, p_b)``, where p and total
    come from the site's noisy one-ways (fixed DP outputs), x ``target_weight`` for a target pair.
    Sensitivity <= 1 (``target_weight`` for a target pair): only the exact counts depend on the
    rows, one row added or removed changes one cell by 1, and |(|x + 1| - |x|)| <= 1."""
    d = len(noisy_oneways)
    probs = [np.clip(v, 0, None) / max(np.clip(v, 0, None).sum(), 1e-12) for v in noisy_oneways]
    total = max(1.0, float(np.mean([v.sum() for v in noisy_oneways])))  # the site's noisy row count (DP output)
    errors = {}
    for a in range(d):
        for b in range(a + 1, d):
            estimate = total * np.outer(probs[a], probs[b]).ravel()
            errors[(a, b)] = float(np.abs(measurer.answer((a, b)) - estimate).sum())
            if target is not None and target in (a, b):
                errors[(a, b)] *= target_weight
    return errors


def tree_vote(measurer, noisy_oneways: list[np.ndarray], *, rho: float, target: int | None = None,
              target_weight: float = 1.0) -> list[tuple[int, int]]:
    """The site's spanning tree of column pairs, chosen by d - 1 exponential mechanisms sharing ``rho``.

    Score of a pair: L1 distance between its exact counts and the independent model of the site's
    noisy one-ways, x ``target_weight`` when the pair holds ``target``. Sensitivity: the model is
    fixed (a DP output) before the scores; adding or removing one row moves one cell of the exact
    2-way table by 1, so a score moves by at most 1, a weighted score by at most ``target_weight``
    (the mechanism is run with that sensitivity; ``tests/integration/test_federated_marginal.py``
    checks the bound on neighbouring tables)."""
    if not target_weight >= 1.0:
        raise PrivacyError(f"target_weight must be >= 1, got {target_weight!r}")
    d = len(noisy_oneways)
    candidates = [(a, b) for a in range(d) for b in range(a + 1, d)]
    errors = vote_scores(measurer, noisy_oneways, target=target, target_weight=target_weight)
    sensitivity = target_weight if target is not None else 1.0
    from dpsynth.generators.tabular.marginal.mst import _Components

    components = _Components(d)
    epsilon = math.sqrt(8 * rho / (d - 1))
    chosen = []
    for step in range(d - 1):
        open_pairs = [p for p in candidates if components.find(p[0]) != components.find(p[1])]
        pick = measurer.select(np.array([errors[p] for p in open_pairs]), epsilon=epsilon, sensitivity=sensitivity,
                               purpose=f"federated: vote for tree edge {step + 1} of {d - 1}")
        pair = open_pairs[pick]
        components.union(*pair)
        chosen.append(pair)
    return chosen


def measure_round(measurer, *, cliques: list[tuple[int, ...]], maps: list[np.ndarray], ledger: Ledger,
                  epsilon: float) -> tuple[list[np.ndarray], float]:
    """Round 3: noisy marginals of ``cliques`` on the model codes ``maps`` (public), with the site's
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

    ``state``: what the site kept from the rounds before (its ledger, its planned rho and its own
    noisy one-ways: DP outputs), None in round 1. Returns the arrays it sends (noisy tables only),
    its new state, and its metrics (its ledger, epsilon, noise std, row count and, in round 2, its
    DP vote)."""
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
        out, sigma = oneway_round(measurer, generator=job.generator, rho=rho)
        keep = {"rho": rho, "oneways": [v.tolist() for v in out]}
    elif state is None or "oneways" not in state:
        raise PrivacyError(f"site {name}: round {server_round} before round 1")
    elif server_round == 2:
        if "voted" in state:
            raise PrivacyError(f"site {name}: round 2 asked twice")
        _, maps = read_payload(arrays)
        target = schema.names.index(schema.target) if schema.target is not None else None
        votes = vote_round(measurer, [np.asarray(v, float) for v in state["oneways"]], maps,
                           rho=state["rho"] * SHARES[job.generator][1], target=target,
                           target_weight=job.target_weight)
        metrics["votes"] = json.dumps([list(v) for v in votes])
        out, sigma = [np.zeros(1)], 0.0
        keep = {**{k: state[k] for k in ("rho", "oneways")}, "voted": True}
    else:
        if "voted" not in state or "measured" in state:
            raise PrivacyError(f"site {name}: round {server_round} out of order")
        cliques, maps = read_payload(arrays)
        out, sigma = measure_round(measurer, cliques=cliques, maps=maps, ledger=measurer.ledger,
                                   epsilon=budget.epsilon)
        keep = {"rho": state["rho"], "oneways": [], "voted": True, "measured": True}
    ledger = measurer.ledger
    if ledger.epsilon() > budget.epsilon * (1 + 1e-9):
        raise PrivacyError(f"site {name}: spent epsilon {ledger.epsilon():.4f} exceeds the target {budget.epsilon}")
    metrics.update({"sigma": sigma, "epsilon": float(ledger.epsilon()), "ledger": json.dumps(ledger.to_dict())})
    return out, {"ledger": ledger.to_dict(), **keep}, metrics
