"""The Flower side: a ClientApp per site, a ServerApp running FedAvg, the simulation engine.

flwr is imported inside the functions here only (``pip install -e '.[federated]'``), so the
rest of dpsynth never needs it.

- ClientApp (one per site, Flower's ``partition-id`` = the site's index): each round runs
  :func:`dpsynth.federated.site.run_site_round` and keeps the site's ledger and plan in Flower's
  per-node ``Context.state`` between rounds.
- ServerApp: Flower's legacy ``DefaultWorkflow`` with ``FedAvg`` (every site every round,
  weighted by its row count), or, for site-level DP, ``DifferentialPrivacyClientSideFixedClipping``
  around FedAvg with ``fixedclipping_mod`` at the sites (each site's update clipped to
  ``clip_norm``, Gaussian noise on the average, equal site weights) and optionally
  ``SecAggPlusWorkflow`` with ``secaggplus_mod`` (the server sees only the masked sum).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from dpsynth.errors import DpsynthError, MissingExtraError


def require_flwr() -> None:
    try:
        import flwr  # noqa: F401
        import flwr.simulation  # noqa: F401
    except ImportError:
        raise MissingExtraError(
            "federated training needs Flower's simulation engine: pip install -e '.[federated]'"
        ) from None


@dataclass(frozen=True)
class SiteLevelPlan:
    """Flower's central DP at the site level: clip each site's update, noise the average."""

    noise_multiplier: float
    clip_norm: float
    secure_aggregation: bool


@dataclass
class FlowerOutcome:
    arrays: list[np.ndarray]
    reports: list[list[dict]] = field(default_factory=list)  # per round: the sites' metrics


def run_rounds(*, job, initial_arrays: list[np.ndarray], site_level: SiteLevelPlan | None = None,
               progress=None, verbose: bool = False) -> FlowerOutcome:
    """Run ``job.rounds`` FedAvg rounds over ``job.sites`` in Flower's simulation engine."""
    require_flwr()
    from flwr.client import ClientApp, NumPyClient
    from flwr.common import ConfigRecord, Context, ndarrays_to_parameters
    from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
    from flwr.server.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

    from dpsynth.federated.site import run_site_round

    n_sites = len(job.sites)
    weigh_equally = site_level is not None

    class SiteClient(NumPyClient):
        def __init__(self, context: Context) -> None:
            self.site_context = context
            self.site_index = int(context.node_config["partition-id"])

        def fit(self, parameters, config):
            import torch

            torch.set_num_threads(max(1, int(job.threads)))
            record = self.site_context.state.config_records.get("dpsynth")
            state = json.loads(str(record["state"])) if record is not None else None
            result = run_site_round(job=job, site_index=self.site_index, arrays=parameters,
                                    server_round=int(config["round"]), state=state)
            self.site_context.state.config_records["dpsynth"] = ConfigRecord({"state": json.dumps(result.state)})
            weight = 1 if weigh_equally else int(result.metrics["n"])
            return result.arrays, weight, result.metrics

    def client_fn(context: Context):
        return SiteClient(context).to_client()

    mods = []
    if site_level is not None:
        from flwr.client.mod import fixedclipping_mod, secaggplus_mod

        mods = ([secaggplus_mod] if site_level.secure_aggregation else []) + [fixedclipping_mod]
    client_app = ClientApp(client_fn=client_fn, mods=mods)

    outcome = FlowerOutcome(arrays=[])

    def record_round(metrics: list[tuple[int, dict]]) -> dict:
        reports = sorted((dict(m) for _, m in metrics), key=lambda m: str(m.get("site")))
        outcome.reports.append(reports)
        if progress is not None and reports:
            progress({"round": len(outcome.reports), "rounds": job.rounds,
                      "epsilon": max(float(m["epsilon"]) for m in reports)})
        return {}

    def server_main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n_sites,
                          min_available_clients=n_sites, accept_failures=False,
                          initial_parameters=ndarrays_to_parameters(initial_arrays),
                          on_fit_config_fn=lambda server_round: {"round": server_round},
                          fit_metrics_aggregation_fn=record_round)
        if site_level is not None:
            strategy = DifferentialPrivacyClientSideFixedClipping(
                strategy, noise_multiplier=site_level.noise_multiplier, clipping_norm=site_level.clip_norm,
                num_sampled_clients=n_sites)
        fit_workflow = None
        if site_level is not None and site_level.secure_aggregation:
            # every site shares its key with every other, and all shares are needed to unmask (no dropouts here)
            fit_workflow = SecAggPlusWorkflow(num_shares=1.0, reconstruction_threshold=1.0)
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=job.rounds), strategy=strategy)
        DefaultWorkflow(fit_workflow=fit_workflow)(grid, legacy)
        outcome.arrays = legacy.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays()

    server_app = ServerApp()
    server_app.main()(server_main)
    simulate(server_app=server_app, client_app=client_app, n_sites=n_sites, verbose=verbose)
    complete = len(outcome.reports) == job.rounds and all(len(r) == n_sites for r in outcome.reports)
    if not outcome.arrays or not complete:
        done = [len(r) for r in outcome.reports]
        raise DpsynthError(f"federated run did not complete: sites reporting per round {done} of {n_sites} over "
                           f"{job.rounds} rounds (see the Flower log above; rerun with --verbose)")
    return outcome


def simulate(*, server_app, client_app, n_sites: int, verbose: bool) -> None:
    """Run Flower's simulation engine (one simulated site per supernode, one CPU each); what
    goes wrong inside it becomes one line."""
    from flwr.simulation import run_simulation

    _quiet(verbose)
    try:
        with _ray_workers_not_niced(), warnings.catch_warnings():
            if not verbose:
                warnings.filterwarnings("ignore", category=FutureWarning, module="ray")
            run_simulation(server_app=server_app, client_app=client_app, num_supernodes=n_sites,
                           backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                           "init_args": {"num_cpus": 1, "include_dashboard": False,
                                                         "log_to_driver": bool(verbose)}},
                           verbose_logging=verbose)
    except RuntimeError as exc:  # Flower wraps what went wrong (e.g. Ray could not start) in a RuntimeError
        cause = exc.__cause__ or exc
        first = (str(cause).splitlines() or [type(cause).__name__])[0][:300]
        raise DpsynthError(f"Flower's simulation engine failed: {first} (rerun with --verbose for Flower's log)") from None


@contextmanager
def _ray_workers_not_niced():
    """Ray starts its worker processes (the simulated sites) at niceness 15 unless
    ``RAY_worker_niceness`` says otherwise; on a shared machine that starves the sites' training.
    Run them at the driver's priority for this run only (an explicit user setting wins)."""
    key = "RAY_worker_niceness"
    before = os.environ.get(key)
    if before is None:
        os.environ[key] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)


def _quiet(verbose: bool) -> None:
    """Flower logs every round at INFO and its own tracebacks at ERROR; without --verbose only
    dpsynth's one-line message is shown."""
    from flwr.common.logger import FLOWER_LOGGER

    FLOWER_LOGGER.setLevel(logging.DEBUG if verbose else logging.CRITICAL)
