"""Federated DP marginals (``dpsynth federated --generator mst|aim|independent``): each site
measures noisy marginals of its own rows; the server sums them and fits ONE graphical model.

Why it is sound: a site's noisy marginal is a Gaussian release charged to that site's ledger (see
:mod:`.marginal_site`). The server only ever receives those noisy arrays (and DP votes); their sum
over sites is post-processing, and it is an unbiased measurement of the union's marginal whose
noise variance is the sum of the sites' variances. The model is fitted to the summed measurements
with the same mirror descent as single-site mst/aim (mbi's algorithm; ``estimator: mbi`` runs
mbi's own). The released epsilon is the maximum over the sites' ledgers (sample-level).

Rounds (Flower, one message each way per site per round):
1. every site sends its noisy one-way marginals (+ for mst/aim its DP vote for a tree of pairs);
   the server sums them, compresses the domain from the SUMMED one-ways (MST's rule) and picks the
   tree with the most votes (Kruskal on vote counts; ties broken by the run's seed);
2. (mst/aim) the server asks for the tree's pairs (aim: plus every pair with the schema's target,
   a fixed public workload, no selection needed); every site sends them noisy; the server sums.
``aim`` here is NOT single-site AIM's adaptive loop (a per-round adaptive choice would need a DP
selection at every site every round); it is MST-style voting plus AIM's target workload.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dpsynth.generators.tabular.marginal.estimate import Measurement

MARGINAL_GENERATORS = ("independent", "mst", "aim")


@dataclass(frozen=True)
class MarginalJob:
    """What every site is told (no rows). Plain values only, so it travels to simulated sites."""

    generator: str
    bins: int
    schema_path: str
    epsilon: float
    delta: float | None
    accountant: str
    secure_mode: bool
    seed: int
    sites: tuple[tuple[str, str], ...]
    compress: bool = True
    pgm_iters: int = 1000
    estimator: str = "numpy"

    @property
    def rounds(self) -> int:
        return 1 if self.generator == "independent" else 2

    def budget(self):
        from dpsynth.privacy.budget import Budget

        return Budget(epsilon=self.epsilon, delta=self.delta, accountant=self.accountant, secure_mode=self.secure_mode)


def sum_measurements(parts: list[list[np.ndarray]], sigmas: list[float], cliques: list[tuple]) -> list[Measurement]:
    """The sites' noisy tables of the same cliques, summed: one measurement of the union per clique
    (noise std = sqrt of the summed variances)."""
    if len({len(p) for p in parts}) != 1 or len(parts[0]) != len(cliques):
        raise ValueError("every site must send one table per asked marginal")
    sigma = math.sqrt(sum(s * s for s in sigmas))
    out = []
    for j, clique in enumerate(cliques):
        shapes = {p[j].shape for p in parts}
        if len(shapes) != 1:
            raise ValueError(f"sites sent tables of different shapes for marginal {clique}: {sorted(shapes)}")
        out.append(Measurement(tuple(clique), np.sum([p[j] for p in parts], axis=0), sigma))
    return out


def voted_tree(votes: list[list[tuple[int, int]]], d: int, *, rng: np.random.Generator) -> list[tuple[int, int]]:
    """A spanning tree of the pairs with the most site votes (Kruskal; ties in random order)."""
    from dpsynth.generators.tabular.marginal.mst import _Components

    count: dict[tuple[int, int], int] = {}
    for site in votes:
        for a, b in site:
            key = (min(a, b), max(a, b))
            count[key] = count.get(key, 0) + 1
    pairs = [(a, b) for a in range(d) for b in range(a + 1, d)]
    tie = rng.permutation(len(pairs))
    order = sorted(range(len(pairs)), key=lambda i: (-count.get(pairs[i], 0), tie[i]))
    components, tree = _Components(d), []
    for i in order:
        a, b = pairs[i]
        if components.find(a) != components.find(b):
            components.union(a, b)
            tree.append((a, b))
    return tree


def asked_cliques(generator: str, tree: list[tuple[int, int]], target: int | None, d: int) -> list[tuple[int, int]]:
    cliques = list(tree)
    if generator == "aim" and target is not None:
        cliques += [(min(a, target), max(a, target)) for a in range(d) if a != target]
    return list(dict.fromkeys(cliques))


@dataclass
class ServerState:
    """What the server holds between rounds: DP outputs only."""

    sizes: tuple[int, ...]
    oneways: list[Measurement] = field(default_factory=list)
    maps: list[np.ndarray] = field(default_factory=list)
    cliques: list[tuple[int, int]] = field(default_factory=list)
    pairs: list[Measurement] = field(default_factory=list)
    sigma_oneway: float = 0.0
    reports: list[list[dict]] = field(default_factory=list)

    def after_oneways(self, job: MarginalJob, parts: list[list[np.ndarray]], sigmas: list[float],
                      votes: list[list[tuple[int, int]]], target: int | None) -> None:
        from dpsynth.generators.tabular.marginal.compress import DomainMap, compress

        d = len(self.sizes)
        measured = sum_measurements(parts, sigmas, [(a,) for a in range(d)])
        self.sigma_oneway = float(measured[0].sigma)
        if job.compress and job.generator != "independent":
            domain_map, measured = compress(measured, self.sizes)
            self.maps = domain_map.maps
        else:
            self.maps = DomainMap.identity(self.sizes).maps
        self.oneways = measured
        if job.generator != "independent" and d > 1:
            tree = voted_tree(votes, d, rng=np.random.default_rng([job.seed, 7]))
            self.cliques = asked_cliques(job.generator, tree, target, d)

    def payload(self) -> list[np.ndarray]:
        """Round 2's request to every site: the pairs (k x 2) and the public code maps."""
        return [np.asarray(self.cliques, dtype=np.int64).reshape(-1, 2)] + [np.asarray(m, np.int64) for m in self.maps]


def fit_generator(job: MarginalJob, state: ServerState, schema):
    """The released generator: one model fitted to the summed measurements (post-processing)."""
    from dpsynth.config import build_generator
    from dpsynth.generators.tabular.marginal.compress import DomainMap
    from dpsynth.generators.tabular.marginal.discretize import Discretizer

    disc = Discretizer(schema, bins=job.bins)
    if job.generator == "independent":
        gen = build_generator("independent", {"bins": job.bins})
        gen.probs_ = [_normalise(np.clip(m.values, 0, None)) for m in state.oneways]
        gen.schema_ = schema
        return gen
    from dpsynth.generators.tabular.marginal.fitting import fit_model
    from dpsynth.generators.tabular.marginal.mbi_glue import greedy_tree

    domain_map = DomainMap(state.maps)
    sizes = domain_map.model_sizes
    oneway = [(a,) for a in range(len(sizes))]
    tree = greedy_tree(sizes, oneway + list(state.cliques))
    fit = fit_model(tree, state.oneways + state.pairs, iters=job.pgm_iters, estimator=job.estimator)
    params = {"bins": job.bins, "pgm_iters": job.pgm_iters, "estimator": job.estimator}
    if job.generator == "mst":
        params["compress"] = job.compress
    gen = build_generator(job.generator, params)
    gen.model_, gen.discretizer_, gen.domain_map_, gen.schema_ = fit.model, disc, domain_map, schema
    return gen


def _normalise(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return np.full(len(counts), 1.0 / len(counts)) if total <= 0 else counts / total
