"""Federated DP marginals (``dpsynth federated --generator mst|aim|independent``): each site
measures noisy marginals of its own rows; the server sums them and fits ONE graphical model.

Why it is sound: a site's noisy marginal is a Gaussian release charged to that site's ledger (see
:mod:`.marginal_site`). The server only ever receives those noisy arrays (and DP votes); their sum
over sites is post-processing, and it is an unbiased measurement of the union's marginal whose
noise variance is the sum of the sites' variances. The model is fitted to the summed measurements
with the same mirror descent as single-site mst/aim (mbi's algorithm; ``estimator: mbi`` runs
mbi's own). The released epsilon is the maximum over the sites' ledgers (sample-level).

Rounds (Flower, one message each way per site per round):
1. every site sends its noisy one-way marginals; the server sums them and compresses the domain
   from the SUMMED one-ways (MST's rule: cells below 3 sigma of the sum merge);
2. (mst/aim) the server sends the model codes; every site sends its DP vote for a tree of pairs
   on those codes (see :mod:`.marginal_site`); the server picks the tree with the most votes
   (Kruskal on vote counts; ties broken by the run's seed);
3. (mst/aim) the server asks for the tree's pairs (aim: plus every pair with the schema's target,
   a fixed public workload, no selection needed); every site sends them noisy.
``aim`` here is NOT single-site AIM's adaptive loop (a per-round adaptive choice would need a DP
selection at every site every round); it is MST-style voting plus AIM's target workload.

Site column (``site_column``; the verb's default: ``"site"`` for mst, ``None`` = off for aim): the model gets one more column,
the site (public: every row of site s is at site s). A site can measure only its own rows, so its
noisy one-way of X IS its slice (site = s) of the joint (site, X); the other sites' slices are
structurally zero for it (it holds no row there) and it releases nothing about them. Stacking the
sites' slices gives a measurement of (site, X) whose cells in slice s carry site s's noise std
(equivalently: the sum over sites of each site's table zero-filled outside its own slice, where a
structural zero needs no noise). Nothing a site sends changes, so every site's ledger is exactly
as without the column. The pairs the server asks for are summed over the sites (one measurement
of the union's (X, Y), noise variances added) unless ``site_pairs`` (then stacked too, as (site,
X, Y)). The model fitted to these is the log-linear model with site-specific one-ways and shared
pair interactions (site x X for every X, X x Y for the tree's pairs); conditioning on site = s
samples site s's rows, and a plain sample draws the site from the model.
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
    target_weight: float = 1.0
    site_column: str | None = None
    site_pairs: bool = False

    @property
    def rounds(self) -> int:
        return 1 if self.generator == "independent" else 3

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
    """What the server holds between rounds: DP outputs only (the sites' noisy tables, their votes)."""

    sizes: tuple[int, ...]
    oneways: list[Measurement] = field(default_factory=list)
    maps: list[np.ndarray] = field(default_factory=list)
    cliques: list[tuple[int, int]] = field(default_factory=list)
    pairs: list[Measurement] = field(default_factory=list)
    sigma_oneway: float = 0.0
    reports: list[list[dict]] = field(default_factory=list)
    site_oneways: list[list[np.ndarray]] = field(default_factory=list)  # per site, its noisy one-ways
    site_oneway_sigmas: list[float] = field(default_factory=list)
    site_pairs: list[list[np.ndarray]] = field(default_factory=list)  # per site, its noisy asked marginals
    site_pair_sigmas: list[float] = field(default_factory=list)

    def after_oneways(self, job: MarginalJob, parts: list[list[np.ndarray]], sigmas: list[float]) -> None:
        from dpsynth.generators.tabular.marginal.compress import DomainMap, compress

        d = len(self.sizes)
        measured = sum_measurements(parts, sigmas, [(a,) for a in range(d)])
        self.sigma_oneway = float(measured[0].sigma)
        self.site_oneways = [[np.asarray(v, float) for v in p] for p in parts]
        self.site_oneway_sigmas = [float(s) for s in sigmas]
        if job.compress and job.generator != "independent":
            domain_map, measured = compress(measured, self.sizes)
            self.maps = domain_map.maps
        else:
            self.maps = DomainMap.identity(self.sizes).maps
        self.oneways = measured

    def after_votes(self, job: MarginalJob, votes: list[list[tuple[int, int]]], target: int | None) -> None:
        d = len(self.sizes)
        if job.generator != "independent" and d > 1:
            tree = voted_tree(votes, d, rng=np.random.default_rng([job.seed, 7]))
            self.cliques = asked_cliques(job.generator, tree, target, d)

    def after_pairs(self, parts: list[list[np.ndarray]], sigmas: list[float]) -> None:
        self.site_pairs = [[np.asarray(v, float) for v in p] for p in parts]
        self.site_pair_sigmas = [float(s) for s in sigmas]
        self.pairs = sum_measurements(parts, sigmas, self.cliques) if self.cliques else []

    def payload_maps(self) -> list[np.ndarray]:
        """Round 2's request to every site: no pairs yet, the public code maps."""
        return [np.zeros((0, 2), dtype=np.int64)] + [np.asarray(m, np.int64) for m in self.maps]

    def payload(self) -> list[np.ndarray]:
        """Round 3's request to every site: the pairs (k x 2) and the public code maps."""
        return [np.asarray(self.cliques, dtype=np.int64).reshape(-1, 2)] + [np.asarray(m, np.int64) for m in self.maps]


def stack_sites(parts: list[np.ndarray], sigmas: list[np.ndarray | float], clique: tuple, site: int) -> Measurement:
    """The sites' noisy tables of one marginal, each in its own slice of the joint with the site
    column (index ``site``, the last column): values and per-cell noise std over ``clique + (site,)``.
    A site's table fills only slice s (its own rows); nothing is added to another site's slice."""
    values = np.stack([np.asarray(p, float) for p in parts], axis=-1).ravel()
    sigma = np.stack([np.broadcast_to(np.asarray(s, float), np.shape(p)) for p, s in zip(parts, sigmas)],
                     axis=-1).ravel()
    return Measurement(tuple(clique) + (site,), values, sigma)


def site_measurements(job: MarginalJob, state: ServerState) -> list[Measurement]:
    """The measurements of the model with the site column (index d = len(sizes)), on model codes."""
    from dpsynth.federated.marginal_site import recode_counts

    d = len(state.sizes)
    out = []
    for a in range(d):
        mapping = state.maps[a]
        parts = [recode_counts(p[a], mapping) for p in state.site_oneways]
        merged = np.bincount(mapping, minlength=int(mapping.max()) + 1)  # a merged cell sums that many cells
        sigmas = [s * np.sqrt(merged) for s in state.site_oneway_sigmas]
        out.append(stack_sites(parts, sigmas, (a,), d))
    if job.site_pairs:
        out += [stack_sites([p[j] for p in state.site_pairs], state.site_pair_sigmas, tuple(c), d)
                for j, c in enumerate(state.cliques)]
    else:
        out += list(state.pairs)
    return out


def with_site_column(schema, name: str, sites: list[str]):
    """The public schema plus the site column (a categorical of the site names, in job order)."""
    import dataclasses

    from dpsynth.data.schema import Column
    from dpsynth.errors import ConfigError

    if name in schema.names:
        raise ConfigError(f"site_column '{name}' is already a column of schema '{schema.name}'; choose another name "
                          "(params: site_column) or null")
    column = Column(name=name, kind="categorical", categories=tuple(sites),
                    description="the site (hospital) of the row: public, added by dpsynth federated")
    return dataclasses.replace(schema, columns=tuple(schema.columns) + (column,), _index={})


def fit_generator(job: MarginalJob, state: ServerState, schema):
    """The released generator: one model fitted to the summed (or, with the site column, stacked)
    measurements (post-processing). With ``job.site_column`` its schema is ``schema`` plus that column."""
    from dpsynth.config import build_generator
    from dpsynth.generators.tabular.marginal.compress import DomainMap
    from dpsynth.generators.tabular.marginal.discretize import Discretizer

    if job.generator == "independent":
        disc = Discretizer(schema, bins=job.bins)
        gen = build_generator("independent", {"bins": job.bins})
        gen.probs_ = [_normalise(np.clip(m.values, 0, None)) for m in state.oneways]
        gen.schema_ = schema
        return gen
    from dpsynth.generators.tabular.marginal.fitting import fit_model
    from dpsynth.generators.tabular.marginal.mbi_glue import greedy_tree

    maps = [np.asarray(m, np.int64) for m in state.maps]
    if job.site_column:
        schema = with_site_column(schema, job.site_column, [n for n, _ in job.sites])
        maps.append(np.arange(len(job.sites), dtype=np.int64))
        measurements = site_measurements(job, state)
    else:
        measurements = state.oneways + state.pairs
    disc = Discretizer(schema, bins=job.bins)
    domain_map = DomainMap(maps)
    sizes = domain_map.model_sizes
    tree = greedy_tree(sizes, [m.clique for m in measurements])
    fit = fit_model(tree, measurements, iters=job.pgm_iters, estimator=job.estimator)
    params = {"bins": job.bins, "pgm_iters": job.pgm_iters, "estimator": job.estimator}
    if job.generator == "mst":
        params.update({"compress": job.compress, "target_weight": job.target_weight})
    gen = build_generator(job.generator, params)
    gen.model_, gen.discretizer_, gen.domain_map_, gen.schema_ = fit.model, disc, domain_map, schema
    return gen


def _normalise(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return np.full(len(counts), 1.0 / len(counts)) if total <= 0 else counts / total


def drive_locally(job: MarginalJob, schema) -> tuple[ServerState, list[dict], list[list[tuple]]]:
    """Every round of the protocol in this process, without the Flower transport (tests, validation
    runs): the same site and server functions, in site order. Returns the server's state, each
    site's final state, and per round the sites' (arrays, metrics)."""
    import json

    from dpsynth.federated.marginal_site import site_marginal_round
    from dpsynth.generators.tabular.marginal.discretize import Discretizer

    server = ServerState(sizes=tuple(Discretizer(schema, bins=job.bins).sizes))
    target = schema.names.index(schema.target) if schema.target is not None else None
    states: list = [None] * len(job.sites)
    payload, sent = [np.zeros(1)], []
    for rnd in range(1, job.rounds + 1):
        out = [site_marginal_round(job=job, site_index=i, server_round=rnd, arrays=payload, state=states[i])
               for i in range(len(job.sites))]
        states = [s for _, s, _ in out]
        parts, metrics = [a for a, _, _ in out], [m for _, _, m in out]
        sigmas = [float(m["sigma"]) for m in metrics]
        sent.append([(a, m) for a, m in zip(parts, metrics)])
        server.reports.append(metrics)
        if rnd == 1:
            server.after_oneways(job, parts, sigmas)
            payload = server.payload_maps()
        elif rnd == 2:
            server.after_votes(job, [[tuple(v) for v in json.loads(m["votes"])] for m in metrics], target)
            payload = server.payload()
        else:
            server.after_pairs(parts, sigmas)
    return server, states, sent
