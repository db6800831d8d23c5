"""The ``federated`` verb for the marginal generators (mst, aim, independent): sites send noisy
marginals over Flower, the server sums them and fits one model; a normal run directory results.

``params`` (all optional): ``bins`` (default: mst/independent 16, aim 8, as the single-site
generators), ``compress`` (MST's domain compression from the summed one-ways, default true),
``pgm_iters`` (1000), ``estimator`` ('numpy' or 'mbi'). ``rounds`` is fixed by the method
(independent 1, mst/aim 2); a different ``--rounds`` is refused.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from dpsynth.errors import ConfigError, PrivacyError
from dpsynth.privacy.ledger import Ledger

_PARAMS = {"bins", "compress", "pgm_iters", "estimator"}


def marginal_job(config, *, sites_resolved):
    from dpsynth.federated.marginal import MarginalJob
    from dpsynth.federated.marginal_site import DEFAULT_BINS

    params = dict(config.params or {})
    unknown = set(params) - _PARAMS
    if unknown:
        raise ConfigError(f"federated {config.generator}: unknown param(s) {sorted(unknown)}; allowed: {sorted(_PARAMS)}")
    if config.site_level_dp is not None:
        raise ConfigError("site-level DP (--site-level-epsilon) applies to the DP-SGD generators, not to "
                          f"'{config.generator}'")
    budget = config.privacy.budget()
    if budget.accountant != "rdp":
        raise ConfigError(f"federated {config.generator} plans in zCDP: use accountant 'rdp'")
    job = MarginalJob(generator=config.generator, bins=int(params.get("bins", DEFAULT_BINS[config.generator])),
                      schema_path=str(Path(config.schema).resolve()), epsilon=budget.epsilon, delta=budget.delta,
                      accountant=budget.accountant, secure_mode=budget.secure_mode, seed=config.seed,
                      sites=sites_resolved, compress=bool(params.get("compress", True)),
                      pgm_iters=int(params.get("pgm_iters", 1000)), estimator=str(params.get("estimator", "numpy")))
    if config.rounds not in (3, job.rounds):  # 3 is FederatedConfig's default for DP-SGD
        raise ConfigError(f"federated {config.generator} runs {job.rounds} round(s); --rounds {config.rounds} "
                          f"does not apply")
    return job


def run_federated_marginal(*, config, out: Path, progress=None, verbose: bool = False):
    from dpsynth.data.schema import Schema
    from dpsynth.federated.card import federated_card
    from dpsynth.federated.marginal import fit_generator
    from dpsynth.federated.marginal_flower import run_marginal_rounds
    from dpsynth.federated.site import check_sites
    from dpsynth.federated.run_files import FederatedResult, _write_run
    from dpsynth.generators.tabular.marginal.discretize import Discretizer
    from dpsynth.generators.tabular.marginal.mbi_glue import require_mbi

    if len(config.sites) < 2:
        raise ConfigError(f"federated training needs at least 2 sites, got {len(config.sites)}")
    if config.schema is None or not Path(config.schema).is_file():
        raise ConfigError(f"federated training needs the public schema file (--schema), got {config.schema}")
    job = marginal_job(config, sites_resolved=tuple((n, str(Path(p).resolve())) for n, p in config.sites))
    if job.generator != "independent":
        require_mbi(job.generator)
    schema = Schema.load(config.schema)
    budget = job.budget()
    rows = check_sites(config.sites, schema, budget)  # the site-side check, run here before round 1
    sizes = tuple(Discretizer(schema, bins=job.bins).sizes)
    target = schema.names.index(schema.target) if schema.target is not None else None
    start = time.perf_counter()
    server = run_marginal_rounds(job=job, sizes=sizes, target=target, progress=progress, verbose=verbose)
    generator = fit_generator(job, server, schema)
    fit_seconds = time.perf_counter() - start
    last = {m["site"]: m for m in server.reports[-1]}
    site_ledgers = {name: Ledger.from_dict(json.loads(last[name]["ledger"])) for name, _ in config.sites}
    for name, ledger in site_ledgers.items():
        if ledger.epsilon() > budget.epsilon * (1 + 1e-9):
            raise PrivacyError(f"internal error: site {name} spent epsilon {ledger.epsilon():.4f} > {budget.epsilon}")
    worst = max(site_ledgers, key=lambda s: site_ledgers[s].epsilon())
    generator.ledger_ = site_ledgers[worst]
    run = {"federated": True, "data": None, "sites": {n: {"path": p, "rows": rows[n]} for n, p in job.sites},
           "n_train": sum(rows.values()), "rounds": job.rounds, "fit_seconds": round(fit_seconds, 3),
           "marginals": {"asked": [server_name(schema, c) for c in server.cliques],
                         "noise_std_summed": {"one-way": server.sigma_oneway,
                                              "asked": float(server.pairs[0].sigma) if server.pairs else None}}}
    card = federated_card(generator=config.generator, site_ledgers=site_ledgers, site_rows=rows, rounds=job.rounds,
                          privacy_unit=getattr(schema, "privacy_unit", "row"), secure_mode=budget.secure_mode,
                          site_level=None)
    card["federated"]["aggregation"] = (
        "sum of the sites' noisy marginals (post-processing; noise variances add), one graphical model fitted to "
        "the sums by the server")
    _write_run(out, generator=generator, schema=schema, ledger=site_ledgers[worst], config=config, run=run,
               card=card, site_ledgers=site_ledgers, secure_mode=budget.secure_mode)
    return FederatedResult(run_dir=out, generator=generator, epsilon=float(card["epsilon"]), site_ledgers=site_ledgers,
                           site_level=None, fit_seconds=fit_seconds, reports=server.reports)


def server_name(schema, clique) -> str:
    return "x".join(schema.names[a] for a in clique)
