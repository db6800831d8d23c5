"""The ``federated`` verb for the marginal generators (mst, aim, independent): sites send noisy
marginals over Flower, the server sums them and fits one model; a normal run directory results.

``params`` (all optional): ``bins`` (default: mst/independent 16, aim 8, as the single-site
generators), ``compress`` (MST's domain compression from the summed one-ways, default true),
``pgm_iters`` (1000), ``estimator`` ('numpy' or 'mbi'), ``target_weight`` (the sites' tree
votes weight pairs with the schema's target; mst 4 as single-site mst and ``auto``, aim 1),
``site_column`` (the name of the public site column the model gets; default "site" for mst,
null for aim, chosen on validation rows; null = off, one model of the union), ``site_pairs`` (false: the asked pairs are summed over sites, shared by
them; true: stacked per site). ``rounds`` is fixed by the method (independent 1, mst/aim 3); a
different ``--rounds`` is refused.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from dpsynth.errors import ConfigError, PrivacyError
from dpsynth.privacy.ledger import Ledger

_PARAMS = {"bins", "compress", "pgm_iters", "estimator", "target_weight", "site_column", "site_pairs"}
DEFAULT_TARGET_WEIGHT = {"independent": 1.0, "mst": 4.0, "aim": 1.0}
# Chosen on validation rows (evaluation/results/federated_validation.md: each site's training rows
# split again 70/30, mean TSTR AUROC over sites at eps 1 and 4, 3 seeds): mst gains a little from
# the site column (0.713 / 0.767 vs 0.703 / 0.756 without), aim loses (0.670 / 0.698 vs 0.696 / 0.740).
DEFAULT_SITE_COLUMN = {"independent": None, "mst": "site", "aim": None}


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
                      pgm_iters=int(params.get("pgm_iters", 1000)), estimator=str(params.get("estimator", "numpy")),
                      target_weight=float(params.get("target_weight", DEFAULT_TARGET_WEIGHT[config.generator])),
                      site_column=_site_column(params, config.generator), site_pairs=bool(params.get("site_pairs", False)))
    if not job.target_weight >= 1.0:
        raise ConfigError(f"federated {config.generator}: target_weight must be >= 1, got {job.target_weight}")
    if config.rounds not in (3, job.rounds):  # 3 is FederatedConfig's default for DP-SGD
        raise ConfigError(f"federated {config.generator} runs {job.rounds} round(s); --rounds {config.rounds} "
                          f"does not apply")
    return job


def _site_column(params: dict, generator: str) -> str | None:
    if generator == "independent":
        if params.get("site_column"):
            raise ConfigError("federated independent: site_column applies to mst and aim")
        return None
    value = params.get("site_column", DEFAULT_SITE_COLUMN[generator])
    if value is None or value is False:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"site_column: expected a column name or null, got {value!r}")
    return value


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
    schema = generator.schema_  # with the site column when the model has one
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
           "site_column": job.site_column, "site_pairs": job.site_pairs if job.site_column else None,
           "target_weight": job.target_weight,
           "marginals": {"asked": [server_name(schema, c) for c in server.cliques],
                         "noise_std_summed": {"one-way": server.sigma_oneway,
                                              "asked": float(server.pairs[0].sigma) if server.pairs else None}}}
    card = federated_card(generator=config.generator, site_ledgers=site_ledgers, site_rows=rows, rounds=job.rounds,
                          privacy_unit=getattr(schema, "privacy_unit", "row"), secure_mode=budget.secure_mode,
                          site_level=None)
    card["federated"]["aggregation"] = (
        "sum of the sites' noisy marginals (post-processing; noise variances add), one graphical model fitted to "
        "the sums by the server") if not job.site_column else (
        f"each site's noisy marginals placed in its own slice of the joint with the public site column "
        f"'{job.site_column}' (a site measures only its own rows; nothing is added to other sites' slices; "
        f"{'pairs stacked per site' if job.site_pairs else 'pairs summed over the sites'}); one graphical model "
        f"fitted by the server (post-processing); sample site s's rows with conditions {{{job.site_column}: s}}")
    _write_run(out, generator=generator, schema=schema, ledger=site_ledgers[worst], config=config, run=run,
               card=card, site_ledgers=site_ledgers, secure_mode=budget.secure_mode)
    return FederatedResult(run_dir=out, generator=generator, epsilon=float(card["epsilon"]), site_ledgers=site_ledgers,
                           site_level=None, fit_seconds=fit_seconds, reports=server.reports)


def server_name(schema, clique) -> str:
    return "x".join(schema.names[a] for a in clique)
