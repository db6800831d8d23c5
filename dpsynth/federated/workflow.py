"""The ``federated`` verb: train one DP generator across sites that keep their rows, on Flower.

``run_federated(config, out=...)`` checks the request, runs the rounds in Flower's simulation
engine (one simulated site per file), builds the generator from the final global weights and
writes a normal dpsynth run directory (``dpsynth generate --model OUT`` samples from it) whose
``ledger.json`` is the worst site's ledger and whose privacy card lists every site's ledger.

Each site's file holds that site's training rows (hold out rows for evaluation beforehand). In
this one-machine simulation the driver also runs the site-side schema check on every file before
round 1 (what each site does locally), so a bad file fails fast with one line naming it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from dpsynth.errors import ConfigError, PrivacyError
from dpsynth.federated.config import FederatedConfig, SiteLevelDP
from dpsynth.federated.run_files import FederatedResult, _write_run  # noqa: F401 (FederatedResult is public here)
from dpsynth.safe_io import check_output_dir
from dpsynth.privacy.ledger import Ledger


def site_level_plan(spec: SiteLevelDP, *, n_sites: int, rounds: int, accountant: str) -> dict:
    """Noise multiplier for Flower's client-side fixed clipping so that R rounds of the Gaussian
    mechanism on the sum of clipped site updates (every site every round: no sampling) are
    (epsilon, delta)-DP for adding/removing one site; composed with dpsynth's accountant."""
    from dpsynth.privacy.accountants import calibrate_noise, compose
    from dpsynth.privacy.budget import Budget

    delta = Budget(epsilon=spec.epsilon, delta=spec.delta).resolve_delta(n_sites)
    sigma = calibrate_noise(base=[], base_rho=0.0, sample_rate=1.0, steps=rounds, target_epsilon=spec.epsilon,
                            delta=delta, accountant=accountant)
    eps = compose([(sigma, 1.0, rounds)], zcdp_rho=0.0, delta=delta, accountant=accountant)
    return {
        "epsilon": eps, "target_epsilon": spec.epsilon, "delta": delta, "rounds": rounds, "sites": n_sites,
        "noise_multiplier": sigma, "clip_norm": spec.clip_norm, "noise_std_on_average": sigma * spec.clip_norm / n_sites,
        "secure_aggregation": spec.secure_aggregation, "accountant": accountant,
        "mechanism": "Flower DifferentialPrivacyClientSideFixedClipping + fixedclipping_mod (each site's update "
                     "clipped to clip_norm in L2, Gaussian noise added to the equally weighted average)"
                     + (", sums under Flower SecAggPlusWorkflow / secaggplus_mod" if spec.secure_aggregation else ""),
        "neighbouring": "add/remove one site's whole update (all of its patients)",
        "not_covered": "the sites' one-off noisy category/class counts (sample-level DP only) and the row counts, "
                       "which each site reports outside the aggregated weights; the noise is drawn by Flower from "
                       "numpy's global generator (not a secure RNG)",
    }


def _check_request(config: FederatedConfig):
    from dpsynth.federated.models import federated_model
    from dpsynth.federated.site import check_sites, load_schema

    if len(config.sites) < 2:
        raise ConfigError(f"federated training needs at least 2 sites, got {len(config.sites)}")
    if config.rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {config.rounds}")
    if config.schema is None:
        raise ConfigError("federated training needs the public schema (--schema s.yaml)")
    if not Path(config.schema).is_file():
        raise ConfigError(f"schema file not found: {config.schema}")
    budget = config.privacy.budget()
    schema = load_schema(config.schema)
    model = federated_model(config.generator, dict(config.params or {}), schema)
    rows = check_sites(config.sites, schema, budget)  # the site-side check, run here before round 1
    return schema, model, rows


def run_federated(*, config: FederatedConfig, out: str | Path, overwrite: bool = False, progress=None,
                  verbose: bool = False) -> FederatedResult:
    """Train ``config.generator`` over ``config.sites`` for ``config.rounds`` Flower rounds."""
    from dpsynth.federated.card import federated_card
    from dpsynth.federated.flower import SiteLevelPlan, require_flwr, run_rounds
    from dpsynth.federated.site import FederatedJob

    out = Path(out)
    check_output_dir(out, overwrite=overwrite)  # --overwrite replaces only a run dpsynth wrote
    require_flwr()
    from dpsynth.federated.marginal import MARGINAL_GENERATORS

    if config.generator in MARGINAL_GENERATORS:
        from dpsynth.federated.marginal_workflow import run_federated_marginal

        return run_federated_marginal(config=config, out=out, progress=progress, verbose=verbose)
    schema, model, rows = _check_request(config)
    budget = config.privacy.budget()
    job = FederatedJob(generator=config.generator, params=dict(config.params or {}),
                       schema_path=str(Path(config.schema).resolve()), rounds=config.rounds, epsilon=budget.epsilon,
                       delta=budget.delta, accountant=budget.accountant,
                       preprocessing_share=budget.preprocessing_share, secure_mode=budget.secure_mode,
                       seed=config.seed, threads=config.threads,
                       sites=tuple((name, str(Path(path).resolve())) for name, path in config.sites))
    site_level = None
    flower_site_level = None
    if config.site_level_dp is not None:
        site_level = site_level_plan(config.site_level_dp, n_sites=len(config.sites), rounds=config.rounds,
                                     accountant=budget.accountant)
        flower_site_level = SiteLevelPlan(noise_multiplier=site_level["noise_multiplier"],
                                          clip_norm=config.site_level_dp.clip_norm,
                                          secure_aggregation=config.site_level_dp.secure_aggregation)
    initial = model.to_arrays(model.initial_state(np.random.default_rng(config.seed)))
    start = time.perf_counter()
    outcome = run_rounds(job=job, initial_arrays=initial, site_level=flower_site_level, progress=progress,
                         verbose=verbose)
    fit_seconds = time.perf_counter() - start
    last = {m["site"]: m for m in outcome.reports[-1]}
    site_ledgers = {name: Ledger.from_dict(json.loads(last[name]["ledger"])) for name, _ in config.sites}
    released = [json.loads(last[name]["released"]) for name, _ in config.sites]
    for name, ledger in site_ledgers.items():
        if ledger.epsilon() > budget.epsilon * (1 + 1e-9):
            raise PrivacyError(f"internal error: site {name} spent epsilon {ledger.epsilon():.4f} > {budget.epsilon}")
    generator = model.finalize(model.from_arrays(outcome.arrays), released)
    worst = max(site_ledgers, key=lambda s: site_ledgers[s].epsilon())
    generator.ledger_ = site_ledgers[worst]
    run = {"federated": True, "data": None, "sites": {name: {"path": path, "rows": rows[name]} for name, path in job.sites},
           "n_train": sum(rows.values()), "rounds": config.rounds, "fit_seconds": round(fit_seconds, 3),
           "dp_plan": {m["site"]: {"steps": m["steps"], "epsilon": m["epsilon"]} for m in outcome.reports[-1]},
           "site_level_dp": site_level}
    card = federated_card(generator=config.generator, site_ledgers=site_ledgers, site_rows=rows, rounds=config.rounds,
                          privacy_unit=getattr(schema, "privacy_unit", "row"), secure_mode=budget.secure_mode,
                          site_level=site_level)
    _write_run(out, generator=generator, schema=schema, ledger=site_ledgers[worst], config=config, run=run,
               card=card, site_ledgers=site_ledgers, secure_mode=budget.secure_mode)
    return FederatedResult(run_dir=out, generator=generator, epsilon=float(card["epsilon"]), site_ledgers=site_ledgers,
                           site_level=site_level, fit_seconds=fit_seconds, reports=outcome.reports)
