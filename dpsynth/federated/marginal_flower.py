"""Flower rounds of federated DP marginals: a ClientApp per site and a ServerApp whose strategy
SUMS the sites' noisy marginals (instead of averaging weights) and sends round 2's request.

flwr is imported inside the function only (``pip install -e '.[federated]'``). The server-side
state (:class:`~dpsynth.federated.marginal.ServerState`) holds DP outputs only.
"""

from __future__ import annotations

import json

import numpy as np

from dpsynth.errors import DpsynthError


def run_marginal_rounds(*, job, sizes: tuple[int, ...], target: int | None, progress=None, verbose: bool = False):
    """Run ``job.rounds`` Flower rounds over ``job.sites``; return the server's ServerState."""
    from flwr.client import ClientApp, NumPyClient
    from flwr.common import (
        ConfigRecord,
        Context,
        ndarrays_to_parameters,
        parameters_to_ndarrays,
    )
    from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow

    from dpsynth.federated.flower import simulate
    from dpsynth.federated.marginal import ServerState
    from dpsynth.federated.marginal_site import site_marginal_round

    n_sites = len(job.sites)
    server = ServerState(sizes=tuple(sizes))

    class SiteClient(NumPyClient):
        def __init__(self, context: Context) -> None:
            self.site_context = context
            self.site_index = int(context.node_config["partition-id"])

        def fit(self, parameters, config):
            record = self.site_context.state.config_records.get("dpsynth")
            state = json.loads(str(record["state"])) if record is not None else None
            arrays, state, metrics = site_marginal_round(job=job, site_index=self.site_index,
                                                         server_round=int(config["round"]), arrays=parameters,
                                                         state=state)
            self.site_context.state.config_records["dpsynth"] = ConfigRecord({"state": json.dumps(state)})
            return arrays, 1, metrics

    def client_fn(context: Context):
        return SiteClient(context).to_client()

    class SumMarginals(FedAvg):
        """Sum the sites' noisy tables (post-processing); never sees an exact count."""

        def aggregate_fit(self, server_round, results, failures):
            if failures or len(results) != n_sites:
                raise DpsynthError(f"round {server_round}: {len(results)} of {n_sites} sites answered")
            ordered = sorted(((dict(r.metrics), parameters_to_ndarrays(r.parameters)) for _, r in results),
                             key=lambda mr: int(mr[0]["site_index"]))
            reports = [m for m, _ in ordered]
            server.reports.append(reports)
            parts, sigmas = [a for _, a in ordered], [float(m["sigma"]) for m in reports]
            if server_round == 1:
                server.after_oneways(job, parts, sigmas)
                nxt = server.payload_maps()
            elif server_round == 2:
                votes = [[tuple(v) for v in json.loads(str(m["votes"]))] for m in reports]
                server.after_votes(job, votes, target)
                nxt = server.payload()
            else:
                server.after_pairs(parts, sigmas)
                nxt = [np.zeros(1)]
            if progress is not None:
                progress({"round": server_round, "rounds": job.rounds,
                          "epsilon": max(float(m["epsilon"]) for m in reports)})
            return ndarrays_to_parameters(nxt), {}

    client_app = ClientApp(client_fn=client_fn)

    def server_main(grid: Grid, context: Context) -> None:
        strategy = SumMarginals(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n_sites,
                                min_available_clients=n_sites, accept_failures=False,
                                initial_parameters=ndarrays_to_parameters([np.zeros(1)]),
                                on_fit_config_fn=lambda server_round: {"round": server_round})
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=job.rounds), strategy=strategy)
        DefaultWorkflow()(grid, legacy)

    server_app = ServerApp()
    server_app.main()(server_main)
    simulate(server_app=server_app, client_app=client_app, n_sites=n_sites, verbose=verbose)
    if len(server.reports) != job.rounds or any(len(r) != n_sites for r in server.reports):
        raise DpsynthError(f"federated run did not complete: sites reporting per round "
                           f"{[len(r) for r in server.reports]} of {n_sites} over {job.rounds} rounds (rerun with --verbose)")
    return server
