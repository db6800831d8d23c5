"""``dpsynth sweep`` (epsilons x seeds, resumable) and ``dpsynth federated`` (sites on Flower)."""

from __future__ import annotations

import sys

import click

from dpsynth.cli.common import _friendly, _positive_epsilon, _Progress, api
from dpsynth.errors import DpsynthError


class _SweepProgress:
    """A tqdm bar over cells, with the current cell and its training step in the postfix."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, info: dict) -> None:
        from tqdm import tqdm

        if info["event"] == "train":
            if self.bar is not None and info.get("steps"):
                self.bar.set_postfix_str(f"{info['label']} eps={info['epsilon']} seed={info['seed']} "
                                         f"step {info['step']}/{info['steps']}", refresh=False)
                self.bar.refresh()
            return
        if self.bar is None:
            self.bar = tqdm(total=info["cells"], desc="sweep", unit="cell", file=sys.stderr)
        where = f"{info['label']} eps={info['epsilon']} seed={info['seed']}"
        if info["status"] == "running":
            self.bar.set_postfix_str(where)
            return
        self.bar.update(1)
        if info["status"] in ("skipped", "failed"):
            self.bar.write(f"{info['status']}: {where}: {info.get('message', '')}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Sweep config YAML (see configs/sweep_actg175.yaml).")
@click.option("--out", "-o", type=click.Path(file_okay=False), default=None,
              help="Sweep directory (default: the config's 'out', else sweeps/CONFIG_STEM).")
@click.option("--retry-failed", is_flag=True, help="Recompute cells that failed before (finished cells are never recomputed).")
@_friendly
def sweep(config_path, out, retry_failed):
    """Train and evaluate generators over epsilons x seeds; resumable; writes sweep.json/.md/.html.

    Each finished cell (a run, its reports and cell.json) is kept; rerunning the same command
    skips finished cells, so nothing is retrained and no ledger is charged twice.

    \b
    Example:
      dpsynth sweep --config configs/sweep_actg175.yaml --out sweeps/actg175
    """
    progress = _SweepProgress()
    try:
        result = api.sweep(config=config_path, out=out, progress=progress, retry_failed=retry_failed)
    finally:
        progress.close()
    c = result.counts
    click.echo(f"sweep: {len(result.records)} cells ({c['computed']} computed, {c['reused']} already finished, "
               f"{c['skipped']} skipped, {c['failed']} failed) in {result.seconds:.1f}s -> {result.out}")
    for record in result.records:
        if record["status"] != "ok":
            click.echo(f"  {record['status']}: {record['label']} eps={record['epsilon']} seed={record['seed']}: "
                       f"{record.get('message', '')}")
    click.echo("report: " + ", ".join(str(p) for p in result.report_files.values()))


@click.command()
@click.option("--sites", multiple=True, type=click.Path(dir_okay=False),
              help="Each site's training file (CSV/Parquet, or .npz images); site name = file stem. "
                   "Repeat the option or list files after it: --sites a.csv b.csv.")
@click.option("--schema", "schema_path", type=click.Path(dir_okay=False), default=None,
              help="The public schema every site shares (YAML).")
@click.option("--generator", "-g", type=click.Choice(["dp-gan", "dp-diffusion", "dp-diffusion-image", "mst", "aim",
                                                       "independent"]), default=None,
              help="Generator trained at every site (default dp-gan).")
@click.option("--epsilon", type=float, default=None, callback=_positive_epsilon,
              help="Target epsilon of EVERY site (sample-level); the released epsilon is the maximum over sites.")
@click.option("--delta", type=float, default=None, help="Target delta (default per site: min(1e-5, 1/(10 n))).")
@click.option("--accountant", type=click.Choice(["rdp", "prv"]), default=None)
@click.option("--rounds", type=int, default=None,
              help="Federated rounds of the DP-SGD generators (default 3); mst / aim run 3 and independent 1, "
                   "fixed by the method.")
@click.option("--site-level-epsilon", type=float, default=None, callback=_positive_epsilon,
              help="Also give a site-level guarantee: Flower client-side fixed clipping + server noise.")
@click.option("--site-clip-norm", type=float, default=None, help="Site-level DP: L2 clip of each site's update (default 1).")
@click.option("--no-secagg", is_flag=True, default=False, help="Site-level DP without SecAgg+ secure aggregation.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="Federated run YAML.")
@click.option("--seed", type=int, default=None)
@click.option("--threads", type=int, default=None, help="Torch threads per site (default 1).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Run directory to create.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory.")
@click.option("--verbose", is_flag=True, help="Show Flower's per-round log.")
@click.argument("more_sites", nargs=-1, type=click.Path(dir_okay=False))
@_friendly
def federated(sites, schema_path, generator, epsilon, delta, accountant, rounds, site_level_epsilon, site_clip_norm,
              no_secagg, config_path, seed, threads, out, overwrite, verbose, more_sites):
    """Train one DP generator across sites that keep their rows (Flower FedAvg; each site runs
    dpsynth's DP-SGD on its own rows and keeps its own ledger over all rounds).

    \b
    Example:
      dpsynth federated --sites cleveland.csv hungary.csv va.csv --schema heart.yaml \\
          --generator dp-gan --epsilon 3 --rounds 5 --out runs/heart_fed
    Needs: pip install -e '.[federated]'
    """
    from dataclasses import replace

    from dpsynth.federated.config import FederatedConfig, SiteLevelDP, load_federated_config

    base = load_federated_config(config_path) if config_path else FederatedConfig()
    site_files = tuple(sites) + tuple(more_sites)
    config = base.with_overrides(sites=site_files, schema=schema_path, generator=generator, epsilon=epsilon,
                                 delta=delta, accountant=accountant, rounds=rounds, seed=seed, threads=threads)
    if site_level_epsilon is not None or site_clip_norm is not None or no_secagg:
        current = config.site_level_dp
        if current is None and site_level_epsilon is None:
            raise DpsynthError("--site-clip-norm / --no-secagg need --site-level-epsilon (or site_level_dp in --config)")
        current = current or SiteLevelDP(epsilon=site_level_epsilon)
        config = replace(config, site_level_dp=replace(
            current, **{k: v for k, v in {"epsilon": site_level_epsilon, "clip_norm": site_clip_norm,
                                          "secure_aggregation": False if no_secagg else None}.items() if v is not None}))
    progress = _Progress()
    try:
        result = api.federated(config=config, out=out, overwrite=overwrite, progress=progress, verbose=verbose)
    finally:
        progress.close()
    click.echo(f"trained {config.generator} over {len(config.sites)} sites x {len(result.reports)} rounds in "
               f"{result.fit_seconds:.1f}s -> {out}")
    click.echo(f"released epsilon (max over sites, sample-level) = {result.epsilon:.4f}")
    for name, ledger in result.site_ledgers.items():
        click.echo(f"  site {name}: epsilon={ledger.epsilon():.4f} delta={ledger.delta:.3g}")
    if result.site_level is not None:
        s = result.site_level
        click.echo(f"site-level guarantee (separate): epsilon={s['epsilon']:.4f} delta={s['delta']:.3g} "
                   f"(noise multiplier {s['noise_multiplier']:.4g}, clip {s['clip_norm']}, "
                   f"secure aggregation {s['secure_aggregation']})")
